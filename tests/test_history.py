"""History DB round-trip: one row per job per run with versions and scores; trends; a PNG per model/task."""
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.regress.history import load, plot_trends, record_run, trends
from harness.regress.jobs import Job, JobResult

REPO = Path(__file__).resolve().parents[1]


def _result(config, score, status="passed", task="mmlu", model="demo/tiny-llama", verdict=None):
    job = Job(name=f"{model}/{task}/{config}/n200", model_id=model, model_path="/m", task=task, config_name=config,
              backend="ad-emulator", config_path=None, config={}, samples=200).to_dict()
    return JobResult(job=job, status=status, score=score, n=200, reference={"accuracy": 70.0}, threshold=61.78,
                     theta=12.4, gate_passed=status == "passed", versions={"torch": "2.13.0", "engine": config},
                     paired={"backend": "hf", "score": 70.5, "verdict": verdict, "p_value": 0.5} if verdict else None,
                     config_hash="abc", duration_s=1.5)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "h" / "history.db"
    record_run(path, {"run_id": "r1", "suite": "nightly", "started_at": "2025-01-01T02:00:00"},
               [_result("clean", 69.0), _result("planted", 68.0)])
    record_run(path, {"run_id": "r2", "suite": "nightly", "started_at": "2025-01-02T02:00:00"},
               [_result("clean", 70.5), _result("planted", 55.0, "failed", verdict="regressed"),
                _result("clean", 40.0, task="gsm8k")])
    return path


def test_round_trip_one_row_per_job_per_run(db):
    df = load(db)
    assert len(df) == 5
    assert sorted(df["run_id"].unique()) == ["r1", "r2"]
    row = df[(df.run_id == "r2") & (df.config == "planted")].iloc[0]
    assert (row.score, row.status, row.paired_verdict, row.reference, row.threshold) == (55.0, "failed", "regressed",
                                                                                          70.0, 61.78)
    assert row.versions == {"torch": "2.13.0", "engine": "planted"}
    # rerunning the same run_id replaces its rows instead of duplicating them
    record_run(db, {"run_id": "r2", "suite": "nightly", "started_at": "2025-01-02T02:00:00"},
               [_result("clean", 71.0)])
    df = load(db)
    assert len(df[df.run_id == "r2"]) == 3
    assert df[(df.run_id == "r2") & (df.config == "clean") & (df.task == "mmlu")].iloc[0].score == 71.0


def test_trends_and_filters(db):
    t = trends(load(db, task="mmlu"))
    planted = t[t.config == "planted"].iloc[0]
    assert (planted.runs, planted.latest, planted.previous, planted.delta) == (2, 55.0, 68.0, -13.0)
    assert (planted.failures, planted.last_status) == (1, "failed")
    assert set(load(db, task="gsm8k")["config"]) == {"clean"}


def test_plot_per_model_and_task(db, tmp_path):
    paths = plot_trends(load(db), tmp_path / "plots")
    assert sorted(Path(p).name for p in paths) == ["trend_demo_tiny-llama_gsm8k.png", "trend_demo_tiny-llama_mmlu.png"]
    for p in paths:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_or_foreign_db_is_clear_error(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        load(tmp_path / "nope.db")
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite" * 100)
    with pytest.raises(HarnessError, match="not a harness history database"):
        load(junk)


def test_history_cli(db, tmp_path):
    r = subprocess.run([sys.executable, "-m", "harness", "history", "--db", str(db), "--task", "mmlu",
                        "--plots", str(tmp_path / "p"), "--last", "2"], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "2 run(s)" in r.stdout and "planted" in r.stdout and "-13.00" in r.stdout
    assert (tmp_path / "p" / "trend_demo_tiny-llama_mmlu.png").is_file()
    r = subprocess.run([sys.executable, "-m", "harness", "history", "--db", str(db), "--model", "x/y"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no results" in r.stderr
