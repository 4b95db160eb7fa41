"""Slurm executor through submitit: same worker entry point as the local executor; crashes and
lost jobs are `unresolved`; a real single-node Slurm (scripts/slurm_local.sh) when it can start,
otherwise those tests skip with the reason; submitit's debug/local executors always run."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import executor_backends
from harness.errors import HarnessError
from harness.evaluation.spec import EvalSpec
from harness.execution.executor import LocalExecutor, get_executor
from harness.paths import DEMO_MMLU, REPO_ROOT

pytest.importorskip("submitit")
from harness.execution.slurm import SlurmExecutor, executor_options, parse_time_minutes  # noqa: E402

SCRIPT = REPO_ROOT / "scripts" / "slurm_local.sh"


@pytest.fixture(autouse=True)
def planted(monkeypatch):
    executor_backends.install(monkeypatch)


def spec(backend="toy", n=12) -> EvalSpec:
    return EvalSpec(backend=backend, model="toy-model", dataset=str(DEMO_MMLU), samples=n)


def test_parse_slurm_time():
    assert [parse_time_minutes(x) for x in (90, "90", "1:30:00", "30:30", "2-00:00:00", "1-2", "1-2:30")] == \
        [90, 90, 90, 31, 2880, 1560, 1590]
    with pytest.raises(HarnessError, match="not a Slurm time"):
        parse_time_minutes("an hour")


def test_missing_submitit_or_sbatch_are_clear_errors(monkeypatch):
    import harness.execution.slurm as hs

    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(HarnessError, match="pip install submitit"):
        SlurmExecutor(cluster="debug")
    monkeypatch.delitem(sys.modules, "submitit")
    monkeypatch.setattr(hs.shutil, "which", lambda name: None)
    with pytest.raises(HarnessError, match="sbatch is not on PATH.*slurm_local.sh"):
        SlurmExecutor(cluster="slurm")


def test_debug_cluster_gives_the_local_executors_result(tmp_path):
    """Same worker entry point: identical records through submitit and through a local worker."""
    local = LocalExecutor(timeout=60).run(spec(), tmp_path / "local")
    ex = get_executor("slurm", timeout=60, cluster="debug")  # registered in harness.execution.executor.EXECUTORS
    assert isinstance(ex, SlurmExecutor)
    res = ex.run(spec(), tmp_path / "debug")
    assert res.status == "ok" and res.metrics == local.metrics
    assert [r["output"] for r in res.records] == [r["output"] for r in local.records]
    assert res.info["executor"]["name"] == "slurm" and res.info["executor"]["returncode"] == 0


def test_local_cluster_crash_and_timeout_are_unresolved(tmp_path):
    ex = SlurmExecutor(timeout=60, cluster="local", poll_s=0.2)
    res = ex.run(spec("segv"), tmp_path / "segv")
    assert res.status == "unresolved" and "SIGSEGV" in res.error and "about to segfault" in res.log_tail
    t0 = time.monotonic()
    res = SlurmExecutor(timeout=5, cluster="local", poll_s=0.2).run(spec("hang"), tmp_path / "hang")
    assert res.status == "unresolved" and res.error.startswith("timeout after 5 s")
    assert "[harness slurm] host" in res.log_tail and time.monotonic() - t0 < 40


def test_cli_options_map_to_executor_options():
    import argparse

    from harness.execution.slurm import add_executor_arguments

    p = argparse.ArgumentParser()
    add_executor_arguments(p)
    a = p.parse_args(["--executor", "slurm", "--partition", "gpu", "--gpus", "2", "--time", "1:00:00",
                      "--account", "acc"])
    name, opts, argv = executor_options(a)
    assert name == "slurm" and opts == {"partition": "gpu", "gpus": 2, "time": "1:00:00", "account": "acc",
                                        "cluster": "slurm"}
    assert argv[:4] == ["--executor", "slurm", "--partition", "gpu"]
    assert executor_options(p.parse_args([]))[:2] == ("local", {})


def test_each_job_asks_for_the_gpus_its_world_size_needs(tmp_path, monkeypatch):
    """--gpus is raised to the config's world_size for GPU-rank backends (as TensorRT-LLM's); a backend that
    also runs on CPU gets what --gpus says."""
    import submitit

    asked = []
    real = submitit.AutoExecutor.update_parameters
    monkeypatch.setattr(submitit.AutoExecutor, "update_parameters",
                        lambda self, **kw: (asked.append(kw.get("gpus_per_node")), real(self, **kw))[1])
    ranks = EvalSpec(backend="toy-ranks", model="toy-model", dataset=str(DEMO_MMLU), samples=4,
                     config={"world_size": 4})
    res = SlurmExecutor(timeout=60, cluster="debug", gpus=1).run(ranks, tmp_path / "a")
    assert res.status == "ok" and res.info["executor"]["gpus"] == 4 and asked[-1] == 4
    res = SlurmExecutor(timeout=60, cluster="debug", gpus=2).run(spec(), tmp_path / "b")
    assert res.info["executor"]["gpus"] == 2 and asked[-1] == 2
    res = SlurmExecutor(timeout=60, cluster="debug").run(spec(), tmp_path / "c")
    assert res.info["executor"]["gpus"] == 0 and asked[-1] is None
    with pytest.raises(HarnessError, match="--max-parallel auto fills a local machine.*--max-parallel 8"):
        SlurmExecutor(timeout=60, cluster="debug", max_parallel="auto")


# -- a real single-node Slurm -----------------------------------------------------------------
@pytest.fixture(scope="module")
def slurm():
    if os.geteuid() != 0:
        pytest.skip("real Slurm test needs root to start slurmctld/slurmd (scripts/slurm_local.sh)")
    was_running = subprocess.run([str(SCRIPT), "status"], capture_output=True).returncode == 0
    r = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.skip(f"local Slurm could not start: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    yield
    if not was_running:  # leave no daemons behind that this test started
        subprocess.run([str(SCRIPT), "stop"], capture_output=True, timeout=60)


def test_real_slurm_runs_the_worker_and_reports_crashes(slurm, tmp_path):
    ex = SlurmExecutor(timeout=120, cluster="slurm", partition="debug", time=5, poll_s=0.5)
    res = ex.run(spec(), tmp_path / "ok")
    assert res.status == "ok" and res.metrics["n"] == 12
    assert res.info["executor"]["slurm_job_id"].isdigit() and res.info["executor"]["partition"] == "debug"
    assert "[harness slurm] host" in Path(res.info["executor"]["worker_log"]).read_text()
    res = ex.run(spec("segv"), tmp_path / "segv")
    assert res.status == "unresolved" and "SIGSEGV" in res.error


def test_real_slurm_cancelled_job_is_unresolved_not_a_hang(slurm, tmp_path):
    ex = SlurmExecutor(timeout=300, cluster="slurm", partition="debug", time=5, poll_s=0.5)
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("res", ex.run(spec("hang"), tmp_path / "hang")))
    th.start()
    log = tmp_path / "hang" / "worker.log"
    for _ in range(120):  # wait until the worker runs on the node
        if log.is_file() and "hanging now" in log.read_text():
            break
        time.sleep(0.25)
    job_id = None
    for f in (tmp_path / "hang" / "submitit").glob("*_submitted.pkl"):
        job_id = f.name.split("_")[0]
    assert job_id, "no submitted job found"
    subprocess.run(["scancel", job_id], check=True, timeout=30)
    th.join(timeout=60)
    assert not th.is_alive()
    res = out["res"]
    # scancel SIGTERMs the step: either the job function saw its worker die, or the job itself vanished
    assert res.status == "unresolved", res
    assert "SIGTERM" in res.error or f"Slurm job {job_id} ended without a result" in res.error
    from harness.analysis.triage import load_patterns, triage_text

    assert triage_text(res.error + "\n" + (res.log_tail or ""), load_patterns()).primary.pattern == "killed"
    for _ in range(100):  # let the cancelled job leave the node before the next test
        if subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout.strip() == "":
            break
        time.sleep(0.2)


def test_real_slurm_runner_runs_jobs_concurrently(slurm, tmp_path, monkeypatch):
    from harness.execution.runner import Runner

    monkeypatch.setenv("HARNESS_TEST_SLEEP", "4")
    running, stop = [0], threading.Event()

    def watch():  # the largest number of this test's jobs Slurm ran at the same time
        while not stop.is_set():
            r = subprocess.run(["squeue", "-h", "-t", "R", "-n", "harness-eval", "-o", "%i"], capture_output=True,
                               text=True)
            running[0] = max(running[0], len(r.stdout.split()))
            time.sleep(0.2)

    th = threading.Thread(target=watch)
    th.start()
    try:
        with Runner(cache_dir=tmp_path / "c", max_parallel=2, quiet=True, timeout=120, executor="slurm",
                    executor_options={"cluster": "slurm", "partition": "debug", "time": 5}) as runner:
            res = runner.evaluate_many([spec(n=6), spec(n=12)])
    finally:
        stop.set()
        th.join()
    assert [r.status for r in res] == ["ok", "ok"] and [r.metrics["n"] for r in res] == [6, 12]
    assert len({r.info["executor"]["slurm_job_id"] for r in res}) == 2
    assert running[0] == 2, "the two evaluations never ran at the same time"


def test_regress_suite_targets_slurm(slurm, tmp_path, monkeypatch, capsys):
    """The same regress suite, --executor slurm: every evaluation is a Slurm job, same verdicts."""
    import json
    import textwrap

    import regress_backends
    from harness.cli import main

    regress_backends.install(monkeypatch)
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "mmlu.yaml").write_text("demo/oracle:\n  - accuracy: 100.0\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text(textwrap.dedent(f"""\
        name: slurm-nightly
        references: refs
        paired: {{backend: oracle}}
        models: [{{id: demo/oracle, path: toy-model}}]
        tasks: [{{name: mmlu, dataset: {DEMO_MMLU}}}]
        configs:
          - {{name: clean, backend: oracle-ad, config: {{}}}}
          - {{name: planted, backend: oracle-ad, config: {{transforms: {{fuse_b: {{fault: drop}}}}}}}}
        samples: [30]
    """))
    code = main(["regress", "--suite", str(suite), "--out", str(tmp_path / "out"), "--no-history", "--quiet",
                 "--cache-dir", str(tmp_path / "cache"), "--executor", "slurm", "--partition", "debug", "--time", "5",
                 "--max-parallel", "2"])
    assert code == 1
    jobs = {j["job"]["config_name"]: j for j in json.loads((tmp_path / "out" / "summary.json").read_text())["jobs"]}
    assert (jobs["clean"]["status"], jobs["planted"]["status"]) == ("passed", "failed")
    for j in jobs.values():
        assert j["executor"]["name"] == "slurm" and j["executor"]["slurm_job_id"].isdigit()
