"""Data reliability (issue 12): content-chosen hold-out and the data a run records, corrupt archives,
16-bit and EXIF-rotated images, caps on what is read, damaged or foreign caches, decompression bombs,
empty class folders. Every fixture is a real small file made here (Pillow, tarfile, flipped bytes)."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from filterprior.data import load_data
from filterprior.errors import UserError

MiB = 1 << 20


# Every test gets its own empty cache dir and no ambient data root (conftest.py).
pytestmark = pytest.mark.usefixtures("cache")


def colour(cls: int, i: int) -> tuple[int, int, int]:
    """A colour that names (class, image): a decoded image says which file it came from."""
    return (40 * cls + 10, 7 * i + 3, 200)


def write_image(path: Path, rgb, size=(8, 8), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path, format=fmt)
    return path


def make_folder(root: Path, classes=("ant", "bee", "cat"), train=10, test=0, suffix=".png") -> Path:
    for c, name in enumerate(classes):
        for i in range(train):
            write_image(root / "train" / name / f"{i:03d}{suffix}", colour(c, i))
        for i in range(test):
            write_image(root / "test" / name / f"{i:03d}{suffix}", colour(c, 20 + i))
    return root


def make_tar(folder: Path, archive: Path, compresslevel: int = 9, mode: str = "w:gz",
             fmt: int = tarfile.DEFAULT_FORMAT) -> Path:
    kwargs = {"compresslevel": compresslevel} if mode == "w:gz" else {}
    with tarfile.open(archive, mode, format=fmt, **kwargs) as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return archive


def ids(images: np.ndarray) -> set[tuple[int, int]]:
    """(class, image number) of each decoded image, read back from its colour."""
    return {((int(im[0, 0, 0]) - 10) // 40, (int(im[0, 0, 1]) - 3) // 7) for im in images}


def run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "filterprior", *args], capture_output=True, text=True,
                          env=env, timeout=300)


# ------------------------------------------------------------- 3. hold-out by content, data recorded


def test_holdout_is_chosen_by_content_so_added_or_renamed_files_do_not_move_it(tmp_path):
    folder = make_folder(tmp_path / "pets", train=10)
    before = load_data(str(folder), test_fraction=0.2)
    assert np.bincount(before.test_labels).tolist() == [2, 2, 2]  # round(0.2 * 10) of each class
    # one new image a class, named to sort first: 11 a class still hold out round(2.2) = 2
    for c, name in enumerate(("ant", "bee", "cat")):
        write_image(folder / "train" / name / "000-new.png", colour(c, 30))
    after = load_data(str(folder), test_fraction=0.2)
    old_train, old_test = ids(before.train_images), ids(before.test_images)
    new_test = ids(after.test_images)
    assert not old_train & new_test, "an image the old split trained on is in the new test set"
    for c in range(3):  # the old test images stay, except one pushed out by a new image ranked before it
        new_in_test = (c, 30) in new_test
        kept = {i for i in old_test if i[0] == c} & new_test
        assert len(kept) == (1 if new_in_test else 2)
    # renaming files changes nothing: the choice depends on the bytes only
    (folder / "train" / "ant" / "003.png").rename(folder / "train" / "ant" / "zzz.png")
    assert ids(load_data(str(folder), test_fraction=0.2).test_images) == new_test


def make_noisy_folder(root: Path, classes=("ant", "bee"), train=6) -> Path:
    """Images with noise (a flat colour has a channel std of 0, which training refuses)."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        for i in range(train):
            pixels = rng.integers(0, 100, (8, 8, 3), dtype=np.uint8)
            pixels[..., c] += 120
            (root / "train" / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / "train" / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One real 1-epoch run on a small folder without test/ (a subprocess: the CLI as a user runs it)."""
    base = tmp_path_factory.mktemp("run")
    folder = make_noisy_folder(base / "pets")
    env = {"FILTERPRIOR_CACHE": str(base / "cache")}
    done = run_cli("train", "--data", str(folder), "--model", "simplecnn", "--epochs", "1", "--batch-size", "4",
                   "--out", str(base / "run"), "threads=1", "filter_pictures=false", env_extra=env)
    assert done.returncode == 0, done.stderr
    return base, folder, env, done.stdout


@pytest.mark.slow
def test_run_records_its_data_and_eval_checks_it(trained_run, tmp_path, monkeypatch):
    base, folder, env, _ = trained_run
    run = base / "run"
    meta = json.loads((run / "weights.json").read_text())
    monkeypatch.setenv("FILTERPRIOR_CACHE", env["FILTERPRIOR_CACHE"])
    data = load_data(str(folder))
    assert meta["source_hash"] == data.source_hash and meta["classes"] == ["ant", "bee"]
    assert json.loads((run / "metrics.json").read_text())["source_hash"] == data.source_hash

    same = run_cli("eval", str(run), env_extra=env)
    assert same.returncode == 0 and "warning" not in same.stderr, same.stderr

    changed = tmp_path / "changed"  # the same classes, one image more: evaluated, with one warning line
    shutil.copytree(folder, changed)
    write_image(changed / "train" / "ant" / "new.png", colour(0, 40))
    warned = run_cli("eval", str(run), "--data", str(changed), env_extra=env)
    lines = [line for line in warned.stderr.splitlines() if line.strip()]
    assert warned.returncode == 0 and len(lines) == 1, warned.stderr
    assert lines[0].startswith("warning: the data differs") and "source_hash" in lines[0]

    renamed = tmp_path / "renamed"  # other class names: label 1 would be scored against another class
    shutil.copytree(folder, renamed)
    (renamed / "train" / "bee").rename(renamed / "train" / "bug")
    refused = run_cli("eval", str(run), "--data", str(renamed), env_extra=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "only the run has ['bee']" in refused.stderr and "only the data has ['bug']" in refused.stderr


def test_eval_bounds_the_image_size_of_weights_json(trained_run, tmp_path):
    base, _, env, _ = trained_run
    for name in ("weights.safetensors", "weights.json"):
        shutil.copy(base / "run" / name, tmp_path / name)
    meta = json.loads((tmp_path / "weights.json").read_text())
    (tmp_path / "weights.json").write_text(json.dumps({**meta, "image_size": 600}))
    done = run_cli("eval", str(tmp_path / "weights.safetensors"), env_extra=env)
    assert done.returncode == 2, done.stderr
    assert "weights.json: image_size must be an integer from 8 to 512" in done.stderr and "600" in done.stderr


def test_the_run_says_where_the_images_went(trained_run):
    """Newcomer item: an own folder loses images to test/ and the validation pool; the first line says so."""
    first = trained_run[3].splitlines()[0]
    # 6 a class, round(0.2 * 6) = 1 a class held out as test, a pool of min(100, 5 // 10) = 0
    assert "simplecnn on pets: 10 training images (of 10: 0 in the validation pool), 2 test images" in first


# ------------------------------------------------------------------------------ 4. corrupt archives


def flip_two_bytes(archive: Path, needle: bytes) -> None:
    """Flip two bytes at the first place `needle` occurs in the (stored, uncompressed) gzip stream."""
    blob = bytearray(archive.read_bytes())
    at = blob.find(needle)
    assert at > 0, "the fixture's bytes are not where the test expects them"
    blob[at] ^= 0x01  # the lowest bit: a pixel a shade off, a pickle still valid
    blob[at + 1] ^= 0x01
    archive.write_bytes(bytes(blob))


def test_corrupt_image_folder_archive_is_refused(tmp_path):
    # PPM holds raw pixels with no checksum: only the gzip CRC can notice the flipped bytes
    folder = make_folder(tmp_path / "pets", train=5, test=2, suffix=".ppm")
    archive = make_tar(folder, tmp_path / "pets.tar.gz", compresslevel=0)  # stored: bytes findable
    assert load_data(str(archive)).train_images.shape[0] == 15
    flip_two_bytes(archive, bytes(colour(1, 3)) * 4)
    os.utime(archive, ns=(1, 1))  # a new mtime: the cache key changes, as it would for a new download
    with pytest.raises(UserError, match=r"corrupt archive .*pets\.tar\.gz \(gzip CRC check failed\)"):
        load_data(str(archive))


def test_flipped_gzip_trailer_is_refused(tmp_path):
    archive = make_tar(make_folder(tmp_path / "pets", train=3, test=1), tmp_path / "pets.tar.gz")
    blob = bytearray(archive.read_bytes())
    blob[-8] ^= 0x01  # the CRC32 in the gzip trailer
    blob[-7] ^= 0x01
    archive.write_bytes(bytes(blob))
    with pytest.raises(UserError, match=r"corrupt archive .*pets\.tar\.gz \(gzip CRC check failed\)"):
        load_data(str(archive))


def test_corrupt_official_cifar_archive_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 128, (4, 3072), dtype=np.uint8)  # < 128: the same bytes in the pickle
    batch = pickle.dumps({b"data": pixels, b"labels": [0, 1, 2, 3], b"batch_label": b"x"}, protocol=2)
    files = {f"cifar-10-batches-py/data_batch_{i}": batch for i in range(1, 6)}
    files["cifar-10-batches-py/test_batch"] = batch
    files["cifar-10-batches-py/batches.meta"] = pickle.dumps({"label_names": [f"c{i}" for i in range(10)]})
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=0) as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    flip_two_bytes(archive, pixels[2, :16].tobytes())
    with pytest.raises(UserError, match=r"corrupt archive .*cifar-10-python\.tar\.gz \(gzip CRC check failed\)"):
        load_data(str(archive))


def test_plain_tar_with_a_damaged_member_header_is_refused_not_read_in_part(tmp_path):
    folder = make_folder(tmp_path / "pets", train=4, test=2)
    archive = make_tar(folder, tmp_path / "pets.tar", mode="w", fmt=tarfile.USTAR_FORMAT)  # one header a member
    blob = bytearray(archive.read_bytes())
    at = blob.find(b"train/bee/000.png")  # a header halfway through (the name is its first field)
    assert at > 0 and at % 512 == 0
    blob[at:at + 512] = bytes(512)  # zeroed (a bad sector, a botched copy): tarfile takes it for the end
    archive.write_bytes(bytes(blob))
    with pytest.raises(UserError, match=r"corrupt archive .*pets\.tar \(data after the end of the member list"):
        load_data(str(archive))


# ---------------------------------------------------------------------------- 5. 16-bit and EXIF


def test_16_bit_greyscale_png_is_scaled_by_its_range(tmp_path):
    folder = make_folder(tmp_path / "pets", classes=("ant", "bee"), train=2, test=1)
    values = np.array([[0, 16384], [32768, 65535]], dtype=np.uint16).repeat(4, 0).repeat(4, 1)
    grey = Image.fromarray(values)
    assert grey.mode.startswith("I;16")
    grey.save(folder / "test" / "ant" / "000.png")  # a 16-bit PNG
    data = load_data(str(folder), image_size=8)
    decoded = data.test_images[0]
    assert decoded.shape == (8, 8, 3)
    # corners (far from the bilinear seams): 0 -> 0, 16384 -> 64, 32768 -> 128, 65535 -> 255
    assert [int(decoded[r, c, 0]) for r, c in ((0, 0), (0, 7), (7, 0), (7, 7))] == [0, 64, 128, 255]
    assert (decoded[..., 0] == decoded[..., 1]).all()  # grey stays grey


def test_exif_orientation_is_applied(tmp_path):
    folder = make_folder(tmp_path / "pets", classes=("ant", "bee"), train=2, test=1)
    pixels = np.zeros((16, 32, 3), dtype=np.uint8)
    pixels[:, :16] = (255, 0, 0)  # stored: red left, blue right
    pixels[:, 16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view", as phones write it
    Image.fromarray(pixels).save(folder / "test" / "ant" / "000.png", exif=exif)
    decoded = load_data(str(folder), image_size=16).test_images[0]
    assert tuple(decoded[0, 8]) == (255, 0, 0) and tuple(decoded[15, 8]) == (0, 0, 255)  # red top, blue bottom
    assert tuple(decoded[8, 0]) != (255, 0, 0) or tuple(decoded[8, 15]) != (0, 0, 255)


# ---------------------------------------------------------------------- 7. what reading may cost


def test_a_large_non_image_member_is_not_read_into_memory(tmp_path):
    folder = make_folder(tmp_path / "pets", classes=("ant", "bee"), train=3, test=1)
    with open(folder / "notes.txt", "wb") as handle:
        handle.truncate(80 * MiB)  # 80 MiB of zeros (a sparse file: nothing written here)
    archive = make_tar(folder, tmp_path / "pets.tar.gz", compresslevel=1)
    assert archive.stat().st_size < 1 * MiB
    tracemalloc.start()
    try:
        data = load_data(str(archive))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(data.train_labels) == 6
    assert peak < 16 * MiB, f"peak {peak / MiB:.0f} MiB: the non-image member was read"


def test_an_image_file_over_the_cap_is_refused_before_it_is_read(tmp_path):
    folder = make_folder(tmp_path / "pets", classes=("ant", "bee"), train=3, test=1)
    with open(folder / "train" / "ant" / "huge.png", "wb") as handle:
        handle.truncate(65 * MiB)
    with pytest.raises(UserError, match=r"huge\.png is 65 MiB, more than the 64 MiB an image file may have"):
        load_data(str(folder))
    archive = make_tar(folder, tmp_path / "pets.tar.gz", compresslevel=1)
    with pytest.raises(UserError, match=r"pets\.tar\.gz: image file 'train/ant/huge\.png' is 65 MiB, more than"):
        load_data(str(archive))


def test_images_adding_up_to_more_than_the_total_cap_are_refused(tmp_path, monkeypatch):
    from filterprior.data import limits

    folder = make_folder(tmp_path / "pets", classes=("ant", "bee"), train=3, test=1)
    monkeypatch.setattr(limits, "MAX_TOTAL_BYTES", 300)  # a few of these tiny PNGs
    with pytest.raises(UserError, match=r"pets: its images add up to more than 300 bytes"):
        load_data(str(folder))
    archive = make_tar(folder, tmp_path / "pets.tar.gz")
    with pytest.raises(UserError, match=r"pets\.tar\.gz: its image files add up to more than 300 bytes"):
        load_data(str(archive))


def test_image_size_is_bounded_in_config_and_load_data():
    from filterprior.config import TrainConfig, apply_overrides, validate_config

    for size in (4, 4096):
        with pytest.raises(UserError, match=rf"data\.image_size must be from 8 to 512.*got {size}"):
            validate_config(apply_overrides(TrainConfig(), [f"data.image_size={size}"]))
        with pytest.raises(UserError, match=rf"image_size must be an integer from 8 to 512.*got {size}"):
            load_data("mini", image_size=size)
    validate_config(apply_overrides(TrainConfig(), ["data.image_size=512"]))


# ----------------------------------------------------------------------------------------- 9. cache


def test_an_empty_cache_file_is_rebuilt(tmp_path, cache):
    folder = make_folder(tmp_path / "pets", train=3, test=1)
    first = load_data(str(folder))
    (path,) = cache.glob("*.npz")
    path.write_bytes(b"")  # a disk that filled up, a copy that was cut short
    again = load_data(str(folder))
    np.testing.assert_array_equal(again.train_images, first.train_images)
    assert path.stat().st_size > 0  # rebuilt


def test_a_cache_file_of_another_dataset_is_not_used(tmp_path, cache):
    pets = make_folder(tmp_path / "pets", classes=("ant", "bee"), train=3, test=1)
    other = make_folder(tmp_path / "other", classes=("x", "y", "z"), train=3, test=1)
    load_data(str(pets))
    (pets_cache,) = cache.glob("pets-*.npz")
    load_data(str(other))
    (other_cache,) = cache.glob("other-*.npz")
    shutil.copy(other_cache, pets_cache)
    assert load_data(str(pets)).classes == ["ant", "bee"]


# ------------------------------------------------------------------------------ 11. decompression bomb


def png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming width x height 1-bit pixels, holding almost nothing: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_an_unreadable_image_naming_the_file(tmp_path):
    folder = make_folder(tmp_path / "pets", classes=("ant", "bee"), train=3, test=1)
    (folder / "train" / "bee" / "bomb.png").write_bytes(png_header_only(20000, 20000))  # 400 megapixels
    with pytest.raises(UserError, match=r"train/bee/bomb\.png is not a readable image: .*400000000 pixels"):
        load_data(str(folder))


# ------------------------------------------------------------------------- empty class folders


def test_an_empty_class_folder_is_refused_naming_it(tmp_path):
    folder = make_folder(tmp_path / "pets", train=3, test=1)
    (folder / "train" / "dog").mkdir()
    with pytest.raises(UserError, match=r"class folder\(s\) \['train/dog'\] hold no images"):
        load_data(str(folder))
    with pytest.raises(UserError, match=r"pets\.tar\.gz: class folder\(s\) \['train/dog'\] hold no images"):
        load_data(str(make_tar(folder, tmp_path / "pets.tar.gz")))
    (folder / "train" / "dog" / "notes.txt").write_text("dogs to come")  # only files that are not images
    (folder / "test" / "ant" / "000.png").unlink()
    with pytest.raises(UserError, match=r"\['test/ant', 'train/dog'\] hold no images"):
        load_data(str(folder))


def test_an_empty_class_folder_made_after_a_cached_load_is_refused(tmp_path):
    folder = make_folder(tmp_path / "pets", train=3, test=1)
    load_data(str(folder))  # cached now
    (folder / "train" / "dog").mkdir()
    with pytest.raises(UserError, match=r"\['train/dog'\] hold no images"):
        load_data(str(folder))


def test_a_test_folder_without_images_is_refused(tmp_path):
    folder = make_folder(tmp_path / "pets", train=5)
    (folder / "test").mkdir()  # would silently hold out part of train/ instead
    with pytest.raises(UserError, match=r"test/ holds no class folders with images; fill it .* or remove it"):
        load_data(str(folder))
