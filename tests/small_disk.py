"""A real full disk for tests: run a command in a private mount namespace with a small tmpfs mounted at a
directory, so writes there fail with ENOSPC exactly as on a full disk. Not a test module itself.

``run_on_small_disk(mountpoint, size_kb, argv, **kw)`` -> CompletedProcess; ``pytest.skip`` where mount
namespaces are not available (no ``unshare``, or neither root nor user namespaces).
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile

import pytest

# $0: the mount point, $1: the size; then the command
SCRIPT = 'mount -t tmpfs -o size="$1"k tmpfs "$0" && shift && exec "$@"'


@functools.lru_cache(maxsize=None)
def _unshare_prefix() -> tuple[str, ...] | None:
    """``unshare`` flags that can mount a tmpfs here (root: a mount namespace; else also a user one)."""
    if shutil.which("unshare") is None:
        return None
    probe = tempfile.mkdtemp(prefix="harness-tmpfs-probe-")
    try:
        for flags in (("-m",), ("-Ur", "-m")):
            r = subprocess.run(["unshare", *flags, "sh", "-c", SCRIPT, probe, "64", "true"], capture_output=True,
                               timeout=30)
            if r.returncode == 0:
                return ("unshare", *flags)
    finally:
        os.rmdir(probe)
    return None


def run_on_small_disk(mountpoint, size_kb: int, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    prefix = _unshare_prefix()
    if prefix is None:
        pytest.skip("cannot mount a tmpfs in a private mount namespace here (unshare)")
    os.makedirs(mountpoint, exist_ok=True)
    return subprocess.run([*prefix, "sh", "-c", SCRIPT, str(mountpoint), str(size_kb), *argv],
                          capture_output=True, text=True, **kwargs)
