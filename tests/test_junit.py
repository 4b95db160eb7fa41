"""JUnit XML: valid against the common schema, one testcase per job, failures carry the numbers."""
from pathlib import Path

import pytest

from harness.regress.jobs import Job, JobResult, judge
from harness.regress.junit import failure_message, write_junit

lxml_etree = pytest.importorskip("lxml.etree")
XSD = Path(__file__).parent / "fixtures" / "junit.xsd"


def _job(name, task="mmlu"):
    return Job(name=name, model_id="demo/tiny-llama", model_path="/m", task=task, config_name=name,
               backend="ad-emulator", config_path=f"configs/{name}.yaml", config={}, samples=200).to_dict()


def _results():
    ref = {"accuracy": 70.0, "sigma": 50.0, "alpha": 0.05, "higher_is_better": True}
    return [
        JobResult(job=_job("clean"), status="passed", score=69.5, n=200, reference=ref, threshold=61.78,
                  theta=12.43, gate_passed=True, duration_s=3.2),
        JobResult(job=_job("planted"), status="failed", score=52.0, n=200, reference=ref, threshold=61.78,
                  theta=12.43, gate_passed=False, messages=["threshold: score 52.00 < threshold 61.78"],
                  paired={"backend": "hf", "verdict": "regressed", "score": 70.0, "delta": -18.0, "p_value": 1e-6},
                  bisect_report="reports/bisect-planted/report.md", duration_s=4.0),
        JobResult(job=_job("crash"), status="error", error="RuntimeError: boom \x1b[31mred\x1b[0m",
                  log_tail="Traceback...\nRuntimeError: boom\x00", messages=["candidate evaluation unresolved"]),
        JobResult(job=_job("skip", task="gsm8k"), status="skipped", messages=["no gsm8k data"]),
    ]


def test_junit_is_schema_valid_with_one_testcase_per_job(tmp_path):
    path = tmp_path / "junit.xml"
    write_junit(path, "nightly", _results(), versions={"torch": "2.13.0", "harness": "0.1.0"})
    schema = lxml_etree.XMLSchema(lxml_etree.parse(str(XSD)))
    doc = lxml_etree.parse(str(path))
    assert schema.validate(doc), schema.error_log
    suite = doc.getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("4", "1", "1", "1")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["clean", "planted", "crash", "skip"]
    assert cases[0].find("failure") is None and cases[0].find("error") is None
    fail = cases[1].find("failure")
    msg = fail.get("message")
    for number in ("52.00", "61.78", "70.00", "n=200", "regressed", "-18.00"):
        assert number in msg
    assert "reports/bisect-planted/report.md" in fail.text  # the bisect report is linked
    assert cases[2].find("error").get("type") == "Unresolved"
    assert "\x1b" not in path.read_text() and "\x00" not in path.read_text()
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["torch"] == "2.13.0"


def test_schema_rejects_what_reporters_reject(tmp_path):
    # guard that the schema check can fail: a testcase without a name is invalid
    schema = lxml_etree.XMLSchema(lxml_etree.parse(str(XSD)))
    bad = lxml_etree.fromstring(b'<testsuites><testsuite name="s" tests="1" failures="0" errors="0">'
                                b'<testcase classname="c"/></testsuite></testsuites>')
    assert not schema.validate(bad)


def test_judge_rules():
    assert judge(60.0, 61.78, True, None, False, False) == ("failed", ["threshold: score 60.00 < threshold 61.78"])
    assert judge(65.0, 61.78, True, "regressed", False, False)[0] == "failed"
    assert judge(65.0, 61.78, True, "inconclusive", False, False) == ("passed", [])
    assert judge(None, 61.78, True, None, True, False)[0] == "error"
    assert judge(65.0, 61.78, True, None, False, True)[0] == "error"
    assert judge(5.0, 6.0, False, None, False, False) == ("passed", [])  # lower is better
    assert "planted" not in failure_message(_results()[0])
