"""Rebuild src/filterprior/assets/mini-cifar10.tar.gz from the shared CIFAR-10 JPEG archive.

Selection: for each class, the first 10 files of train/<class>/ and the first 100 files of
test/<class>/ in sorted file-name order. The JPEG bytes are copied unchanged (no re-encoding). The
output is byte-for-byte reproducible: members in sorted order, fixed owner and times, gzip mtime 0.

    python scripts/build_mini_dataset.py [--source PATH] [--out PATH]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path, PurePosixPath

from filterprior.utils import atomic_path

REPO = Path(__file__).resolve().parents[1]
SOURCE_NAME = "cifar10-jpeg.tar.gz"
# from the shared data README
SOURCE_SHA256 = "d877bdec11f54282b92da36e9f045bd305d663b1223e3822baff39ca9ff6690a"
PER_SPLIT = {"train": 10, "test": 100}
MTIME = 1577836800  # 2020-01-01, the source archive's member time


def default_source() -> Path:
    env = os.environ.get("FILTERPRIOR_DATA")
    base = Path(env) if env else REPO.parent / "shared" / "data"
    return base / SOURCE_NAME


def select(source: Path) -> dict[str, bytes]:
    """{member name: JPEG bytes} of the chosen images."""
    by_folder: dict[tuple[str, str], dict[str, bytes]] = {}
    with tarfile.open(source, "r:gz") as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            if member.isfile() and len(parts) == 3 and parts[0] in PER_SPLIT:
                data = tar.extractfile(member).read()
                by_folder.setdefault((parts[0], parts[1]), {})[member.name] = data
    chosen = {}
    for (split, _cls), files in sorted(by_folder.items()):
        for name in sorted(files)[: PER_SPLIT[split]]:
            chosen[name] = files[name]
    return chosen


def write_archive(files: dict[str, bytes], out: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(files[name]), MTIME, 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        with gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0, compresslevel=9) as gz:
            gz.write(raw.getvalue())


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--source", type=Path, default=default_source(), help=f"path of {SOURCE_NAME}")
    parser.add_argument("--out", type=Path, default=REPO / "src/filterprior/assets/mini-cifar10.tar.gz")
    args = parser.parse_args()
    if not args.source.is_file():
        print(f"error: {args.source} not found; pass --source or set FILTERPRIOR_DATA", file=sys.stderr)
        return 2
    digest = hashlib.sha256(args.source.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        print(f"error: {args.source} has sha256 {digest}, expected {SOURCE_SHA256}", file=sys.stderr)
        return 2
    files = select(args.source)
    write_archive(files, args.out)
    print(f"wrote {args.out}: {len(files)} images, {args.out.stat().st_size:,} bytes, "
          f"sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
