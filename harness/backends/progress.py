"""Per-sample progress of a running ``Engine.generate`` call, reported to whoever runs the evaluation.

A backend calls ``report_samples(done, total)`` as completions finish (the hf generator after each
batch, the TensorRT-LLM adapters as each request's result arrives). Where it goes:

* ``set_sink(callback)``: a callback in this process (``diagnose`` and the in-process executor);
* else ``$HARNESS_PROGRESS_FILE``: one line ``samples <done> <total>`` appended per report, at most
  every ``MIN_INTERVAL_S`` seconds (the first and the last report always) - the channel between a
  worker process and the orchestrator, which tails the file (``harness.execution.progress``);
* else nothing (a backend used on its own).

Reporting never raises: progress is a nicety, the evaluation is what counts.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable

PROGRESS_FILE_ENV = "HARNESS_PROGRESS_FILE"
MIN_INTERVAL_S = 0.25

_sink: Callable[[int, int], None] | None = None
_lock = threading.Lock()
_last = {"t": 0.0}


def set_sink(callback: Callable[[int, int], None] | None) -> None:
    """Send reports of this process to ``callback(done, total)`` (None: back to the file or nothing)."""
    global _sink
    _sink = callback


def report_samples(done: int, total: int) -> None:
    """``done`` of ``total`` prompts of the current generate call have their completion."""
    try:
        if _sink is not None:
            _sink(int(done), int(total))
            return
        path = os.environ.get(PROGRESS_FILE_ENV)
        if not path:
            return
        with _lock:
            now = time.monotonic()
            if 0 < done < total and now - _last["t"] < MIN_INTERVAL_S:
                return
            _last["t"] = now
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"samples {int(done)} {int(total)}\n")
    except Exception:  # noqa: BLE001 - never let progress break an evaluation
        pass


def read_samples(path: str | os.PathLike) -> tuple[int, int] | None:
    """The last complete report in a progress file: (done, total), or None."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode("utf-8", errors="replace").split("\n")
    except OSError:
        return None
    for line in reversed(lines[:-1]):  # the part after the last newline may be half written
        parts = line.split()
        if len(parts) == 3 and parts[0] == "samples" and parts[1].isdigit() and parts[2].isdigit():
            return int(parts[1]), int(parts[2])
    return None


def quiet_library_progress() -> None:
    """Turn off the libraries' own progress bars (transformers' "Loading weights", hub downloads): they
    write carriage-return bars into worker logs and over the harness's display, which reports progress
    itself. Works before and after transformers is imported."""
    import sys

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when huggingface_hub is imported
    # imported already (a task's data loading, e.g. lm-eval's GSM8K): the environment is read, switch it off
    # directly; transformers' bars follow the hub's switch when transformers is imported after it
    # (transformers/utils/logging.py@v5.24.0, ``_tqdm_active = not hf_hub_utils.are_progress_bars_disabled()``)
    for module, switch in (("huggingface_hub.utils", "disable_progress_bars"),
                           ("transformers.utils.logging", "disable_progress_bar")):
        lib = sys.modules.get(module)
        if lib is not None and hasattr(lib, switch):
            try:
                getattr(lib, switch)()
            except Exception:  # noqa: BLE001
                pass
