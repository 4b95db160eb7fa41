"""Resource slots: which GPUs and how many CPU threads each concurrent evaluation gets.

``discover()`` finds the machine: its GPUs (``CUDA_VISIBLE_DEVICES`` when set, as CUDA reads it;
else torch's device count, asked only where an NVIDIA driver is present, so a CPU machine never
imports torch for it) and the CPU cores this process may use. A ``SlotPool`` hands each running
evaluation a disjoint ``Slot``: the GPUs its backend occupies (``Backend.gpus_per_evaluation``: the
config's ``world_size`` for TensorRT-LLM, one for ``hf``, none for a CPU-only backend) and a thread
budget of cores / parallel. An evaluation that does not fit waits, first come first served, so a
``world_size`` 4 config is not starved by single-GPU ones. ``--max-parallel auto`` fills the node:
one evaluation per GPU, or per core on a CPU machine.

The worker sees its slot through its environment (``Slot.env``): ``CUDA_VISIBLE_DEVICES`` (set even
to "" on a GPU machine, so a CPU backend never touches a GPU another slot uses), and the thread
variables OpenMP, MKL, OpenBLAS and torch read (``harness.execution.envscrub.thread_env``).
"""
from __future__ import annotations

import argparse
import itertools
import os
import threading
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from harness.errors import HarnessError

AUTO = "auto"


@dataclass(frozen=True)
class Machine:
    gpus: tuple[str, ...]  # device ids as CUDA_VISIBLE_DEVICES names them (indices or UUIDs)
    cores: int
    source: str  # where the GPU list came from: CUDA_VISIBLE_DEVICES | torch | none


@dataclass(frozen=True)
class Slot:
    index: int
    gpus: tuple[str, ...] | None  # None: the machine has no GPUs (leave CUDA_VISIBLE_DEVICES alone)
    threads: int

    def env(self) -> dict:
        return {} if self.gpus is None else {"CUDA_VISIBLE_DEVICES": ",".join(self.gpus)}

    def to_dict(self) -> dict:
        return {"slot": self.index, "gpus": None if self.gpus is None else list(self.gpus), "threads": self.threads}


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def visible_devices(value: str) -> tuple[str, ...]:
    """CUDA_VISIBLE_DEVICES as CUDA reads it: comma-separated ids, up to the first invalid one ("-1")."""
    ids = []
    for item in (x.strip() for x in value.split(",")):
        if not item or item.startswith("-"):
            break
        ids.append(item)
    return tuple(ids)


def torch_gpu_count() -> int:
    """GPUs torch sees; 0 without an NVIDIA driver (then torch is not even imported) or without torch."""
    if not (Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()):
        return 0
    try:
        import torch

        return int(torch.cuda.device_count())
    except Exception:  # noqa: BLE001 - no usable torch/CUDA: a CPU machine
        return 0


def discover(env: dict | None = None, gpu_count: Callable[[], int] = torch_gpu_count) -> Machine:
    env = os.environ if env is None else env
    cores = cpu_cores()
    if env.get("CUDA_VISIBLE_DEVICES") is not None:
        return Machine(visible_devices(env["CUDA_VISIBLE_DEVICES"]), cores, "CUDA_VISIBLE_DEVICES")
    n = gpu_count()
    return Machine(tuple(str(i) for i in range(n)), cores, "torch" if n else "none")


def auto_parallel(machine: Machine) -> int:
    """``--max-parallel auto``: one evaluation per GPU, or per core on a CPU machine."""
    return max(1, len(machine.gpus) or machine.cores)


def parse_max_parallel(text) -> int | str:
    """argparse ``type`` of ``--max-parallel``: a positive integer or ``auto``."""
    if str(text).strip().lower() == AUTO:
        return AUTO
    try:
        n = int(text)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a positive integer (evaluations at once) nor auto "
                                         "(one per GPU, or per core on a CPU machine); pass e.g. --max-parallel 2")
    return n


class SlotPool:
    """Disjoint slots for up to ``parallel`` concurrent evaluations on ``machine``."""

    def __init__(self, machine: Machine, parallel: int):
        self.machine = machine
        self.parallel = max(1, int(parallel))
        self.threads = max(1, machine.cores // self.parallel)
        self._free = list(machine.gpus)
        self._indices = set(range(self.parallel))
        self._queue: deque = deque()
        self._tickets = itertools.count()
        self._cond = threading.Condition()

    def gpus_for(self, backend_cls, config: dict | None) -> int:
        """GPUs an evaluation occupies here (none on a machine without GPUs)."""
        return backend_cls.gpus_per_evaluation(config) if self.machine.gpus else 0

    def capacity(self, gpus: int) -> int:
        """How many evaluations that each need ``gpus`` GPUs run at once."""
        return max(1, min(self.parallel, len(self.machine.gpus) // gpus)) if gpus else self.parallel

    def check(self, gpus: int) -> None:
        have = len(self.machine.gpus)
        if gpus > have:
            raise HarnessError(f"an evaluation needs {gpus} GPUs (world_size {gpus}) but this machine has {have} "
                               f"({self.machine.source}: {', '.join(self.machine.gpus) or 'none'}); lower "
                               "world_size in the config, run on a larger node, or use --executor slurm")

    @contextmanager
    def slot(self, gpus: int = 0) -> Iterator[Slot]:
        """Wait for ``gpus`` free GPUs and a free slot (first come, first served), hold them."""
        self.check(gpus)
        ticket = next(self._tickets)
        with self._cond:
            self._queue.append(ticket)
            while self._queue[0] != ticket or not self._indices or len(self._free) < gpus:
                self._cond.wait()
            self._queue.popleft()
            index = min(self._indices)
            self._indices.discard(index)
            taken, self._free = self._free[:gpus], self._free[gpus:]
            self._cond.notify_all()
        try:
            yield Slot(index, tuple(taken) if self.machine.gpus else None, self.threads)
        finally:
            with self._cond:
                order = {d: i for i, d in enumerate(self.machine.gpus)}
                self._free = sorted(self._free + taken, key=order.__getitem__)
                self._indices.add(index)
                self._cond.notify_all()
