"""The report package: pictures and the self-contained HTML report (its results table is summary.md's)."""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from filterprior.errors import UserError
from filterprior.figures import (
    filter_grid_png_bytes,
    plot_accuracy_vs_size,
    plot_confusion,
    plot_curves,
    plot_filter_grid,
    read_confusion_csv,
    write_confusion_csv,
)
from filterprior.report import build_report
from filterprior.report.html_pieces import markdown as _markdown
from filterprior.figures.plots import _confusion_title
from filterprior.results import read_results_csv, summary_markdown, write_summary

CLASSES = ["airplane", "automobile", "bird", "cat"]

# method -> images_per_class -> test accuracies by split seed (fractions, as the engine writes them)
ACCURACIES = {
    "none": {5: [0.30, 0.32, 0.34], 20: [0.50, 0.52, 0.54]},
    "adversarial": {5: [0.35, 0.38, 0.41], 20: [0.55, 0.56, 0.57]},
    "mmd": {5: [0.31, 0.33], 20: [0.60]},
}


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=float)


def _write_metrics_csv(path: Path, with_prior: bool, epochs: int = 6) -> None:
    header = ["epoch", "step", "time_s", "lr", "train_loss", "train_acc", "val_loss", "val_acc"]
    if with_prior:
        header += ["prior/adversarial/conv1", "d_real/conv1", "d_fake/conv1"]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for e in range(1, epochs + 1):
            evaluated = e % 2 == 0  # validation every second epoch: the other rows have empty cells
            row = [e, e * 10, e * 1.5, 0.05, 2.3 / e, 0.1 + 0.05 * e,
                   2.5 / e if evaluated else "", 0.1 + 0.04 * e if evaluated else ""]
            if with_prior:
                row += [0.7 - 0.05 * e, 0.9 - 0.05 * e, 0.1 + 0.05 * e]
            writer.writerow(row)


def _make_run(run: Path, method: str, size: int, seed: int, test_acc: float, pictures: bool) -> None:
    """A run directory laid out as the engine writes it (CONTRIBUTING.md), with real files."""
    run.mkdir(parents=True)
    _write_metrics_csv(run / "metrics.csv", with_prior=method != "none")
    confusion = np.array([[8, 1, 1, 0], [2, 6, 1, 1], [0, 3, 5, 2], [1, 1, 2, 6]])
    write_confusion_csv(confusion, CLASSES, run / "confusion.csv")
    (run / "metrics.json").write_text(json.dumps({
        "test_acc": test_acc, "test_loss": 1.7, "val_acc": test_acc - 0.01, "val_loss": 1.8,
        "per_class_acc": [0.8, 0.6, 0.5, 0.6], "classes": CLASSES, "epochs": 6, "steps": 60,
        "wall_time_s": 12.5, "images_per_class": size, "split_seed": seed, "model": "filternet-s2",
        "prior": method, "params": 12345,
    }))
    (run / "config.yaml").write_text(f"prior:\n  name: {method}\nseed: {seed}\n")
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(16, 3, 3, 3, generator=generator)
    plot_filter_grid(start, run / "filters_start.png", title=f"{method} start")
    plot_filter_grid(start * 0.5 + torch.randn(16, 3, 3, 3, generator=generator), run / "filters_end.png",
                     title=f"{method} end")
    if pictures:  # otherwise the report has to draw curves and confusion itself from the CSVs
        plot_curves(run / "metrics.csv", run / "curves.png")
        plot_confusion(confusion, CLASSES, run / "confusion.png", title=method)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("study")
    lines = ["method,images_per_class,split_seed,test_acc,val_acc,wall_time_s,config_hash,run_dir"]
    for method, by_size in ACCURACIES.items():
        for size, accs in by_size.items():
            for seed, acc in enumerate(accs):
                run_dir = f"runs/{method}-n{size}-s{seed}"
                lines.append(f"{method},{size},{seed},{acc},{acc - 0.01},{10 + seed},abc{seed},{run_dir}")
    lines.append("mmd,5,2,,,,abc2,runs/mmd-n5-s2")  # an unfinished run: skipped
    (root / "results.csv").write_text("\n".join(lines) + "\n")
    write_summary(read_results_csv(root / "results.csv"), root / "summary.md")  # as the study writes it
    _make_run(root / "runs/none-n5-s0", "none", 5, 0, 0.30, pictures=True)
    _make_run(root / "runs/adversarial-n5-s0", "adversarial", 5, 0, 0.35, pictures=False)
    plot_filter_grid(torch.randn(16, 3, 3, 3), root / "bank.png", title="bank")
    return root


# ------------------------------------------------------------------------------------------ pictures


def test_filter_grid_colours_sign_and_keeps_layout(tmp_path):
    positive, negative = np.ones((1, 5, 5)), -np.ones((1, 5, 5))
    red = _rgb(plot_filter_grid(positive, tmp_path / "pos.png"))
    blue = _rgb(plot_filter_grid(negative, tmp_path / "neg.png"))
    h, w = red.shape[:2]
    r, _, b = red[h // 2, w // 2]
    assert r > b + 50  # positive weights: the red end of RdBu_r (dark red, 103/0/31)
    r, _, b = blue[h // 2, w // 2]
    assert b > r + 50  # negative weights: the blue end

    # Same N -> same picture size, whatever the values (start/end/bank grids line up).
    first = plot_filter_grid(torch.randn(20, 3, 5, 5), tmp_path / "a.png", title="start")
    second = plot_filter_grid(torch.randn(20, 3, 5, 5) * 10, tmp_path / "b.png", title="end")
    assert Image.open(first).size == Image.open(second).size
    # Many-channel filters (channels side by side) and 2-D slices both draw; max_kernels truncates.
    plot_filter_grid(torch.randn(8, 16, 3, 3), tmp_path / "wide.png")
    few = plot_filter_grid(torch.randn(100, 3, 3), tmp_path / "few.png", max_kernels=4)
    many = plot_filter_grid(torch.randn(100, 3, 3), tmp_path / "many.png")
    assert Image.open(few).size[0] < Image.open(many).size[0]
    assert filter_grid_png_bytes(np.zeros((4, 3, 3))).startswith(b"\x89PNG")  # all-zero kernels: no crash
    with pytest.raises(UserError, match=r"kernels: shape \(3, 3\)"):
        plot_filter_grid(np.zeros((3, 3)), tmp_path / "bad.png")
    assert not list(tmp_path.glob(".*.tmp")) and plt.get_fignums() == []


def test_confusion_csv_round_trip_and_picture(tmp_path):
    matrix = np.array([[5, 1, 0], [0, 7, 2], [3, 0, 4]])
    classes = ["cat", "dog, big", "fox"]  # a comma in a class name must survive the CSV
    write_confusion_csv(matrix, classes, tmp_path / "confusion.csv")
    read_matrix, read_classes = read_confusion_csv(tmp_path / "confusion.csv")
    assert read_classes == classes and np.array_equal(read_matrix, matrix)
    image = _rgb(plot_confusion(matrix, classes, tmp_path / "confusion.png", title="test"))
    assert image.std() > 10
    # The accuracy is stated once: added to a plain title, left alone when the title has it (the engine's).
    assert _confusion_title(matrix, "test") == "test — accuracy 72.7%"
    assert _confusion_title(matrix, None) == "accuracy 72.7%"
    assert _confusion_title(matrix, "test accuracy 72.73%") == "test accuracy 72.73%"
    with pytest.raises(UserError, match="does not match 2 classes"):
        plot_confusion(matrix, ["a", "b"], tmp_path / "bad.png")


def test_curves_add_prior_panels_only_when_logged(tmp_path):
    _write_metrics_csv(tmp_path / "plain.csv", with_prior=False)
    _write_metrics_csv(tmp_path / "prior.csv", with_prior=True)
    plain = Image.open(plot_curves(tmp_path / "plain.csv", tmp_path / "plain.png"))
    prior = Image.open(plot_curves(tmp_path / "prior.csv", tmp_path / "prior.png"))
    assert prior.size[1] > plain.size[1]  # a second row of panels: D(real)/D(fake) and prior losses
    (tmp_path / "empty.csv").write_text("epoch,train_loss\n")
    with pytest.raises(UserError, match=r"empty\.csv has no rows"):
        plot_curves(tmp_path / "empty.csv", tmp_path / "empty.png")


def test_accuracy_vs_size_plot(study, tmp_path):
    image = _rgb(plot_accuracy_vs_size(study / "results.csv", tmp_path / "acc.png"))
    assert image.shape[0] > 200 and image.std() > 10
    assert plt.get_fignums() == []


def test_accuracy_plot_of_a_single_size_is_bars(tmp_path, monkeypatch):
    (tmp_path / "results.csv").write_text(
        "method,images_per_class,split_seed,test_acc,val_acc,wall_time_s,config_hash,run_dir\n"
        "none,10,0,0.178,,0.8,h,a\ngaussian,10,0,0.181,,0.9,h,b\ngaussian,10,1,0.20,,0.9,h,c\n")
    from matplotlib.axes import Axes

    bars = []
    original = Axes.bar
    monkeypatch.setattr(Axes, "bar", lambda self, *args, **kwargs: bars.append(kwargs) or original(self, *args, **kwargs))
    image = _rgb(plot_accuracy_vs_size(tmp_path / "results.csv", tmp_path / "acc.png"))
    assert image.shape[0] > 200 and image.std() > 10
    assert len(bars) == 1 and len(bars[0]["yerr"]) == 2 # one bar per method, std over seeds as error bars


# ------------------------------------------------------------------------------------------- report

# Hand-computed from ACCURACIES: none@5 .30/.32/.34 -> 32 ± 2; adversarial@5 38 ± 3, gain 6 ± sqrt(3²/3 + 2²/3);
# mmd@5 (third seed unfinished) 32 ± 1.41, gain 0 ± sqrt(1.41²/2 + 2²/3); mmd@20 has one seed: no spread.
# Gains are paired over the shared split seeds: adversarial at 5 differs from none by 5, 6, 7 points.
EXPECTED_CELLS = ["32.00 ± 2.00", "38.00 ± 3.00", "+6.00 ± 0.58", "[+3.52, +8.48]", "3/3", "32.00 ± 1.41",
                  "+1.00 ± 0.00", "60.00 ± n/a", "+10.00 ± n/a"]


def _assert_self_contained(text: str) -> None:
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", text, flags=re.I)
    assert links and all(link.startswith("data:image/png;base64,") for link in links)
    assert "<script" not in text.lower() and "http://" not in text and "https://" not in text


def test_study_report_is_self_contained_with_the_table(study, tmp_path):
    out = build_report(study, tmp_path / "report.html")
    text = out.read_text()
    _assert_self_contained(text)
    for cell in EXPECTED_CELLS:
        assert cell in text
    # bank + none start/end + best end + curves and confusion of two runs + the accuracy plot
    assert text.count("data:image/png;base64,") == 9
    assert "adversarial (highest mean test accuracy here): end" in text
    assert "best prior" not in text
    assert "runs/adversarial-n5-s0" in text  # the adversarial run's curves were drawn from its CSV

    moved = study / "bank.png.bak"
    shutil.move(study / "bank.png", moved)
    try:
        text = build_report(study, tmp_path / "no_bank.html").read_text()
    finally:
        shutil.move(moved, study / "bank.png")
    assert text.count("data:image/png;base64,") == 8 and "bank.png (not found)" in text


def _html_tables(text: str) -> list[list[list[str]]]:
    """Every table on the page as rows of cell texts (header row included)."""
    return [[[html.unescape(c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)]
             for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table)]
            for table in re.findall(r"<table>(.*?)</table>", text)]


def test_report_table_shows_the_same_cells_as_summary_md(study, tmp_path):
    text = build_report(study, tmp_path / "report.html").read_text()
    results = _html_tables(text)[0]
    assert [row[:2] for row in results[1:]] == [
        ["5", "none"], ["5", "adversarial"], ["5", "mmd"], ["20", "none"], ["20", "adversarial"], ["20", "mmd"]]
    # summary.md (one table per size) has the same rows but for the size column; the page does not repeat it.
    summary_tables = _html_tables(_markdown((study / "summary.md").read_text()))
    from_summary = [row for table in summary_tables for row in table[1:]]
    assert [row[1:] for row in results[1:]] == from_summary
    assert "Study summary" not in text and text.count("<table>") == 2  # results + the (folded) list of all runs
    assert text.count("fixed validation pool") == 1  # the explanation once, under Results
    assert results[1] == ["5", "none", "3", "32.00 ± 2.00", "31.00", "—", "—", "—", "11.0"]  # no gain over itself
    assert results[2] == ["5", "adversarial", "3", "38.00 ± 3.00", "37.00", "+6.00 ± 0.58", "[+3.52, +8.48]", "3/3",
                          "11.0"]


def test_summary_md_prose_is_one_paragraph(tmp_path):
    page = _markdown(summary_markdown([]))
    assert page.count("<p>") == 2  # the legend and "No finished runs yet."
    assert "paired over the k split seeds both ran" in page and "<h2>Study summary</h2>" in page
    # A study with no finished runs has no results table: the page shows summary.md instead.
    root = tmp_path / "fresh"
    root.mkdir()
    (root / "results.csv").write_text(
        "method,images_per_class,split_seed,test_acc,val_acc,wall_time_s,config_hash,run_dir\n")
    write_summary([], root / "summary.md")
    text = build_report(root, tmp_path / "fresh.html").read_text()
    assert "No finished runs in results.csv yet" in text and "<h2>Study summary</h2>" in text


def test_report_of_a_broken_results_csv_names_line_and_column(tmp_path):
    root = tmp_path / "broken"
    root.mkdir()
    (root / "results.csv").write_text(
        "method,images_per_class,split_seed,test_acc,val_acc,wall_time_s,config_hash,run_dir\n"
        "none,5,0,high,0.5,1.0,h,d\n")
    with pytest.raises(UserError, match=r"results\.csv, line 2: column 'test_acc' is 'high'"):
        build_report(root, tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def test_single_run_report(study, tmp_path):
    text = build_report(study / "runs/none-n5-s0", tmp_path / "run.html").read_text()
    _assert_self_contained(text)
    assert "30.00%" in text and "automobile" in text and "filternet-s2" in text
    assert text.count("data:image/png;base64,") == 4  # filters start/end, curves, confusion


def test_report_of_an_empty_directory_names_it(tmp_path):
    empty = tmp_path / "not_a_study"
    empty.mkdir()
    with pytest.raises(UserError, match="not_a_study.*results.csv.*metrics.json"):
        build_report(empty, tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def test_report_of_a_missing_directory_says_it_does_not_exist(tmp_path, capsys):
    from filterprior.commands import main

    assert main(["report", str(tmp_path / "nonexist"), "-o", str(tmp_path / "x.html")]) == 2
    assert f"error: {tmp_path / 'nonexist'} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


@pytest.mark.parametrize("garbage", [b"hello world\ngarbage,,\n", bytes(range(256)) * 3])
def test_report_with_a_garbage_metrics_csv_warns_naming_it(study, tmp_path, capsys, garbage):
    from filterprior.commands import main

    run = tmp_path / "run"
    shutil.copytree(study / "runs/adversarial-n5-s0", run)  # no curves.png: curves come from metrics.csv
    (run / "metrics.csv").write_bytes(garbage)
    assert main(["report", str(run), "-o", str(tmp_path / "r.html")]) == 0  # the rest is still worth a report
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and str(run / "metrics.csv") in err and "left out of the report" in err, err
    text = (tmp_path / "r.html").read_text()
    assert "Left out" in text and "metrics.csv" in text and text.count("data:image/png;base64,") == 3


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    command = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(study, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not on PATH (apt-get install -y chromium)")
    report = build_report(study, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,2000", report.as_uri(), profile=tmp_path / "profile")
    assert shot.is_file()
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2000, 1200) and pixels.std() > 20  # text, tables and plots, not a blank page
    dom = _chromium("--dump-dom", report.as_uri(), profile=tmp_path / "profile").stdout
    assert "<table" in dom
    for cell in EXPECTED_CELLS:
        assert cell in dom
