"""Bisect run directory writers: report.md, report.html, summary.json, samples.jsonl, repro/.

``write_report(run_dir, inputs, plan, state, run)`` writes everything from the orchestrator's
``BisectState`` (every file atomically, summary.json last) and returns the summary dict. Schema of
summary.json: harness/bisect/report/SCHEMA.md. report.md and report.html are rendered from the
summary dict alone. A write that fails (a full disk) leaves no temp file and is one HarnessError
naming the file; the caller builds the run directory in a staging directory and publishes it only
when every file is written (harness/evaluation/rundir.py), so no report lists a file never written.
"""
from __future__ import annotations

from pathlib import Path

from harness.bisect.state import BisectState


def write_decisive(run_dir: Path, results: dict, specs: dict) -> dict:
    """samples.jsonl (candidate records of the decisive comparison) and decisive/{reference,candidate}/
    run directories, so ``python -m harness compare decisive/reference decisive/candidate`` works."""
    from harness.evaluation.records import write_records
    from harness.evaluation.rundir import write_run

    files = {}
    cand, ref = results.get("candidate"), results.get("reference")
    if cand is not None:
        write_records(run_dir / "samples.jsonl", cand.records)
        files["samples"] = "samples.jsonl"
    for role, res in (("reference", ref), ("candidate", cand)):
        if res is not None and specs.get(role) is not None:
            write_run(run_dir / "decisive" / role, specs[role], res)
            files[f"decisive_{role}"] = f"decisive/{role}"
    return files


def write_report(run_dir: Path, inputs, plan, state: BisectState, run: dict) -> dict:
    """Every file of the run directory from the run's ``BisectState`` (``harness.bisect.state``) and its
    ``run`` section (timings, runner statistics); returns the summary dict."""
    from harness.bisect.report.html import render_html
    from harness.bisect.report.markdown import render_markdown
    from harness.bisect.report.summary import build_summary, write_json
    from harness.jsonio import write_text_atomic

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    files = {"report_md": "report.md", "report_html": "report.html", "summary_json": "summary.json"}
    files.update(write_decisive(run_dir, state.results, state.specs))
    files.update(_artefacts(run_dir, inputs, plan, state))
    summary = build_summary(inputs, plan, state, files, run)
    summary["plan"]["rendered"] = plan.render()
    md = render_markdown(summary)
    write_text_atomic(run_dir / "report.md", md)
    write_text_atomic(run_dir / "report.html", render_html(summary, md, run_dir))
    write_json(run_dir / "summary.json", summary)
    return summary


def _artefacts(run_dir: Path, inputs, plan, state: BisectState) -> dict:
    """repro/ (written here), and the files the phases wrote: fake_quant_debug.yaml, breakdown/."""
    from harness.bisect.report.repro import write_repro

    groups = [c["knobs"] for c in state.culprits or []]
    recovered = ((state.phases or {}).get("ladder") or {}).get("recovered")
    files = write_repro(run_dir, state.outcome or "unexplained", plan, inputs, groups, state.headline or "",
                        recovered=recovered)
    if (run_dir / "fake_quant_debug.yaml").exists() and "4a" in (state.phases or {}):
        files["fake_quant_yaml"] = "fake_quant_debug.yaml"
    p5 = (state.phases or {}).get("5") or {}
    for f in p5.get("files") or []:
        files[f"breakdown:{Path(f).name}"] = f
    return files
