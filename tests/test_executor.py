"""Executor: fresh worker per evaluation; crashes and hangs become `unresolved` with the log tail;
bad input is raised; AD-changing environment variables never reach the worker and are recorded."""
from __future__ import annotations

import os
import time

import pytest

import executor_backends
from harness.execution.envscrub import worker_env
from harness.errors import HarnessError
from harness.evaluation.spec import EvalSpec
from harness.execution.executor import InProcessExecutor, LocalExecutor, get_executor, read_worker_result
from harness.paths import DEMO_MMLU


@pytest.fixture(scope="module")
def module_env():
    with pytest.MonkeyPatch.context() as mp:
        executor_backends.install(mp)
        yield


@pytest.fixture(autouse=True)
def planted(module_env, monkeypatch):
    executor_backends.install(monkeypatch)


@pytest.fixture(scope="module")
def forked(module_env):
    """One fork server for the module (as one bisect run keeps one)."""
    ex = LocalExecutor(timeout=60, fork_server=True)
    yield ex
    ex.close()


@pytest.fixture(params=["subprocess", "fork-server"])
def executor(request, forked):
    """Both ways the local executor starts a fresh worker; crash handling must not differ."""
    if request.param == "subprocess":
        yield LocalExecutor(timeout=60, fork_server=False)
    else:
        yield forked
        forked.timeout = 60


def check_mode(result, executor):
    assert result.info["executor"]["mode"] == ("fork-server" if executor.fork_server else "subprocess")


def spec(backend="toy", **kw) -> EvalSpec:
    return EvalSpec(backend=backend, model=kw.pop("model", "toy-model"), dataset=str(DEMO_MMLU), samples=12, **kw)


# -- environment scrub (pure) ---------------------------------------------------------------
def test_worker_env_removes_ad_and_legacy_field_names_and_keeps_models_root():
    base = {"AD_COMPILE_BACKEND": "torch-opt", "AD_DUMP_GRAPHS_DIR": "/user/dumps", "WORLD_SIZE": "8",
            "max_batch_size": "4", "Mode": "transformers", "RANK": "1", "LLM_MODELS_ROOT": "/models",
            "PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0", "OMP_NUM_THREADS": "7", "HF_HUB_OFFLINE": "0"}
    env, removed = worker_env(base, {"AD_DUMP_GRAPHS_DIR": "/run/dumps/abc"}, threads=2, offline=True)
    assert removed == {"AD_COMPILE_BACKEND": "torch-opt", "AD_DUMP_GRAPHS_DIR": "/user/dumps", "Mode": "transformers",
                       "RANK": "1", "WORLD_SIZE": "8", "max_batch_size": "4"}
    assert env["LLM_MODELS_ROOT"] == "/models" and env["PATH"] == "/bin" and env["CUDA_VISIBLE_DEVICES"] == "0"
    assert env["AD_DUMP_GRAPHS_DIR"] == "/run/dumps/abc"  # only the harness's own value
    assert env["OMP_NUM_THREADS"] == "7" and env["MKL_NUM_THREADS"] == "2"  # the user's choice wins
    assert env["HF_HUB_OFFLINE"] == "0" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert not any(k.upper().startswith("AD_") for k in env if k != "AD_DUMP_GRAPHS_DIR")


# -- local executor ---------------------------------------------------------------------------
def test_worker_runs_in_a_fresh_process_with_a_scrubbed_env(tmp_path, monkeypatch):
    monkeypatch.setenv("AD_COMPILE_BACKEND", "torch-opt")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LLM_MODELS_ROOT", "/models-root")
    ex = LocalExecutor(timeout=60, fork_server=False)
    res = ex.run(spec(), tmp_path / "w", {"AD_DUMP_GRAPHS_DIR": str(tmp_path / "dumps")})
    assert res.status == "ok" and res.metrics["n"] == 12 and len(res.records) == 12
    assert res.info["pid"] != os.getpid()
    seen = res.info["env_seen"]
    assert seen["AD_COMPILE_BACKEND"] is None and seen["WORLD_SIZE"] is None
    assert seen["LLM_MODELS_ROOT"] == "/models-root"
    assert seen["AD_DUMP_GRAPHS_DIR"] == str(tmp_path / "dumps")
    assert res.info["env_scrubbed"]["AD_COMPILE_BACKEND"] == "torch-opt"
    assert res.info["env_scrubbed"]["WORLD_SIZE"] == "4"
    assert res.info["executor"]["returncode"] == 0 and res.info["executor"]["worker_overhead_s"] is not None


def test_segfault_is_unresolved_with_log_tail(tmp_path, executor):
    res = executor.run(spec("segv"), tmp_path)
    check_mode(res, executor)
    assert res.status == "unresolved"
    assert "SIGSEGV" in res.error
    assert "about to segfault" in res.log_tail
    assert res.records == []


def test_hang_is_killed_at_the_timeout(tmp_path, executor):
    executor.timeout = 3
    t0 = time.monotonic()
    res = executor.run(spec("hang"), tmp_path / "w")
    assert time.monotonic() - t0 < 15
    check_mode(res, executor)
    assert res.status == "unresolved" and res.error.startswith("timeout after 3 s")
    assert "hanging now" in res.log_tail
    pid = int((tmp_path / "w" / "worker.log").read_text().split("pid=")[1].split()[0])
    with pytest.raises(ProcessLookupError):  # the whole process group is gone
        os.kill(pid, 0)


def test_nonzero_exit_is_unresolved(tmp_path, executor):
    res = executor.run(spec("exit3"), tmp_path)
    check_mode(res, executor)
    assert res.status == "unresolved" and res.error.startswith("worker exited with code 3")
    assert "engine exits with 3" in res.log_tail


def test_exception_outside_run_evaluation_is_unresolved(tmp_path, executor):
    res = executor.run(spec("broken"), tmp_path)
    check_mode(res, executor)
    assert res.status == "unresolved"
    assert "exited with code 1" in res.error and "ModuleNotFoundError" in res.error
    assert "no_such_module_xyz" in res.log_tail


def test_bad_input_in_the_worker_is_raised_not_unresolved(tmp_path, executor):
    with pytest.raises(HarnessError, match="unknown transform 'fuse_nothing'"):
        executor.run(spec("badinput"), tmp_path)


def test_fork_server_results_equal_plain_worker_results(tmp_path, forked):
    plain = LocalExecutor(timeout=60, fork_server=False).run(spec(), tmp_path / "a")
    fork = forked.run(spec(), tmp_path / "b")
    check_mode(fork, forked)
    assert fork.records == plain.records and fork.metrics == plain.metrics
    assert fork.info["pid"] not in (os.getpid(), plain.info["pid"], forked._server.proc.pid)


def test_fork_server_started_from_a_finished_thread_keeps_serving(tmp_path):
    """Runner.evaluate_many starts the server from a pool thread that ends with the batch; the server
    must outlive that thread, or every later evaluation pays a cold python start."""
    import threading

    ex = LocalExecutor(timeout=60, fork_server=True)
    try:
        first = []
        t = threading.Thread(target=lambda: first.append(ex.run(spec(), tmp_path / "a")))
        t.start()
        t.join()
        server_pid = ex._server.proc.pid
        time.sleep(0.5)  # a parent-death signal would arrive by now
        second = ex.run(spec(seed=1), tmp_path / "b")
        assert [r.info["executor"]["mode"] for r in (first[0], second)] == ["fork-server", "fork-server"]
        assert ex._server.proc.pid == server_pid and ex._server.proc.poll() is None
    finally:
        ex.close()


def test_warm_model_in_the_fork_server_gives_the_same_results(tmp_path):
    """The fork server loads the first evaluation's model once (Backend.warm); forked workers start from
    it (the emulator transforms it in place, with a planted fault) and must answer exactly as a worker
    that reads the model itself."""
    from harness.config.io import load_yaml
    from harness.execution.slots import Machine
    from harness.paths import DEMO_CONFIG, DEMO_MODEL

    faulty = load_yaml(DEMO_CONFIG, "demo config")
    specs = [EvalSpec(backend=b, model=str(DEMO_MODEL), dataset=str(DEMO_MMLU), samples=6, seed=1, config=c)
             for b, c in (("ad-emulator", faulty), ("hf", {}), ("ad-emulator", {}))]
    warm = LocalExecutor(timeout=300, fork_server=True, machine=Machine((), cores=2, source="test"))
    try:
        forked = [warm.run(s, tmp_path / f"w{i}") for i, s in enumerate(specs)]
        assert warm._server.info["warmed"] == [f"ad-emulator={DEMO_MODEL}"]
    finally:
        warm.close()
    for s, f in zip(specs, forked):
        own = InProcessExecutor().run(s, tmp_path / "own")
        assert f.info["executor"]["mode"] == "fork-server"
        assert f.records == own.records and f.metrics == own.metrics


def test_prestarted_fork_server_preloads_both_backends_and_serves_the_first_evaluation(tmp_path):
    """bisect starts the fork server before Phase 0 asks for anything (Runner.prestart), for the reference's
    and the candidate's backends together: the first evaluation is forked from that very server, and the
    candidate backend's modules are already imported there."""
    from harness.execution.forkserver import preload_list
    from harness.execution.slots import Machine
    from harness.paths import DEMO_MODEL

    specs = [EvalSpec(backend=b, model=str(DEMO_MODEL), dataset=str(DEMO_MMLU), samples=4, seed=1)
             for b in ("hf", "ad-emulator")]
    ex = LocalExecutor(timeout=300, fork_server=True, machine=Machine((), cores=2, source="test"))
    try:
        ex.prestart(specs, tmp_path)
        server = ex._server
        assert server is not None and server.proc.poll() is None  # started, not waited for
        result = ex.run(specs[1], tmp_path / "cand")
        assert result.status == "ok" and result.info["executor"]["mode"] == "fork-server"
        assert ex._server is server
        assert set(preload_list("ad-emulator")) <= set(server.info["loaded"])
    finally:
        ex.close()


def test_exit_2_with_error_line_is_bad_input(tmp_path):
    log = tmp_path / "worker.log"
    log.write_text("Traceback? no\nerror: unknown task 'mmlux'; valid: gsm8k, mmlu\n")
    with pytest.raises(HarnessError, match="unknown task 'mmlux'"):
        read_worker_result(2, tmp_path / "missing.json", log)


def test_inprocess_executor_turns_exceptions_into_unresolved(tmp_path, monkeypatch):
    monkeypatch.setenv("AD_COMPILE_BACKEND", "torch-opt")
    ex = InProcessExecutor()
    ok = ex.run(spec(), tmp_path)
    assert ok.status == "ok" and ok.info["env_seen"]["AD_COMPILE_BACKEND"] is None
    assert ok.info["env_scrubbed"] == {"AD_COMPILE_BACKEND": "torch-opt"}
    assert os.environ["AD_COMPILE_BACKEND"] == "torch-opt"  # restored afterwards
    bad = ex.run(spec("broken"), tmp_path)
    assert bad.status == "unresolved" and "ModuleNotFoundError" in bad.error


def test_unknown_executor_lists_the_valid_ones():
    with pytest.raises(HarnessError, match="valid: local, inprocess"):
        get_executor("slurmx")


def test_python_m_harness_worker_is_the_same_entry_point(tmp_path):
    import json
    import subprocess
    import sys

    from harness.jsonio import write_json_atomic

    write_json_atomic(tmp_path / "spec.json", spec().to_dict())
    proc = subprocess.run([sys.executable, "-m", "harness", "worker", "--spec", str(tmp_path / "spec.json"),
                           "--out", str(tmp_path / "result.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "ok" and len(result["records"]) == 12
    write_json_atomic(tmp_path / "bad.json", spec("badinput").to_dict())
    proc = subprocess.run([sys.executable, "-m", "harness", "worker", "--spec", str(tmp_path / "bad.json"),
                           "--out", str(tmp_path / "bad-result.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown transform 'fuse_nothing'")
    assert "Traceback" not in proc.stderr
