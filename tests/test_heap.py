"""stemsplit.heap: one table of glibc heap settings per command and runtime, applied by the CLI only.

The settings are process-wide, so each case runs in a child process and reads glibc's own
account (mallinfo2) of where an 8 MB allocation came from: its own mapping or the heap.
"""
from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from stemsplit.cli import subcommand
from stemsplit.heap import DEFAULT_POLICY, KEEP_PAGES, KEEP_PAGES_ONE_ARENA, MAP_LARGE_ARRAYS, POLICIES, policy_for

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Runs `stemsplit <argv>`'s main with the Typer app replaced by nothing, then allocates 8 MB
# and frees it: mapped (bytes in hblkhd), or from the heap and kept there after the free (arena).
CHILD = r'''
import ctypes, json, os, sys

import stemsplit.cli as cli

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
cli.app = lambda: None
sys.argv = ["stemsplit", *sys.argv[1:]]
cli.main()
if "HEAP_TEST_RUNTIME" in os.environ:  # separate's model resolved on this runtime, as run_separate reports it
    from stemsplit.cli.separate import RichUI
    RichUI(False).model_ready("model", os.environ["HEAP_TEST_RUNTIME"])
before = libc.mallinfo2()
block = libc.malloc(8 << 20)
during = libc.mallinfo2()
libc.free(block)
after = libc.mallinfo2()
print(json.dumps({"mapped": during.hblkhd - before.hblkhd, "kept": after.arena - before.arena}))
'''


def _allocation(*argv: str, env: dict | None = None) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, check=True,
                          env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_one_table_decides_each_commands_policy():
    assert POLICIES == {("separate", None): MAP_LARGE_ARRAYS, ("separate", "onnx"): MAP_LARGE_ARRAYS,
                        ("separate", "torch"): KEEP_PAGES_ONE_ARENA} and DEFAULT_POLICY == KEEP_PAGES
    assert policy_for("separate").mmap_threshold == 4 << 20 and policy_for("separate").trim_threshold == 1 << 30
    assert policy_for("separate", "onnx") == MAP_LARGE_ARRAYS
    assert policy_for("separate", "torch") == KEEP_PAGES_ONE_ARENA
    assert KEEP_PAGES_ONE_ARENA.arena_max == 1 and KEEP_PAGES.arena_max is None
    for command in ("train", "evaluate", "prepare", "export", "ensemble", None, "no-such-command"):
        assert policy_for(command) == KEEP_PAGES
    assert KEEP_PAGES.mmap_threshold == KEEP_PAGES.trim_threshold == 1 << 30


def test_main_finds_the_subcommand():
    assert subcommand(["separate", "song.wav", "-o", "out"]) == "separate"
    assert subcommand(["--version"]) is None and subcommand([]) is None
    assert subcommand(["train", "--config", "c.yaml"]) == "train"


@pytest.mark.skipif(not GLIBC, reason="the heap settings are glibc's; elsewhere they are a no-op")
def test_separate_maps_large_arrays_and_the_other_commands_keep_them_on_the_heap():
    separate = _allocation("separate", "--help")
    assert separate["mapped"] >= 8 << 20 and separate["kept"] < 1 << 20
    for command in ("train", "evaluate"):
        other = _allocation(command, "--help")
        assert other["mapped"] == 0 and other["kept"] >= 7 << 20, (command, other)  # less what was free at the top


@pytest.mark.skipif(not GLIBC, reason="the heap settings are glibc's; elsewhere they are a no-op")
def test_separate_on_torch_keeps_large_arrays_on_the_heap_once_the_model_is_resolved():
    import os

    torch = _allocation("separate", "--help", env={**os.environ, "HEAP_TEST_RUNTIME": "torch"})
    assert torch["mapped"] == 0 and torch["kept"] >= 7 << 20, torch
    onnx = _allocation("separate", "--help", env={**os.environ, "HEAP_TEST_RUNTIME": "onnx"})
    assert onnx["mapped"] >= 8 << 20 and onnx["kept"] < 1 << 20, onnx


@pytest.mark.skipif(not GLIBC, reason="the heap settings are glibc's; elsewhere they are a no-op")
def test_a_users_malloc_variables_win():
    import os

    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "131072"}
    # glibc's defaults then hold: an 8 MB block is mapped on its own, whatever the command
    assert _allocation("train", "--help", env=env)["mapped"] >= 8 << 20


def test_the_python_api_leaves_the_allocator_alone():
    """Only the CLI applies a policy (its main, and separate's UI once the runtime is known): the
    library modules never call it."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "stemsplit"
    callers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                     if "apply_heap_policy(" in p.read_text() and p.name != "heap.py")
    assert callers == ["cli/__init__.py", "cli/separate.py"]
