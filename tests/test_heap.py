"""stemsplit.heap: the CLI's fixed mmap threshold (glibc), a no-op elsewhere."""
from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path


def test_map_large_allocations_sets_the_glibc_threshold():
    # in a subprocess: the setting is process-wide
    code = ("import numpy as np; from stemsplit.heap import map_large_allocations; "
            "ok = map_large_allocations(); a = np.ones(8 << 20, np.uint8); print(ok, int(a.sum()))")
    ok, total = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               check=True).stdout.split()
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert ok == "True"
    assert total == str(8 << 20)  # large allocations work as before


def test_the_separate_command_sets_it_and_the_api_does_not():
    root = Path(__file__).resolve().parents[1] / "stemsplit"
    assert "map_large_allocations()" in (root / "cli" / "separate.py").read_text()
    assert "heap" not in (root / "pipelines" / "separator.py").read_text()
