"""The evaluation store under hostile conditions: a corrupt page, a full disk, two runs sharing one store
(harness/evaluation/store.py, harness/execution/runner.py)."""
from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import textwrap

import pytest

import executor_backends
from harness.errors import HarnessError
from harness.evaluation.spec import EvalResult, EvalSpec
from harness.evaluation.store import Store
from harness.paths import DEMO_MMLU, REPO_ROOT
from small_disk import run_on_small_disk


def _result(i: int, n: int = 40) -> EvalResult:
    rng = random.Random(i)
    recs = [{"id": f"mmlu/s/{j}", "output": "".join(rng.choice("ABCD xyz") for _ in range(300))} for j in range(n)]
    return EvalResult(status="ok", records=recs, metrics={"score": 50.0, "n": n})


def _corrupt_store(cache) -> None:
    """A store of 30 evaluations with one page in the middle of the file overwritten."""
    with Store(cache) as store:
        for i in range(30):
            store.put(f"{i:064d}", {"backend": "hf", "label": str(i)}, _result(i))
    db = cache / "evals.sqlite"
    pages = db.stat().st_size // 4096
    with open(db, "r+b") as f:
        f.seek((pages // 2) * 4096)
        f.write(random.Random(0).randbytes(4096))


def harness(*args, env=None):
    e = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=300,
                          env=e, cwd=REPO_ROOT)


def test_a_corrupt_page_is_one_line_and_cache_rm_all_starts_a_new_store(tmp_path):
    cache = tmp_path / "cache"
    _corrupt_store(cache)
    out = harness("cache", "ls", "--cache-dir", str(cache))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(cache / "evals.sqlite") in line and "corrupt" in line
    assert "cache rm --all" in line  # the fix
    out = harness("cache", "rm", "--all", "--cache-dir", str(cache))
    assert out.returncode == 0, out.stderr
    (aside,) = cache.glob("evals.sqlite.corrupt-*")
    assert str(aside) in out.stdout and aside.stat().st_size > 30 * 4096  # kept for forensics, not deleted
    out = harness("cache", "ls", "--cache-dir", str(cache))
    assert out.returncode == 0 and "(no stored evaluations)" in out.stdout


def _toy_spec(model="m0"):
    return EvalSpec(backend="toy", model=model, dataset=str(DEMO_MMLU), samples=6, label=model)


def test_no_cache_moves_a_corrupt_store_aside_and_the_cached_run_stops_before_evaluating(tmp_path, monkeypatch):
    from harness.execution.runner import Runner

    executor_backends.install(monkeypatch)
    marker = tmp_path / "launches.txt"
    monkeypatch.setenv("HARNESS_TEST_MARKER", str(marker))
    cache = tmp_path / "cache"
    _corrupt_store(cache)
    with pytest.raises(HarnessError, match="corrupt.*cache rm --all"):
        Runner(cache_dir=cache, use_cache=True, quiet=True, executor="inprocess")
    assert not marker.exists()  # nothing evaluated in vain
    with Runner(cache_dir=cache, use_cache=False, quiet=True, executor="inprocess") as runner:  # --no-cache
        res = runner.evaluate(_toy_spec())
        key = runner.key(_toy_spec())
    assert res.status == "ok" and len(marker.read_text().splitlines()) == 1
    assert list(cache.glob("evals.sqlite.corrupt-*"))
    with Store(cache) as store:  # the result went into the new store
        assert store.get(key).records == res.records


def test_a_full_database_reports_the_real_cause_and_keeps_what_is_stored(tmp_path):
    with Store(tmp_path) as store:
        store.put("a" * 64, {"backend": "hf"}, _result(1))
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages + 1}")  # SQLite's own SQLITE_FULL
        with pytest.raises(HarnessError) as exc:
            store.put("b" * 64, {"backend": "hf"}, _result(2, n=400))
        assert "is full" in str(exc.value) and "database or disk is full" in str(exc.value)
        assert "cannot rollback" not in str(exc.value) and str(tmp_path / "evals.sqlite") in str(exc.value)
        assert store.get("a" * 64).records == _result(1).records and store.get("b" * 64) is None


def test_the_disk_filling_up_during_an_evaluation_is_one_line_naming_it(tmp_path):
    """A real ENOSPC: the cache on a small tmpfs that the engine fills while it evaluates. `check` must name
    the cause and exit 128 (the user's environment, the same at every commit), not crash with a traceback."""
    disk = tmp_path / "disk"
    cache, work = disk / "cache", tmp_path / "work"
    work.mkdir()
    script = (f'mkdir -p "{cache}" && ln -s "{work}" "{cache}/work" && exec "$@"')  # worker files off the full disk
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), executor_backends.TESTS_DIR]),
               HARNESS_EXTRA_BACKENDS="filldisk=reliability_backends:FillDiskBackend",
               HARNESS_TEST_FILL=str(disk / "filler"))
    out = run_on_small_disk(disk, 512, ["sh", "-c", script, "sh", sys.executable, "-m", "harness", "check",
                                        "--backend", "filldisk", "--model", "toy-model", "--dataset", str(DEMO_MMLU),
                                        "--samples", "6", "--threshold", "0", "--cache", "--cache-dir", str(cache)],
                            env=env, timeout=300)
    assert out.returncode == 128, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and "cannot rollback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "full" in last and str(cache / "evals.sqlite") in last, out.stderr


DRIVER = textwrap.dedent("""
    import json, sys
    from harness.evaluation.spec import EvalSpec
    from harness.execution.worker import register_extra_backends
    from harness.paths import DEMO_MMLU
    from harness.execution.runner import Runner

    register_extra_backends()
    cache, out = sys.argv[1], sys.argv[2]
    specs = [EvalSpec(backend="toy", model=m, dataset=str(DEMO_MMLU), samples=6, label=m) for m in ("m0", "m1", "m2")]
    with Runner(cache_dir=cache, quiet=True, timeout=60, executor="inprocess") as runner:
        results = [runner.evaluate(s).records for s in specs]
        json.dump({"results": results, "stats": runner.stats}, open(out, "w"))
""")


def test_two_runs_sharing_a_store_compute_each_evaluation_once(tmp_path, monkeypatch):
    executor_backends.install(monkeypatch)
    marker = tmp_path / "launches.txt"
    env = dict(os.environ, HARNESS_TEST_MARKER=str(marker), HARNESS_TEST_SLEEP="1",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), executor_backends.TESTS_DIR]))
    (tmp_path / "driver.py").write_text(DRIVER)
    procs = [subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "cache"),
                               str(tmp_path / f"out{i}.json")], env=env) for i in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    a, b = (json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(2))
    assert len(marker.read_text().splitlines()) == 3  # three engines launched in all, not six
    assert a["stats"]["evaluations_run"] + b["stats"]["evaluations_run"] == 3
    assert a["stats"]["hits"] + b["stats"]["hits"] == 3  # the other run's results, waited for
    assert a["results"] == b["results"]


def test_a_claim_whose_process_is_gone_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with Store(tmp_path) as store:
        store._conn.execute("INSERT INTO claims VALUES (?,?,?,?,?,?,?)",
                            ("k", "other", store._host, int(dead.stdout), None, 0.0, 1e12))
        assert store.claim("k", 60) is None  # its holder died (e.g. a killed run): ours now
        store._conn.execute("INSERT INTO claims VALUES (?,?,?,?,?,?,?)",
                            ("live", "other", store._host, os.getppid(), None, 0.0, 1e12))
        holder = store.claim("live", 60)
        assert holder is not None and holder["pid"] == os.getppid()
        store.release("k")
        assert store._conn.execute("SELECT COUNT(*) FROM claims WHERE key='k'").fetchone()[0] == 0
    with sqlite3.connect(tmp_path / "evals.sqlite") as conn:  # closing released nothing it did not hold
        assert conn.execute("SELECT owner FROM claims").fetchall() == [("other",)]
