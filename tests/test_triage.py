"""triage: each catalogue pattern is recognised on a realistic fixture log; unknown logs say so."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.analysis.triage import find_unresolved, load_patterns, triage_file, triage_text

FIXTURES = Path(__file__).parent / "fixtures" / "logs"
REPO = Path(__file__).resolve().parents[1]
ISSUE_CATEGORIES = {  # the failure classes the catalogue must cover (docs/method.md, Crash-log triage)
    "cuda_oom", "nccl", "mpi_deadlock", "trust_remote_code", "tokenizer", "unsupported_arch",
    "missing_file", "wall_clock", "killed", "nan", "import_version", "ad_transform",
}


@pytest.fixture(scope="module")
def patterns():
    return load_patterns()


def test_catalogue_covers_the_issue_categories_with_a_fixture_each(patterns):
    ids = {p.id for p in patterns}
    assert ISSUE_CATEGORIES <= ids
    for p in patterns:
        assert (FIXTURES / f"{p.id}.log").is_file(), f"pattern {p.id} has no fixture log"
        assert p.root_cause and p.fix and p.source


@pytest.mark.parametrize("log", sorted(p.stem for p in FIXTURES.glob("*.log") if p.stem != "unknown"))
def test_fixture_log_is_classified_as_its_pattern(log, patterns):
    t = triage_file(FIXTURES / f"{log}.log", patterns)
    assert t.known
    assert t.primary.pattern == log
    text = (FIXTURES / f"{log}.log").read_text().splitlines()
    assert t.primary.line[:120] == text[t.primary.line_no - 1][:120]  # points at the real line
    out = "\n".join(t.lines())
    assert "root cause:" in out and "fix:" in out and "source:" in out


def test_root_cause_pattern_wins_over_its_consequence(patterns):
    # An NCCL hang that Slurm then cancels: the diagnosis is NCCL, the time limit is also listed.
    log = (FIXTURES / "nccl.log").read_text() + (FIXTURES / "wall_clock.log").read_text()
    t = triage_text(log, patterns)
    assert [m.pattern for m in t.matches][:2] == ["nccl", "wall_clock"]


def test_unknown_log_gets_first_error_lines_and_honest_answer(patterns):
    t = triage_file(FIXTURES / "unknown.log", patterns)
    assert not t.known and t.primary is None
    assert t.first_errors == [(3, "ERROR: widget frobnication returned status 7")]
    assert "no known pattern" in "\n".join(t.lines())


def test_bad_catalogue_is_a_clear_error(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("patterns:\n  - {id: x, title: X, match: ['(unclosed'], root_cause: r, fix: f, source: s}\n")
    with pytest.raises(HarnessError, match="invalid regex"):
        load_patterns(bad)
    bad.write_text("patterns:\n  - {id: x, title: X, match: ['a']}\n")
    with pytest.raises(HarnessError, match="lacks root_cause, fix, source"):
        load_patterns(bad)


def test_reports_dir_triages_unresolved_evaluations(tmp_path, patterns):
    run = tmp_path / "run1" / "evals"
    run.mkdir(parents=True)
    (run / "ok.json").write_text(json.dumps({"status": "ok", "records": [], "log_tail": "fine"}))
    (run / "crash.json").write_text(json.dumps({
        "status": "unresolved", "error": "worker exited with code -9",
        "log_tail": (FIXTURES / "killed.log").read_text()}))
    (tmp_path / "summary.json").write_text(json.dumps({"jobs": [{"name": "j", "candidate": {
        "status": "unresolved", "error": "RuntimeError", "label": "ad-emulator/mmlu",
        "log_tail": (FIXTURES / "cuda_oom.log").read_text()}}]}))
    found = find_unresolved([tmp_path])
    assert len(found) == 2
    kinds = sorted(triage_text(text, patterns, name).primary.pattern for name, text in found)
    assert kinds == ["cuda_oom", "killed"]


def _cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "harness", "triage", *args], cwd=REPO, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_cli_text_json_and_errors(tmp_path):
    r = _cli(str(FIXTURES / "cuda_oom.log"), str(FIXTURES / "unknown.log"))
    assert r.returncode == 0
    assert "CUDA out of memory  [cuda_oom]" in r.stdout and "no known pattern" in r.stdout
    r = _cli("--json", "-", stdin=(FIXTURES / "wall_clock.log").read_text())
    assert json.loads(r.stdout)["primary"] == "wall_clock"
    r = _cli(str(tmp_path / "nope.log"))
    assert r.returncode == 2 and r.stderr.startswith("error: log file") and "Traceback" not in r.stderr
    r = _cli("--reports", str(tmp_path))
    assert r.returncode == 0 and "no unresolved evaluations found" in r.stdout


def test_reports_dir_reads_unresolved_rows_of_the_cache(tmp_path, patterns):
    from harness.evaluation.spec import EvalResult
    from harness.evaluation.store import Store

    with Store(tmp_path / "cache") as store:
        store.put("k" * 64, {"backend": "ad-emulator", "task": "mmlu", "label": "planted crash"},
                  EvalResult(status="unresolved", error="worker exited with code 1",
                             log_tail=(FIXTURES / "ad_transform.log").read_text()))
        store.put("o" * 64, {"backend": "hf", "task": "mmlu"}, EvalResult(status="ok", log_tail="CUDA out of memory"))
    found = find_unresolved([tmp_path / "cache"])
    assert len(found) == 1 and "planted crash" in found[0][0]
    assert triage_text(found[0][1], patterns).primary.pattern == "ad_transform"


def test_the_executors_own_failure_messages_are_classified(tmp_path, patterns):
    """What harness.execution.executor writes for a timeout, a segfault and a SIGKILL maps to the right pattern."""
    from harness.execution.executor import describe_exit, read_worker_result

    timeout = read_worker_result(None, tmp_path / "none.json", tmp_path / "none.log", timed_out=900).error
    assert triage_text(timeout, patterns).primary.pattern == "wall_clock"
    assert triage_text(describe_exit(-11, ""), patterns).primary.pattern == "native_crash"
    assert triage_text(describe_exit(-9, ""), patterns).primary.pattern == "killed"
    assert triage_text(describe_exit(137, ""), patterns).primary.pattern == "killed"
