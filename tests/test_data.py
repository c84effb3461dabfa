"""Data: image folders (dir, tar.gz), official CIFAR pickles, download + MD5, cache, mini set, splits."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from filterprior.data import ImageData, data_root, default_val_per_class, load_data, make_split
from filterprior.data import locate
from filterprior.errors import UserError

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "src/filterprior/assets/mini-cifar10.tar.gz"


def shared_data() -> Path | None:
    for base in (os.environ.get("FILTERPRIOR_DATA"), REPO.parent / "shared" / "data"):
        if base and (Path(base) / "cifar10-jpeg.tar.gz").is_file():
            return Path(base)
    return None


# Every test gets its own empty cache dir and no ambient data root (conftest.py).
pytestmark = pytest.mark.usefixtures("cache")


# ------------------------------------------------------------------------------------- image folders


def pixel(cls: int, i: int) -> tuple[int, int, int]:
    """A colour that encodes (class, image number) so a decoded image tells where it came from."""
    return (40 * cls + 10, 7 * i + 3, 200)


def write_png(path: Path, color, size=(32, 32), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).convert(mode).save(path)


def make_folder(root: Path, classes=("cat", "ant", "bee"), train=5, test=2) -> Path:
    """Classes deliberately not in sorted order on disk; PNG (lossless) so pixels can be checked."""
    for c, name in enumerate(sorted(classes)):
        for i in range(train):
            write_png(root / "train" / name / f"{i:03d}.png", pixel(c, i))
        for i in range(test):
            write_png(root / "test" / name / f"{i:03d}.png", pixel(c, 20 + i))
    return root


def make_tar(folder: Path, archive: Path, arcname: str = "") -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(Path(arcname) / path.relative_to(folder)), recursive=False)
    return archive


def test_image_folder_classes_labels_and_pixels(tmp_path):
    folder = make_folder(tmp_path / "pets")
    data = load_data(str(folder))
    assert data.name == "pets"
    assert data.classes == ["ant", "bee", "cat"]
    assert data.train_images.shape == (15, 32, 32, 3) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (6, 32, 32, 3)
    assert data.train_labels.dtype == np.int64
    assert data.train_labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    for image, label in zip(data.train_images, data.train_labels):
        assert image[0, 0, 0] == pixel(int(label), 0)[0]  # the class a pixel encodes = its label
    assert [tuple(im[5, 5]) for im in data.train_images[:5]] == [pixel(0, i) for i in range(5)]
    assert len(data.source_hash) == 64 and data.source == str(folder.resolve())


def test_hidden_files_and_folders_are_ignored(tmp_path):
    folder = make_folder(tmp_path / "pets")
    (folder / "train" / "cat" / ".DS_Store").write_bytes(b"not an image")
    (folder / "train" / "cat" / "._000.png").write_bytes(b"mac resource fork")
    write_png(folder / "train" / ".hidden_class" / "0.png", (1, 2, 3))
    write_png(folder / "train" / "cat" / ".cache" / "0.png", (1, 2, 3))
    data = load_data(str(folder))
    assert data.classes == ["ant", "bee", "cat"]
    assert len(data.train_labels) == 15


def test_other_sizes_and_modes_are_converted_and_resized(tmp_path):
    folder = tmp_path / "mixed"
    write_png(folder / "train" / "a" / "big.png", (255, 0, 0), size=(64, 48))
    write_png(folder / "train" / "a" / "gray.png", (128, 128, 128), mode="L")
    write_png(folder / "test" / "a" / "rgba.png", (0, 255, 0), mode="RGBA")
    write_png(folder / "train" / "b" / "0.png", (0, 0, 255))  # a classifier needs 2 classes
    write_png(folder / "test" / "b" / "0.png", (0, 0, 255))
    data = load_data(str(folder), image_size=16)
    assert data.train_images.shape == (3, 16, 16, 3) and data.test_images.shape == (2, 16, 16, 3)
    assert (data.train_images[0] == [255, 0, 0]).all()  # resizing a flat colour keeps the colour
    assert (data.train_images[1] == 128).all()
    assert (data.test_images[0] == [0, 255, 0]).all()


def test_tar_gz_reads_the_same_as_the_folder(tmp_path):
    folder = make_folder(tmp_path / "pets")
    from_dir = load_data(str(folder))
    flat = load_data(str(make_tar(folder, tmp_path / "pets.tar.gz")))
    wrapped = load_data(str(make_tar(folder, tmp_path / "wrapped.tar.gz", arcname="pets")))
    for data in (flat, wrapped):
        assert data.classes == from_dir.classes
        np.testing.assert_array_equal(data.train_images, from_dir.train_images)
        np.testing.assert_array_equal(data.test_labels, from_dir.test_labels)
    assert flat.name == "pets"
    assert flat.source_hash == hashlib.sha256((tmp_path / "pets.tar.gz").read_bytes()).hexdigest()


def test_folder_without_test_holds_out_a_stratified_fraction(tmp_path):
    folder = make_folder(tmp_path / "notest", train=10, test=0)
    a = load_data(str(folder), test_fraction=0.2)
    assert len(a.train_labels) == 24 and len(a.test_labels) == 6
    assert np.bincount(a.test_labels).tolist() == [2, 2, 2]
    train_px = {tuple(im[0, 0]) for im in a.train_images}
    test_px = {tuple(im[0, 0]) for im in a.test_images}
    assert not train_px & test_px and len(train_px | test_px) == 30
    b = load_data(str(make_tar(folder, tmp_path / "notest.tar.gz")), test_fraction=0.2)
    np.testing.assert_array_equal(a.test_images, b.test_images)  # chosen by content: the same from both
    c = load_data(str(folder), test_fraction=0.5)
    assert np.bincount(c.test_labels).tolist() == [5, 5, 5]


def test_unreadable_image_names_file_and_leaves_no_cache(tmp_path, cache):
    folder = make_folder(tmp_path / "pets")
    (folder / "train" / "bee" / "002.png").write_bytes(b"\x89PNG but truncated")
    with pytest.raises(UserError, match=r"train/bee/002\.png is not a readable image") as err:
        load_data(str(folder))
    assert "object at 0x" not in str(err.value)  # no Python object repr in a user's error
    assert not cache.exists() or list(cache.iterdir()) == []  # no cache file, no temporary file
    archive = make_tar(folder, tmp_path / "bad.tar.gz")
    with pytest.raises(UserError, match=r"bad\.tar\.gz/train/bee/002\.png"):
        load_data(str(archive))
    assert not cache.exists() or list(cache.iterdir()) == []


def test_data_without_two_classes_or_test_images_is_refused(tmp_path):
    one = make_folder(tmp_path / "one", classes=("cat",), test=0)
    with pytest.raises(UserError, match=r"one has only 1 class \(cat\).*at least 2"):
        load_data(str(one))
    single = make_folder(tmp_path / "single", classes=("cat", "dog"), train=1, test=0)
    with pytest.raises(UserError, match=r"single: the test split is empty.*cat 1\+0, dog 1\+0.*test_fraction=0\.3"):
        load_data(str(single), test_fraction=0.3)
    uneven = make_folder(tmp_path / "uneven", classes=("cat", "dog"), train=5, test=0)
    shutil.rmtree(uneven / "train" / "dog")
    write_png(uneven / "train" / "dog" / "0.png", (0, 0, 0))
    with pytest.raises(UserError, match=r"class\(es\) \['dog'\] have no test images"):
        load_data(str(uneven))  # its per-class accuracy would be NaN in metrics.json


def test_a_class_without_training_images_is_refused():
    from filterprior.data.checks import check_usable

    images = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    data = ImageData("d", ["a", "b"], images, np.array([0, 0]), images, np.array([0, 1]), "/data/d", "h")
    with pytest.raises(UserError, match=r"/data/d: class\(es\) \['b'\] have no training images.*b 0\+1"):
        check_usable(data, 0.2)


def crafted_tar(path: Path, member: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        data = io.BytesIO(b"x")
        good = tarfile.TarInfo("train/a/0.png")
        good.size = 1
        tar.addfile(good, data)
        if member.isfile():
            member.size = 1
            tar.addfile(member, io.BytesIO(b"x"))
        else:
            tar.addfile(member)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    "member, message",
    [
        (_member("/etc/evil.png"), "absolute path"),
        (_member("train/a/../../../evil.png"), r"'\.\.'"),
        (_member("train/a/link.png", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
        (_member("train/a/hard.png", tarfile.LNKTYPE, "train/a/0.png"), "is a link"),
        (_member("train/a/dev", tarfile.CHRTYPE), "device"),
        (_member("train/a/fifo", tarfile.FIFOTYPE), "device, pipe"),
    ],
)
def test_unsafe_archive_members_are_refused(tmp_path, member, message):
    archive = crafted_tar(tmp_path / "evil.tar.gz", member)
    with pytest.raises(UserError, match=message) as err:
        load_data(str(archive))
    assert member.name in str(err.value)


def test_bad_inputs_explain_what_is_expected(tmp_path):
    with pytest.raises(UserError, match="expected cifar10, cifar100, mini"):
        load_data("imagenet")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="not a tar archive"):
        load_data(str(tmp_path / "notes.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"train/<class>/<image>"):
        load_data(str(tmp_path / "empty"))
    folder = make_folder(tmp_path / "pets")
    write_png(folder / "test" / "dog" / "0.png", (0, 0, 0))
    with pytest.raises(UserError, match=r"\['dog'\]"):
        load_data(str(folder))
    with pytest.raises(UserError, match="image_size"):
        load_data("mini", image_size=0)
    with pytest.raises(UserError, match="test_fraction"):
        load_data("mini", test_fraction=1.0)


def test_cache_is_reused_and_rebuilt_when_the_source_changes(tmp_path, cache):
    folder = make_folder(tmp_path / "pets")
    first = load_data(str(folder))
    files = list(cache.glob("pets-*.npz"))
    assert len(files) == 1
    again = load_data(str(folder))
    np.testing.assert_array_equal(first.train_images, again.train_images)
    assert again.source_hash == first.source_hash
    write_png(folder / "train" / "ant" / "000.png", (9, 9, 9))
    os.utime(folder / "train" / "ant" / "000.png", ns=(1, 10**18))
    changed = load_data(str(folder))
    assert tuple(changed.train_images[0, 0, 0]) == (9, 9, 9)
    assert changed.source_hash != first.source_hash
    assert len(list(cache.glob("pets-*.npz"))) == 2


# ------------------------------------------------------------------------------------ mini dataset


def test_mini_loads_from_the_package_and_is_cached(cache):
    start = time.perf_counter()
    data = load_data("mini")
    assert data.name == "mini" and data.classes[:3] == ["airplane", "automobile", "bird"]
    assert data.train_images.shape == (100, 32, 32, 3) and data.test_images.shape == (1000, 32, 32, 3)
    assert np.bincount(data.train_labels).tolist() == [10] * 10
    assert np.bincount(data.test_labels).tolist() == [100] * 10
    assert data.source_hash == hashlib.sha256(MINI.read_bytes()).hexdigest()
    assert MINI.stat().st_size <= 3 * 2**20
    first = time.perf_counter() - start
    start = time.perf_counter()
    again = load_data("mini")
    second = time.perf_counter() - start
    np.testing.assert_array_equal(again.test_images, data.test_images)
    assert len(list(cache.glob("mini-*.npz"))) == 1
    assert second < max(first, 0.5)
    assert load_data("mini", image_size=16).train_images.shape == (100, 16, 16, 3)


def test_mini_holds_the_first_files_of_the_shared_archive_unchanged():
    base = shared_data()
    if base is None:
        pytest.skip("shared cifar10-jpeg.tar.gz not found (set FILTERPRIOR_DATA)")
    with tarfile.open(MINI) as tar:
        mini = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    wanted = {f"{s}/{c}/{i:04d}.jpg" for s, n in (("train", 10), ("test", 100)) for c in
              ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
              for i in range(n)}
    assert set(mini) == wanted
    with tarfile.open(base / "cifar10-jpeg.tar.gz") as tar:
        for m in tar:
            if m.name in mini:
                assert tar.extractfile(m).read() == mini[m.name], m.name


# ----------------------------------------------------------------------------- official CIFAR form


def official_files(kind: str, per_batch: int = 4) -> dict[str, bytes]:
    """A tiny archive in the real pickle format: batches of dict(data=N x 3072 uint8, labels=[...])."""
    rng = np.random.default_rng(1)

    def batch(n: int, key: bytes, classes: int) -> bytes:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [i % classes for i in range(n)]
        return pickle.dumps({b"data": data, key: labels, b"batch_label": b"x"}, protocol=2)

    if kind == "cifar10":
        names = [f"class{i}" for i in range(10)]
        files = {f"cifar-10-batches-py/data_batch_{i}": batch(per_batch, b"labels", 10) for i in range(1, 6)}
        files["cifar-10-batches-py/test_batch"] = batch(per_batch, b"labels", 10)
        files["cifar-10-batches-py/batches.meta"] = pickle.dumps({"label_names": names}, protocol=2)
    else:
        names = [f"fine{i}" for i in range(100)]
        files = {
            "cifar-100-python/train": batch(per_batch, b"fine_labels", 100),
            "cifar-100-python/test": batch(per_batch, b"fine_labels", 100),
            "cifar-100-python/meta": pickle.dumps({"fine_label_names": names, "coarse_label_names": ["c"]}),
        }
    return files


def write_official(kind: str, dest: Path, per_batch: int = 4) -> Path:
    files = official_files(kind, per_batch)
    with tarfile.open(dest, "w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return dest


def expected_first_image(kind: str) -> np.ndarray:
    files = official_files(kind)
    first = "cifar-10-batches-py/data_batch_1" if kind == "cifar10" else "cifar-100-python/train"
    row = pickle.loads(files[first])[b"data"][0]
    return row.reshape(3, 32, 32).transpose(1, 2, 0)


@pytest.mark.parametrize("kind", ["cifar10", "cifar100"])
def test_official_archive_and_extracted_folder(tmp_path, kind):
    archive = write_official(kind, tmp_path / f"{kind}.tar.gz")
    data = load_data(str(archive))
    n_train = 20 if kind == "cifar10" else 4
    assert data.name == kind and data.train_images.shape == (n_train, 32, 32, 3)
    assert data.test_images.shape == (4, 32, 32, 3)
    assert len(data.classes) == (10 if kind == "cifar10" else 100)
    assert data.classes[1] == ("class1" if kind == "cifar10" else "fine1")
    np.testing.assert_array_equal(data.train_images[0], expected_first_image(kind))  # CHW rows -> HWC
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    folder = next((tmp_path / "x").iterdir())
    from_folder = load_data(str(folder))
    np.testing.assert_array_equal(from_folder.train_images, data.train_images)
    np.testing.assert_array_equal(from_folder.test_labels, data.test_labels)


def test_official_pickle_that_is_not_arrays_is_refused(tmp_path):
    files = official_files("cifar10")
    files["cifar-10-batches-py/test_batch"] = pickle.dumps({"data": os.getcwd, "labels": []})
    folder = tmp_path / "cifar-10-batches-py"
    for name, blob in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(blob)
    with pytest.raises(UserError, match="test_batch.*refusing to load"):
        load_data(str(folder))


# --------------------------------------------------------------------- data root, download, offline


class _Server:
    """Serve one folder on 127.0.0.1 and count the requests."""

    def __init__(self, folder: Path):
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                server.requests += 1
                super().do_GET()

        self.requests = 0
        handler = functools.partial(Handler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path):
    folder = tmp_path / "www"
    folder.mkdir()
    archive = write_official("cifar10", folder / "cifar-10-python.tar.gz")
    server = _Server(folder)
    yield server, hashlib.md5(archive.read_bytes()).hexdigest()
    server.close()


def point_download(monkeypatch, url: str, md5: str) -> None:
    official = locate.OFFICIAL_ARCHIVES["cifar10"]
    pointed = locate.OfficialArchive(official.title, official.filename, url, md5)
    monkeypatch.setitem(locate.OFFICIAL_ARCHIVES, "cifar10", pointed)


def test_download_checks_md5_and_lands_in_the_root(tmp_path, monkeypatch, served):
    server, md5 = served
    point_download(monkeypatch, f"{server.url}/cifar-10-python.tar.gz", md5)
    root = tmp_path / "root"
    data = load_data("cifar10", root=root)
    assert data.name == "cifar10" and data.train_images.shape == (20, 32, 32, 3)
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-python.tar.gz"]
    assert hashlib.md5((root / "cifar-10-python.tar.gz").read_bytes()).hexdigest() == md5
    load_data("cifar10", root=root)
    assert server.requests == 1  # found in the root the second time


def test_download_with_wrong_md5_is_deleted(tmp_path, monkeypatch, served):
    server, md5 = served
    point_download(monkeypatch, f"{server.url}/cifar-10-python.tar.gz", "0" * 32)
    root = tmp_path / "root"
    with pytest.raises(UserError, match=f"MD5 {md5}, expected 0{{32}}"):
        load_data("cifar10", root=root)
    assert list(root.iterdir()) == []  # neither the file nor its temporary copy


def test_offline_or_no_download_says_where_to_put_the_file(tmp_path, monkeypatch):
    point_download(monkeypatch, "http://127.0.0.1:9/cifar-10-python.tar.gz", "0" * 32)  # port 9: refused
    root = tmp_path / "root"
    with pytest.raises(UserError) as err:
        load_data("cifar10", root=root)
    message = str(err.value)
    for part in ("cifar-10-batches-py/", "cifar-10-python.tar.gz", "cifar10-jpeg.tar.gz", "cifar10/",
                 str(root), "127.0.0.1:9", "FILTERPRIOR_DATA", "--data-root", "download failed"):
        assert part in message, part
    with pytest.raises(UserError, match="download=False") as err:
        load_data("cifar100", root=root, download=False)
    assert "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in str(err.value)
    assert "cifar100-png.tar.gz" in str(err.value)


def test_root_lookup_order_and_environment(tmp_path, monkeypatch):
    root = tmp_path / "root"
    make_folder(root / "cifar10", classes=("a", "b"))
    assert load_data("cifar10", root=root, download=False).classes == ["a", "b"]
    write_official("cifar10", root / "cifar-10-python.tar.gz")  # earlier in the order: wins
    monkeypatch.setenv("FILTERPRIOR_DATA", str(root))
    assert data_root() == root and data_root(tmp_path) == tmp_path
    data = load_data("cifar10", download=False)
    assert data.classes[0] == "class0" and data.source.endswith("cifar-10-python.tar.gz")


@pytest.mark.slow
def test_shared_cifar10_archive_full_decode_then_cache():
    base = shared_data()
    if base is None:
        pytest.skip("shared cifar10-jpeg.tar.gz not found (set FILTERPRIOR_DATA)")
    start = time.perf_counter()
    data = load_data("cifar10", root=base)
    first = time.perf_counter() - start
    start = time.perf_counter()
    again = load_data("cifar10", root=base)
    second = time.perf_counter() - start
    assert data.name == "cifar10" and len(data.classes) == 10 and data.classes[0] == "airplane"
    assert data.train_images.shape == (50000, 32, 32, 3) and data.test_images.shape == (10000, 32, 32, 3)
    assert np.bincount(data.test_labels).tolist() == [1000] * 10
    assert data.source_hash == "d877bdec11f54282b92da36e9f045bd305d663b1223e3822baff39ca9ff6690a"
    assert default_val_per_class(data) == 500
    np.testing.assert_array_equal(again.train_labels, data.train_labels)
    print(f"cifar10 first load {first:.1f} s, cached load {second:.2f} s")
    assert second < 3.0  # typically ~0.4 s; loose because the test machine is shared


# ------------------------------------------------------------------------------------------- splits


def labels_of(counts: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts).astype(np.int64)


def test_split_is_disjoint_stratified_and_sorted():
    labels = np.random.default_rng(0).permutation(labels_of([50, 40, 30]))
    split = make_split(labels, images_per_class=7, split_seed=3, val_per_class=5)
    assert split.train_idx.dtype == np.int64 and split.val_idx.dtype == np.int64
    assert (np.diff(split.train_idx) > 0).all() and (np.diff(split.val_idx) > 0).all()
    assert not set(split.train_idx) & set(split.val_idx)
    assert np.bincount(labels[split.train_idx]).tolist() == [7, 7, 7]
    assert np.bincount(labels[split.val_idx]).tolist() == [5, 5, 5]
    everything = make_split(labels, None, 3, 5)
    assert len(everything.train_idx) == 120 - 15 and not set(everything.train_idx) & set(everything.val_idx)


def test_validation_pool_does_not_depend_on_split_seed():
    labels = labels_of([30, 30])
    splits = [make_split(labels, 4, seed, 6) for seed in range(5)]
    for s in splits[1:]:
        np.testing.assert_array_equal(s.val_idx, splits[0].val_idx)
    assert len({tuple(s.train_idx) for s in splits}) > 1  # the subset does move with the seed
    np.testing.assert_array_equal(make_split(labels, 4, 2, 6).train_idx, splits[2].train_idx)


def test_split_is_the_same_in_another_process():
    labels = labels_of([25, 31, 18])
    code = (
        "import json, numpy as np; from filterprior.data import make_split; "
        "s = make_split(np.repeat(np.arange(3), [25, 31, 18]), 5, 11, 4); "
        "print(json.dumps([s.train_idx.tolist(), s.val_idx.tolist()]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    train, val = json.loads(out)
    here = make_split(labels, 5, 11, 4)
    assert here.train_idx.tolist() == train and here.val_idx.tolist() == val


def test_split_asking_too_many_names_the_class():
    labels = labels_of([20, 8])
    with pytest.raises(UserError, match=r"class 1 \('dog'\) has 8 training images, 6 outside"):
        make_split(labels, 7, 0, 2, classes=["cat", "dog"])
    with pytest.raises(UserError, match="class 1 has 8 training images, fewer than val_per_class=9"):
        make_split(labels, 1, 0, 9)


def test_default_val_per_class():
    def fake(name, counts):
        labels = labels_of(counts)
        empty = np.zeros((0, 32, 32, 3), np.uint8)
        return ImageData(name, [str(i) for i in range(len(counts))], empty, labels, empty, labels[:0], "", "")

    assert default_val_per_class(fake("cifar10", [5000] * 10)) == 500
    assert default_val_per_class(fake("cifar100", [500] * 100)) == 100
    assert default_val_per_class(fake("mini", [10] * 10)) == 0
    assert default_val_per_class(fake("pets", [300, 57, 2000])) == 5
    assert default_val_per_class(fake("big", [5000, 4000])) == 100
