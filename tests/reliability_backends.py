"""Backends planted by tests/test_store_reliability.py through the HARNESS_EXTRA_BACKENDS testing hook
(harness/execution/worker.py). Not a test module itself.

- FillDiskBackend ("filldisk"): the toy engine (tests/executor_backends.py), but generate() first fills
  the file system of $HARNESS_TEST_FILL until it is full (the disk fills up during an evaluation).
"""
from __future__ import annotations

import errno
import os

from executor_backends import ToyBackend, ToyEngine


class _FillEngine(ToyEngine):
    def generate(self, prompts, sampling):
        path = os.environ["HARNESS_TEST_FILL"]
        with open(path, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        return super().generate(prompts, sampling)


class FillDiskBackend(ToyBackend):
    engine_cls = _FillEngine
