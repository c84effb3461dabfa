"""A command whose reader goes away (`filterprior models | head -1`) ends quietly, without a traceback."""

from __future__ import annotations

import subprocess
import sys


def test_a_closed_pipe_ends_the_command_without_a_traceback():
    # `models` prints one line per registered model; the reader takes none of them and closes.
    proc = subprocess.Popen([sys.executable, "-m", "filterprior", "models"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert proc.returncode in (0, 141)
