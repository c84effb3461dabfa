"""Fetch a file over HTTP(S) with a progress bar; keep it only if its MD5 matches."""

from __future__ import annotations

import hashlib
import http.client
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from filterprior.errors import UserError
from filterprior.utils import atomic_path

# What "the network did not give us the file" looks like; the caller turns it into advice.
NETWORK_ERRORS = (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException, ValueError)


class DownloadFailed(Exception):
    """The file could not be fetched (offline, refused, HTTP error, bad URL)."""


def download(url: str, dest: Path, md5: str, *, timeout: float = 30.0, progress: bool = True) -> Path:
    """Download `url` to `dest` through a temporary file renamed only once the MD5 matches.

    A wrong MD5 deletes the temporary file and raises UserError; a network failure raises
    DownloadFailed; a destination that cannot be written raises UserError. The progress bar switches
    itself off when stderr is not a terminal.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the data folder {dest.parent}: {exc}") from exc
    print(f"filterprior: downloading {url} -> {dest}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(dest) as tmp:
            total = int(response.headers.get("Content-Length") or 0) or None
            digest = hashlib.md5()
            # disable=None: tqdm switches itself off when stderr is not a terminal
            disable = None if progress else True
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=disable)
            with bar, open(tmp, "wb") as out:
                while block := response.read(1 << 20):
                    digest.update(block)
                    out.write(block)
                    bar.update(len(block))
            if digest.hexdigest() != md5:
                raise UserError(
                    f"download of {url} has MD5 {digest.hexdigest()}, expected {md5}; the file was deleted. "
                    "Try again, or fetch it by hand and check its MD5"
                )
    except NETWORK_ERRORS as exc:
        raise DownloadFailed(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from exc
    except OSError as exc:
        raise UserError(f"cannot write {dest}: {exc}") from exc
    return dest
