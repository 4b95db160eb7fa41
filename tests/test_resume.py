"""Resume: SIGKILL the orchestrator after the first result lands, rerun the same command: the stored
evaluations are not run again, the orphaned worker does not survive, and the final results are
identical to an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

import executor_backends
from harness.evaluation.store import Store

MODELS = ["m0", "m1", "m2", "m3"]

DRIVER = textwrap.dedent("""
    import json, sys
    from harness.evaluation.spec import EvalSpec
    from harness.execution.worker import register_extra_backends
    from harness.paths import DEMO_MMLU
    from harness.execution.runner import Runner

    register_extra_backends()
    cache, out = sys.argv[1], sys.argv[2]
    specs = [EvalSpec(backend="toy", model=m, dataset=str(DEMO_MMLU), samples=12, label=m) for m in {models!r}]
    with Runner(cache_dir=cache, quiet=True, timeout=60) as runner:
        results = []
        for spec in specs:
            res = runner.evaluate(spec)
            print("stored", spec.label, flush=True)
            results.append({{"label": spec.label, "status": res.status, "metrics": res.metrics,
                             "records": res.records}})
        json.dump({{"results": results, "stats": runner.stats}}, open(out, "w"))
""")


def _run_driver(tmp_path, cache, out, env, **popen):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(models=MODELS))
    return subprocess.Popen([sys.executable, str(script), str(cache), str(out)], env=env, **popen)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_sigkill_then_rerun_repeats_no_stored_evaluation(tmp_path, monkeypatch):
    executor_backends.install(monkeypatch)
    marker = tmp_path / "launches.txt"
    repo = os.path.dirname(executor_backends.TESTS_DIR)
    env = dict(os.environ, HARNESS_TEST_MARKER=str(marker), HARNESS_TEST_SLEEP="1",
               PYTHONPATH=os.pathsep.join([repo, executor_backends.TESTS_DIR]))

    proc = _run_driver(tmp_path, tmp_path / "cache", tmp_path / "out.json", env, stdout=subprocess.PIPE)
    assert proc.stdout.readline().split() == [b"stored", b"m0"]
    time.sleep(0.6)  # the second worker is now mid-evaluation
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "out.json").exists()

    with Store(tmp_path / "cache") as store:
        stored = {json.loads(json.dumps(store.spec(r["key"])))["label"] for r in store.rows() if r["status"] == "ok"}
    assert "m0" in stored and len(stored) < len(MODELS)
    launches_before = marker.read_text().splitlines()
    orphan = int(launches_before[-1].split()[0])
    deadline = time.monotonic() + 5
    while _alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(orphan), "the worker of a killed orchestrator must not keep running"

    rerun = _run_driver(tmp_path, tmp_path / "cache", tmp_path / "out.json", env)
    assert rerun.wait(timeout=120) == 0
    after = json.loads((tmp_path / "out.json").read_text())
    launches = Counter(line.split()[1] for line in marker.read_text().splitlines())
    for label in stored:
        assert launches[label] == 1, f"{label} was stored before the kill but evaluated again"
    assert after["stats"]["hits"] == len(stored)
    assert after["stats"]["evaluations_run"] == len(MODELS) - len(stored)

    # identical to an uninterrupted run
    clean = _run_driver(tmp_path, tmp_path / "clean-cache", tmp_path / "clean.json", env)
    assert clean.wait(timeout=120) == 0
    reference = json.loads((tmp_path / "clean.json").read_text())
    assert after["results"] == reference["results"]
    assert [r["status"] for r in after["results"]] == ["ok"] * len(MODELS)


@pytest.mark.parametrize("kill_after", [0.0, 0.3])
def test_kill_before_anything_is_stored_leaves_a_usable_store(tmp_path, monkeypatch, kill_after):
    executor_backends.install(monkeypatch)
    repo = os.path.dirname(executor_backends.TESTS_DIR)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([repo, executor_backends.TESTS_DIR]), HARNESS_TEST_SLEEP="0")
    proc = _run_driver(tmp_path, tmp_path / "cache", tmp_path / "out.json", env)
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = _run_driver(tmp_path, tmp_path / "cache", tmp_path / "out.json", env)
    assert rerun.wait(timeout=120) == 0
    out = json.loads((tmp_path / "out.json").read_text())
    assert [r["status"] for r in out["results"]] == ["ok"] * len(MODELS)
