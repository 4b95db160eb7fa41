"""The bisect run directory a user acts on: report.md (verdict first, phases, trail with config diffs,
next steps), report.html (self-contained, plot + trail chart), summary.json (documented schema),
samples.jsonl + decisive runs, repro/ (minimal failing YAML, confirming YAML, one command)."""
import json
import re
import subprocess

import pytest
import yaml

from harness.cli import main
from harness.config import Catalogue, resolve
from harness.paths import DEMO_CONFIG, DEMO_MMLU, DEMO_MODEL, EMULATOR_DEFAULT_YAML

pytestmark = pytest.mark.skipif(not (DEMO_MODEL / "config.json").is_file() or not DEMO_MMLU.is_dir()
                                or not DEMO_CONFIG.is_file(), reason="demo model/data/config not built")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    rc = main(["bisect", "--samples", "18", "--executor", "inprocess", "--quiet", "--cache-dir", str(tmp / "cache"),
               "--out", str(tmp / "reports")])  # the embedded demo: demo model, data and config
    assert rc == 0
    (d,) = list((tmp / "reports").glob("bisect-*"))
    return d


@pytest.fixture(scope="module")
def summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def test_summary_schema(summary, run_dir):
    assert summary["schema_version"] == 1
    for key in ("verdict", "outcome", "headline", "label", "culprits", "suspects", "scores", "inputs", "plan",
                "phases", "trail", "next_steps", "warnings", "environment", "knob_effects", "files", "run"):
        assert key in summary, key
    assert summary["verdict"] == "regressed" and summary["outcome"] == "culprit"
    assert summary["culprits"][0]["knobs"] == ["optimize_rope"] and summary["culprits"][0]["confirmed"] is True
    for path in summary["files"].values():  # every file the summary names exists
        assert (run_dir / path).exists(), path
    env = summary["environment"]["backends"]["candidate"]
    assert env["torch"] and env["transformers"] and env["device"] == "cpu"
    assert summary["knob_effects"]["optimize_rope"]["ran"] is True
    import harness.bisect.report
    from pathlib import Path

    schema = (Path(harness.bisect.report.__file__).parent / "SCHEMA.md").read_text()
    for key in summary:  # every top-level field is documented
        assert f"`{key}`" in schema, key


def test_report_md_verdict_first_then_phases_and_trail(summary, run_dir):
    md = (run_dir / "report.md").read_text()
    lines = [x for x in md.splitlines() if x.strip()]
    assert lines[0].startswith("# AD accuracy bisect")
    assert lines[1].startswith("**REGRESSED") and "optimize_rope" in lines[1]
    order = ["## Next steps", "## Phase 0", "## Phases 1-2", "## Phase 3", "## Search", "## Phase 6",
             "## Phase 5", "## Evaluation trail", "## Environment"]
    pos = [md.index(h) for h in order]
    assert pos == sorted(pos)
    # one trail row per evaluation, each with its verdict and its config diff
    rows = [x for x in md.splitlines() if re.match(r"\| \d+ \|", x)]
    assert len(rows) == len(summary["trail"])
    rope_row = next(r for r in rows if "| minimal + optimize_rope |" in r)
    assert "regressed" in rope_row and "transforms.optimize_rope.enabled: False -> True" in rope_row
    assert "Reproduce: `sh repro/command.sh`" in md


def test_report_html_self_contained(run_dir):
    html = (run_dir / "report.html").read_text()
    assert "<svg" in html and "data:image/png;base64," in html  # trail chart, per-subject plot
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)  # nothing fetched from elsewhere
    assert "<script" not in html


def test_repro_files(summary, run_dir):
    cat = Catalogue.from_yaml(EMULATOR_DEFAULT_YAML)
    failing = resolve(cat, yaml.safe_load((run_dir / "repro/minimal_failing.yaml").read_text()))
    confirming = resolve(cat, yaml.safe_load((run_dir / "repro/confirming.yaml").read_text()))
    assert failing["transforms"]["optimize_rope"]["enabled"] is True
    assert failing["compile_backend"] == "torch-simple" and failing["transforms"]["fuse_rmsnorm"]["enabled"] is False
    assert confirming["transforms"]["optimize_rope"]["enabled"] is False
    assert confirming["compile_backend"] == "torch-cudagraph"  # everything else as deployed
    cmd = run_dir / "repro/command.sh"
    text = cmd.read_text()
    assert text.count("harness diagnose") == 2 and "harness compare" in text and "minimal_failing.yaml" in text
    assert cmd.stat().st_mode & 0o111
    assert subprocess.run(["sh", "-n", str(cmd)]).returncode == 0


def test_samples_and_decisive_runs(summary, run_dir):
    from harness.evaluation.records import read_records
    from harness.evaluation.rundir import read_run

    recs = read_records(run_dir / "samples.jsonl")
    assert len(recs) == summary["scores"]["n"]
    ref_run, ref_recs = read_run(run_dir / "decisive/reference")
    cand_run, cand_recs = read_run(run_dir / "decisive/candidate")
    assert ref_run["backend"] == summary["inputs"]["backend_ref"] and cand_run["backend"] == summary["inputs"]["backend"]
    assert [r["id"] for r in cand_recs] == [r["id"] for r in recs]
    assert summary["phases"]["5"]["per_subject"] and any(f.startswith("breakdown/") for f in summary["files"].values())
