"""Backends planted by tests/test_executor.py, test_runner.py and test_resume.py through the
HARNESS_EXTRA_BACKENDS testing hook (harness/execution/executor.py). Not a test module itself.

- ToyBackend ("toy"): no torch; answers a letter derived from the prompt hash, so results are
  deterministic and cheap. Appends one line per open() to $HARNESS_TEST_MARKER when set (counts
  engine launches across processes), and sleeps $HARNESS_TEST_SLEEP seconds in generate().
- SegfaultBackend ("segv"): generate() kills its own process with SIGSEGV.
- HangBackend ("hang"): generate() sleeps forever.
- ExitBackend ("exit3"): generate() calls os._exit(3) after printing a line.
- BadInputBackend ("badinput"): open() raises HarnessError (bad input, not an engine result).
- ToyRanksBackend ("toy-ranks"): one GPU per rank of the config's world_size, as TensorRT-LLM;
  ToyCpuBackend ("toy-cpu"): never takes a GPU, one torch thread, as the emulator. Every toy engine
  reports the slot variables it saw (CUDA_VISIBLE_DEVICES, thread counts) and when it generated.
"""
from __future__ import annotations

import hashlib
import os
import signal
import time

from harness.backends.base import Backend, Completion, Engine


class ToyEngine(Engine):
    window = None

    def generate(self, prompts, sampling):
        t0 = time.time()
        delay = float(os.environ.get("HARNESS_TEST_SLEEP", "0") or 0)
        if delay:
            time.sleep(delay)
        self.window = (t0, time.time())
        out = []
        for p in prompts:
            letter = "ABCD"[int(hashlib.sha256(p.encode()).hexdigest(), 16) % 4]
            out.append(Completion(text=f" {letter}", token_ids=[ord(letter)], finish_reason="length",
                                  prompt_token_ids=[len(p)],
                                  answer_logprobs={f" {x}": (-0.1 if x == letter else -3.0) for x in "ABCD"}))
        return out

    def info(self):
        seen = ("AD_DUMP_GRAPHS_DIR", "AD_COMPILE_BACKEND", "WORLD_SIZE", "world_size", "LLM_MODELS_ROOT",
                "OMP_NUM_THREADS", "MKL_NUM_THREADS", "HARNESS_TORCH_THREADS", "HF_HUB_OFFLINE", "RANK",
                "CUDA_VISIBLE_DEVICES")
        return {"engine": "toy", "pid": os.getpid(), "env_seen": {k: os.environ.get(k) for k in seen},
                "generate_window": self.window}


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
        print(f"hanging now pid={os.getpid()}", flush=True)
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
    "broken=no_such_module_xyz:Backend",  # import fails inside the worker, outside run_evaluation's guard
])


class ToyADBackend(ToyBackend):
    """Takes AD-style configs; its default.yaml is $HARNESS_TEST_DEFAULT_YAML (key resolution tests)."""

    takes_ad_config = True

    def default_yaml(self):
        return os.environ.get("HARNESS_TEST_DEFAULT_YAML")


class ToyRanksBackend(ToyBackend):
    """GPU-style like the TensorRT-LLM backends: one GPU per rank of the config's world_size."""

    takes_world_size = True

    @classmethod
    def gpus_required(cls, config):
        return max(1, int((config or {}).get("world_size") or 1))


class ToyCpuBackend(ToyBackend):
    """A CPU-only backend with one torch thread, like the emulator."""

    uses_gpu = False
    cpu_threads = 1


EXTRA += ",toy-ad=executor_backends:ToyADBackend,toy-ranks=executor_backends:ToyRanksBackend"
EXTRA += ",toy-cpu=executor_backends:ToyCpuBackend"
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def install(monkeypatch) -> None:
    """Register the planted backends here and, through the env hook, in every worker."""
    from harness import backends

    for item in EXTRA.split(","):
        name, target = item.split("=")
        monkeypatch.setitem(backends.BACKENDS, name, target)
    monkeypatch.setenv("HARNESS_EXTRA_BACKENDS", EXTRA)
    pp = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", TESTS_DIR + (os.pathsep + pp if pp else ""))
    import sys

    if TESTS_DIR not in sys.path:
        monkeypatch.syspath_prepend(TESTS_DIR)
