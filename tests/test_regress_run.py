"""regress end to end on cheap deterministic backends: a clean config passes, a planted regression
fails (TRT-LLM threshold and paired verdict) with its bisect report linked, a crash is an error;
JUnit, summary.md/json and history rows are written; the exit status says which."""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

import regress_backends
from harness.cli import main
from harness.paths import DEMO_MMLU

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def suite(tmp_path, monkeypatch):
    regress_backends.install(monkeypatch)
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "mmlu.yaml").write_text(textwrap.dedent("""\
        demo/oracle:
          - quant_algo: FP8
            accuracy: 10.0
          - accuracy: 100.0
    """))
    p = tmp_path / "suite.yaml"
    p.write_text(textwrap.dedent(f"""\
        name: t-nightly
        references: refs
        paired: {{backend: oracle}}
        models: [{{id: demo/oracle, path: toy-model}}]
        tasks: [{{name: mmlu, dataset: {DEMO_MMLU}}}]
        configs:
          - {{name: clean, backend: oracle-ad, config: {{}}}}
          - name: planted
            backend: oracle-ad
            config: {{transforms: {{fuse_b: {{fault: drop, fault_strength: 0.5}}}}}}
          - {{name: crash, backend: oracle-ad, config: {{transforms: {{fuse_a: {{fault: crash}}}}}}}}
        samples: [60]
    """))
    return p


def _regress(suite, tmp_path, *extra):
    return main(["regress", "--suite", str(suite), "--out", str(tmp_path / "out"), "--history",
                 str(tmp_path / "h.db"), "--cache-dir", str(tmp_path / "cache"), "--max-parallel", "2", "--quiet",
                 *extra])


@pytest.fixture
def stub_bisect(monkeypatch):
    """`bisect` replaced by a stub that writes a report where the real one would (its own tests live
    with the bisect engineer); the argv the real command gets is checked separately below."""
    import harness.regress.suite_runner as rr

    seen = []

    def fake(job, config_file, out, cache_dir, executor_argv, timeout=None, ref_score=None):
        seen.append(job.name)
        # summary.json's fields as harness/bisect/report/summary.py writes them (SCHEMA.md)
        summary = {"verdict": "regressed", "outcome": "culprit", "headline": "culprit: fuse_b - confirmed",
                   "culprits": [{"knobs": ["fuse_b"], "kind": "single", "with": [], "confirmed": True}]}
        code = (f"import json, pathlib; d = pathlib.Path({str(out)!r}) / 'bisect-x'; d.mkdir(parents=True); "
                f"(d / 'report.md').write_text('culprit: fuse_b'); "
                f"(d / 'summary.json').write_text(json.dumps({summary!r})); print('verdict: regressed')")
        return [sys.executable, "-c", code]

    monkeypatch.setattr(rr, "bisect_command", fake)
    return seen


def test_planted_regression_fails_with_outputs(suite, tmp_path, stub_bisect, capsys):
    code = _regress(suite, tmp_path, "--bisect-on-fail")
    out = capsys.readouterr().out
    assert code == 1, out  # a regression
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    jobs = {j["job"]["config_name"]: j for j in summary["jobs"]}
    assert {k: v["status"] for k, v in jobs.items()} == {"clean": "passed", "planted": "failed", "crash": "error"}
    clean, planted, crash = jobs["clean"], jobs["planted"], jobs["crash"]
    # TensorRT-LLM gate: the first entry matching the (default) spec is the 100.0 row
    assert clean["reference"]["accuracy"] == 100.0 and clean["score"] == 100.0 and clean["gate_passed"]
    assert planted["score"] < planted["threshold"] < 100.0 and planted["gate_passed"] is False
    assert planted["paired"]["verdict"] == "regressed" and planted["paired"]["delta"] < -20
    assert any(m.startswith("threshold:") for m in planted["messages"])
    assert any(m.startswith("paired:") for m in planted["messages"])
    assert crash["triage"]["primary"] == "ad_transform" and "fused kernel shape mismatch" in crash["error"]
    # bisect ran for the failing AD job only, and its report is linked everywhere
    assert stub_bisect == [planted["job"]["name"]]
    report = Path(planted["bisect_report"])
    assert report.read_text() == "culprit: fuse_b"
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "REGRESSION" in md and "bisect/" in md and "report.md" in md
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert str(report) in junit and 'failures="1"' in junit and 'errors="1"' in junit
    assert f"bisect report: {report}" in out
    # the culprit's name: console, both summaries, the JUnit failure message
    assert "bisect: culprit: fuse_b (confirmed)" in out
    assert planted["bisect"]["culprit"] == "culprit: fuse_b (confirmed)"
    assert "culprit: fuse_b (confirmed)" in md
    import xml.etree.ElementTree as ET

    failure = ET.parse(tmp_path / "out" / "junit.xml").find(".//failure")
    assert "bisect: culprit: fuse_b (confirmed)" in failure.get("message")
    # `triage --reports` finds the crashed job once (summary.json and its result.json)
    from harness.analysis.triage import find_unresolved

    found = find_unresolved([tmp_path / "out"])
    assert len(found) == 1 and crash["job"]["name"] in found[0][0] and "shape mismatch" in found[0][1]
    # per-job records for `compare`
    jdir = Path(planted["result_dir"])
    assert (jdir / "candidate" / "samples.jsonl").is_file() and (jdir / "reference" / "samples.jsonl").is_file()


def test_junit_valid_history_rows_and_cached_rerun(suite, tmp_path, capsys):
    lxml_etree = pytest.importorskip("lxml.etree")
    assert _regress(suite, tmp_path) == 1
    schema = lxml_etree.XMLSchema(lxml_etree.parse(str(FIXTURES / "junit.xsd")))
    assert schema.validate(lxml_etree.parse(str(tmp_path / "out" / "junit.xml"))), schema.error_log
    assert _regress(suite, tmp_path) == 1  # second night: same verdicts, evaluations from the cache
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["runner_stats"]["evaluations_run"] == 1  # only the crash (unresolved) re-runs
    from harness.regress.history import load

    df = load(tmp_path / "h.db")
    assert len(df) == 6 and df["run_id"].nunique() == 2
    row = df[df.config == "planted"].iloc[-1]
    assert row.status == "failed" and row.paired_verdict == "regressed" and row.versions["oracle"] == "1"
    capsys.readouterr()
    assert main(["history", "--db", str(tmp_path / "h.db"), "--plots", str(tmp_path / "plots")]) == 0
    assert "planted" in capsys.readouterr().out
    assert (tmp_path / "plots" / "trend_demo_oracle_mmlu.png").is_file()


def test_exit_codes_select_and_dry_run(suite, tmp_path, capsys):
    assert _regress(suite, tmp_path, "--only", "*clean*", "--no-history") == 0
    assert _regress(suite, tmp_path, "--only", "*crash*", "--no-history") == 3  # unresolved, no regression
    assert not (tmp_path / "h.db").exists()
    capsys.readouterr()
    assert _regress(suite, tmp_path, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "demo-oracle/mmlu/planted/n60: oracle-ad inline config; ref 100.00" in out and "paired with oracle" in out


def test_unregistered_reference_spec_stops_before_running(suite, tmp_path, capsys):
    text = suite.read_text().replace("{name: clean, backend: oracle-ad, config: {}}",
                                     "{name: clean, backend: oracle-ad, config: {}, spec: {dtype: bfloat16}}")
    suite.write_text(text)
    assert _regress(suite, tmp_path) == 2
    err = capsys.readouterr().err
    assert "Not registered specs" in err and "'dtype': 'bfloat16'" in err
    assert not (tmp_path / "cache").exists()  # nothing was evaluated


def test_bisect_command_uses_the_real_bisect_flags(tmp_path):
    from harness.regress.jobs import Job
    from harness.cli import build_parser
    from harness.regress.suite_runner import bisect_command

    sub = next(a for a in build_parser()._subparsers._group_actions).choices["bisect"]  # noqa: SLF001
    options = {s for a in sub._actions for s in a.option_strings}  # noqa: SLF001
    job = Job(name="m/mmlu/planted/n200", model_id="m", model_path="/models/m", task="mmlu", config_name="planted",
              backend="ad-emulator", config_path=None, config={}, samples=200, dataset="/data/mmlu",
              paired_backend="hf", reference_score=61.5, plugins=["/p/plug.py"])
    argv = bisect_command(job, tmp_path / "config.yaml", tmp_path / "b", ".harness",
                          ["--executor", "slurm", "--partition", "gpu"], timeout=900, ref_score=61.5)
    s = " ".join(argv)
    for part in ("-m harness bisect", "--model /models/m", f"--config {tmp_path / 'config.yaml'}",
                 "--backend ad-emulator", "--backend-ref hf", "--samples 200", "--dataset /data/mmlu",
                 f"--out {tmp_path / 'b'}", "--cache-dir .harness", "--reference-score 61.5", "--plugin /p/plug.py",
                 "--executor slurm"):
        assert part in s, part
    for i, tok in enumerate(argv):  # every flag passed is one bisect accepts
        if tok.startswith("--"):
            assert tok in options, tok


def test_the_bisect_inside_regress_is_not_silent(suite, tmp_path, stub_bisect, capsys):
    """Without --quiet, the bisect's own lines reach the console (and bisect.log), prefixed."""
    code = main(["regress", "--suite", str(suite), "--out", str(tmp_path / "out"), "--no-history",
                 "--cache-dir", str(tmp_path / "cache"), "--only", "*planted*", "--bisect-on-fail"])
    assert code == 1
    out = capsys.readouterr().out
    assert "  bisect | verdict: regressed" in out
    (log,) = list((tmp_path / "out" / "bisect").glob("*/bisect.log"))
    assert "verdict: regressed" in log.read_text()
