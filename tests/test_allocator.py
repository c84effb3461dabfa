"""The training engine keeps freed memory in the process, so big buffers are not page-faulted in every step."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Counts the minor page faults of 10 allocate-touch-free rounds of a 64 MB tensor (above glibc's largest
# mmap threshold, so as it comes glibc maps fresh pages for every round). Tuned, the heap takes a few
# rounds to settle (on this machine the first two or three rounds fault, depending on where small
# allocations land between them), so 5 warm-up rounds come before the count.
SCRIPT = """
import resource, sys, torch
from filterprior.train.allocator import keep_freed_memory
tuned = keep_freed_memory() if sys.argv[1] == "keep" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def rounds(n):
    for _ in range(n):
        x = torch.empty(16 * 2**20)
        x.fill_(1.0)
        del x
rounds(5)
before = faults()
rounds(10)
print(tuned, faults() - before)
"""
PAGES = 64 * 2**20 // 4096  # pages of one buffer


def _faults(mode: str, **env: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.slow
@pytest.mark.skipif(not GLIBC, reason="the allocator setting is glibc's")
def test_kept_memory_is_reused_without_page_faults():
    tuned, kept = _faults("keep")
    untuned, default = _faults("default")
    assert tuned and not untuned
    assert default > 5 * PAGES  # glibc as it comes: fresh pages nearly every round
    assert kept < 2 * PAGES  # tuned: settled, at most one stray round


@pytest.mark.slow
@pytest.mark.skipif(not GLIBC, reason="the allocator setting is glibc's")
def test_filterprior_malloc_default_leaves_glibc_alone():
    tuned, faults = _faults("keep", FILTERPRIOR_MALLOC="default")
    assert not tuned and faults > 5 * PAGES
