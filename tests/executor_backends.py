"""Backends planted by tests/test_executor.py, test_runner.py and test_resume.py through the
HARNESS_EXTRA_BACKENDS testing hook (harness/executor.py). Not a test module itself.

- ToyBackend ("toy"): no torch; answers a letter derived from the prompt hash, so results are
  deterministic and cheap. Appends one line per open() to $HARNESS_TEST_MARKER when set (counts
  engine launches across processes), and sleeps $HARNESS_TEST_SLEEP seconds in generate().
- SegfaultBackend ("segv"): generate() kills its own process with SIGSEGV.
- HangBackend ("hang"): generate() sleeps forever.
- ExitBackend ("exit3"): generate() calls os._exit(3) after printing a line.
- BadInputBackend ("badinput"): open() raises HarnessError (bad input, not an engine result).
"""
from __future__ import annotations

import hashlib
import os
import signal
import time

from harness.backends.base import Backend, Completion, Engine


class ToyEngine(Engine):
    def generate(self, prompts, sampling):
        delay = float(os.environ.get("HARNESS_TEST_SLEEP", "0") or 0)
        if delay:
            time.sleep(delay)
        out = []
        for p in prompts:
            letter = "ABCD"[int(hashlib.sha256(p.encode()).hexdigest(), 16) % 4]
            out.append(Completion(text=f" {letter}", token_ids=[ord(letter)], finish_reason="length",
                                  prompt_token_ids=[len(p)],
                                  answer_logprobs={f" {x}": (-0.1 if x == letter else -3.0) for x in "ABCD"}))
        return out

    def info(self):
        return {"engine": "toy", "env_seen": {k: os.environ.get(k) for k in ("AD_DUMP_GRAPHS_DIR", "OMP_NUM_THREADS")}}


class ToyBackend(Backend):
    name = "toy"
    engine_cls = ToyEngine

    def open(self, model, config, context=None):
        marker = os.environ.get("HARNESS_TEST_MARKER")
        if marker:
            with open(marker, "a") as f:
                f.write(f"{os.getpid()} {model}\n")
        return self.engine_cls()

    def version_key(self):
        return {"toy": "1"}


class _SegvEngine(ToyEngine):
    def generate(self, prompts, sampling):
        print("about to segfault", flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)


class SegfaultBackend(ToyBackend):
    engine_cls = _SegvEngine


class _HangEngine(ToyEngine):
    def generate(self, prompts, sampling):
        print("hanging now", flush=True)
        while True:
            time.sleep(60)


class HangBackend(ToyBackend):
    engine_cls = _HangEngine


class _ExitEngine(ToyEngine):
    def generate(self, prompts, sampling):
        print("engine exits with 3", flush=True)
        os._exit(3)


class ExitBackend(ToyBackend):
    engine_cls = _ExitEngine


class BadInputBackend(ToyBackend):
    def open(self, model, config, context=None):
        from harness.errors import HarnessError

        raise HarnessError("unknown transform 'fuse_nothing'; valid: fuse_a, fuse_b. Fix the config.")


EXTRA = ",".join([
    "toy=executor_backends:ToyBackend",
    "segv=executor_backends:SegfaultBackend",
    "hang=executor_backends:HangBackend",
    "exit3=executor_backends:ExitBackend",
    "badinput=executor_backends:BadInputBackend",
])
