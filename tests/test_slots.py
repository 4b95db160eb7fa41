"""Resource slots (harness/execution/slots.py): each concurrent worker gets its own GPUs and a thread
budget, a config that does not fit waits, --max-parallel auto fills the machine. GPUs are faked
(an injected device list): the workers only see CUDA_VISIBLE_DEVICES."""
from __future__ import annotations

import argparse
import random
import threading
import time

import pytest

import executor_backends
from harness.errors import HarnessError
from harness.evaluation.spec import EvalSpec
from harness.execution.executor import LocalExecutor
from harness.execution.runner import Runner
from harness.execution.slots import Machine, SlotPool, discover, parse_max_parallel
from harness.paths import DEMO_MMLU

FOUR_GPUS = Machine(("0", "1", "2", "3"), cores=8, source="test")


@pytest.fixture(autouse=True)
def planted(monkeypatch):
    executor_backends.install(monkeypatch)


def spec(backend="toy", seed=0, **config) -> EvalSpec:
    return EvalSpec(backend=backend, model="toy-model", dataset=str(DEMO_MMLU), samples=4, seed=seed,
                    config=config)


def devices(res) -> set[str]:
    return set(filter(None, res.info["env_seen"]["CUDA_VISIBLE_DEVICES"].split(",")))


def overlap(a, b) -> bool:
    (a0, a1), (b0, b1) = a.info["generate_window"], b.info["generate_window"]
    return a0 < b1 and b0 < a1


# -- discovery and the flag -------------------------------------------------------------------
def test_discovery_reads_cuda_visible_devices_as_cuda_does():
    assert discover({"CUDA_VISIBLE_DEVICES": "2,5"}).gpus == ("2", "5")
    assert discover({"CUDA_VISIBLE_DEVICES": "3,-1,4"}).gpus == ("3",)  # CUDA stops at an invalid id
    assert discover({"CUDA_VISIBLE_DEVICES": ""}).gpus == ()
    found = discover({}, gpu_count=lambda: 2)
    assert found.gpus == ("0", "1") and found.source == "torch"
    assert discover({}, gpu_count=lambda: 0).source == "none"


def test_max_parallel_flag_takes_a_number_or_auto():
    assert parse_max_parallel("3") == 3 and parse_max_parallel("auto") == "auto"
    for bad in ("0", "-2", "two"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive integer .* nor auto"):
            parse_max_parallel(bad)


def test_auto_fills_the_node(tmp_path):
    assert LocalExecutor(max_parallel="auto", machine=FOUR_GPUS).max_parallel == 4
    assert LocalExecutor(max_parallel="auto", machine=Machine((), 6, "test")).max_parallel == 6
    with Runner(quiet=True, max_parallel="auto", executor_options={"machine": FOUR_GPUS}, cache_dir=tmp_path) as r:
        assert r.max_parallel == 4
        assert r.parallel_for(spec("toy-ranks", world_size=2)) == 2  # two GPUs each: two at once
        assert r.parallel_for(spec("toy-cpu")) == 4


# -- the pool ---------------------------------------------------------------------------------
def test_pool_never_hands_out_a_device_twice_under_contention():
    pool = SlotPool(Machine(tuple("01234567"), 8, "test"), parallel=5)
    held: set[str] = set()
    lock = threading.Lock()
    errors = []

    def worker(seed):
        rng = random.Random(seed)
        for _ in range(20):
            with pool.slot(rng.choice([0, 1, 1, 2, 4])) as slot:
                with lock:
                    if held & set(slot.gpus):
                        errors.append((slot, set(held)))
                    held.update(slot.gpus)
                time.sleep(rng.random() / 500)
                with lock:
                    held.difference_update(slot.gpus)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(pool._free) == list("01234567") and pool._indices == set(range(5))


def test_a_config_larger_than_the_machine_is_a_clear_error():
    with pytest.raises(HarnessError, match=r"needs 8 GPUs \(world_size 8\) but this machine has 4.*lower world_size"):
        SlotPool(FOUR_GPUS, 2).check(8)


# -- workers ----------------------------------------------------------------------------------
def test_two_concurrent_gpu_workers_never_share_a_device(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_SLEEP", "1.5")
    with Runner(cache_dir=tmp_path, quiet=True, max_parallel=2, timeout=60,
                executor_options={"machine": FOUR_GPUS, "fork_server": False}) as r:
        out = r.evaluate_many([spec(seed=i) for i in range(4)])
    assert all(res.status == "ok" for res in out)
    assert all(len(devices(res)) == 1 for res in out)  # one GPU each (hf-style backend)
    pairs = [(a, b) for i, a in enumerate(out) for b in out[i + 1:] if overlap(a, b)]
    assert pairs, "the evaluations never ran at the same time"
    for a, b in pairs:
        assert not devices(a) & devices(b), (devices(a), devices(b))


def test_world_size_sets_the_devices_and_a_config_that_does_not_fit_waits(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_SLEEP", "1")
    three = Machine(("0", "1", "2"), cores=4, source="test")
    with Runner(cache_dir=tmp_path, quiet=True, max_parallel=3, timeout=60,
                executor_options={"machine": three, "fork_server": False}) as r:
        two, two_b, one = r.evaluate_many([spec("toy-ranks", 0, world_size=2), spec("toy-ranks", 1, world_size=2),
                                           spec("toy-ranks", 2)])
    assert len(devices(two)) == len(devices(two_b)) == 2 and len(devices(one)) == 1
    assert not overlap(two, two_b)  # 2 + 2 GPUs do not fit on 3: the second waited
    for other in (two, two_b):
        if overlap(other, one):
            assert not devices(other) & devices(one)


def test_cpu_backend_gets_no_gpu_and_its_own_thread_count(tmp_path):
    ex = LocalExecutor(timeout=60, max_parallel=2, machine=Machine(("0", "1"), cores=8, source="test"),
                       fork_server=False)
    cpu = ex.run(spec("toy-cpu"), tmp_path / "cpu")
    gpu = ex.run(spec("toy"), tmp_path / "gpu")
    assert cpu.info["env_seen"]["CUDA_VISIBLE_DEVICES"] == "" and devices(gpu) <= {"0", "1"} and devices(gpu)
    assert cpu.info["env_seen"]["OMP_NUM_THREADS"] == "4" and cpu.info["env_seen"]["MKL_NUM_THREADS"] == "4"
    assert cpu.info["env_seen"]["HARNESS_TORCH_THREADS"] == "1"  # the backend's own count (cpu_threads)
    assert gpu.info["env_seen"]["HARNESS_TORCH_THREADS"] == "4"  # no count of its own: the budget
    assert cpu.info["executor"]["threads"] == 4 and cpu.info["executor"]["gpus"] == []


def test_no_gpus_leaves_cuda_visible_devices_alone(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    ex = LocalExecutor(timeout=60, max_parallel=1, machine=Machine((), cores=2, source="none"), fork_server=False)
    res = ex.run(spec("toy-ranks", world_size=4), tmp_path)  # runs: no GPUs to share out on a CPU machine
    assert res.status == "ok" and res.info["env_seen"]["CUDA_VISIBLE_DEVICES"] is None
    assert res.info["executor"]["gpus"] is None
