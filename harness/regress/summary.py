"""summary.md and summary.json of a regression run."""
from __future__ import annotations

import json
import os
from pathlib import Path

STATUS_MARK = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP"}


def _f(x, d=2):
    return "-" if x is None else f"{x:.{d}f}"


def _rel(path: str | None, base: Path) -> str | None:
    if not path:
        return None
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return path


def summary_dict(outcome) -> dict:
    return {
        "suite": outcome.suite, "run_id": outcome.run_id, "started_at": outcome.started_at,
        "finished_at": outcome.finished_at, "exit_code": outcome.exit_code, "counts": outcome.counts(),
        "versions": outcome.versions, "runner_stats": outcome.runner_stats,
        "jobs": [r.to_dict() for r in outcome.results],
    }


def summary_markdown(outcome) -> str:
    base = Path(outcome.out_dir)
    c = outcome.counts()
    verdict = {0: "all jobs passed", 1: "REGRESSION", 3: "unresolved job(s), no regression"}[outcome.exit_code]
    lines = [f"# Accuracy regression: {outcome.suite}", "",
             f"Run {outcome.run_id} ({outcome.started_at} -> {outcome.finished_at}): **{verdict}** "
             f"- {c['passed']} passed, {c['failed']} failed, {c['error']} unresolved, {c['skipped']} skipped.", "",
             "Gate: TensorRT-LLM's one-tailed test (accuracy_core.py): pass when score >= "
             "ref + z(alpha) * sqrt(2 sigma^2 / n); theta is the smallest drop that test detects with power "
             "1 - beta. Paired: the reference backend on the same samples (McNemar / bootstrap verdict).", "",
             "| job | status | score | ref | threshold | theta | n | paired verdict | paired ref | bisect |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in outcome.results:
        ref = (r.reference or {}).get("accuracy")
        p = r.paired or {}
        lines.append(f"| `{r.name}` | {STATUS_MARK[r.status]} | {_f(r.score)} | {_f(ref)} | {_f(r.threshold)} | "
                     f"{_f(r.theta)} | {r.n if r.n is not None else '-'} | {p.get('verdict') or '-'} | "
                     f"{_f(p.get('score'))} | {_bisect_cell(r, base)} |")
    bad = [r for r in outcome.results if r.status in ("failed", "error")]
    if bad:
        lines += ["", "## Failures", ""]
        for r in bad:
            lines += _failure_lines(r, base)
    lines += ["", "## Versions", ""] + [f"- {k}: `{v}`" for k, v in sorted(outcome.versions.items())]
    st = outcome.runner_stats or {}
    if st:
        lines += ["", f"Evaluations: {st.get('evaluations_run', '?')} run, {st.get('hits', '?')} from cache, "
                      f"{st.get('unresolved', 0)} unresolved; wall {st.get('wall_seconds', '?')} s."]
    return "\n".join(lines) + "\n"


def _bisect_cell(r, base: Path) -> str:
    """The culprit (or the bisect's status) and a link to its report, for the job table."""
    rep = _rel(r.bisect_report, base)
    found = (r.bisect or {}).get("culprit")
    text = (found or r.bisect_status or "-").replace("|", "\\|")
    return f"{text} ([report]({rep}))" if rep else text


def _failure_lines(r, base: Path) -> list[str]:
    """The section of one failed or unresolved job: why, reference, paired comparison, triage, bisect."""
    j = r.job
    lines = [f"### {STATUS_MARK[r.status]} `{r.name}`", "",
             f"- backend `{j['backend']}`, config `{j.get('config_path') or 'inline (see config.yaml)'}`, "
             f"config hash `{r.config_hash}`"]
    for m in r.messages:
        lines.append(f"- {m}")
    if r.reference:
        rf = r.reference
        spec = ", ".join(f"{k}={v}" for k, v in rf["spec"].items() if v is not None)
        lines.append(f"- reference {_f(rf['accuracy'])} from {rf['source']} (spec {spec}); "
                     f"sigma {rf['sigma']}, alpha {rf['alpha']}, beta {rf['beta']}")
    if r.paired and r.paired.get("summary"):
        lines.append("- paired comparison:")
        lines += [f"  - {s}" for s in r.paired["summary"]]
    if r.error:
        lines.append(f"- error: `{r.error}`")
    if r.triage and r.triage.get("primary"):
        m = r.triage["matches"][0]
        lines.append(f"- triage: **{m['title']}** - {m['root_cause']} Fix: {m['fix']}")
    elif r.triage:
        lines.append("- triage: no known pattern (run `python -m harness triage --reports "
                     f"{_rel(r.result_dir, base)}`)")
    if r.bisect:
        lines.append(f"- bisect: **{r.bisect.get('culprit')}**" + (f" - {r.bisect['headline']}"
                                                                    if r.bisect.get("headline") else ""))
    if r.bisect_report:
        rep = _rel(r.bisect_report, base)
        lines.append(f"- bisect report: [{rep}]({rep}) ({r.bisect_status})")
    elif r.bisect_status:
        lines.append(f"- bisect: {r.bisect_status}")
    lines.append(f"- results: `{_rel(r.result_dir, base)}`")
    lines.append("")
    return lines


def write_summary(outcome, out_dir: str | Path) -> dict:
    out_dir = Path(out_dir)
    md = out_dir / "summary.md"
    js = out_dir / "summary.json"
    md.write_text(summary_markdown(outcome))
    js.write_text(json.dumps(summary_dict(outcome), indent=1, default=str))
    return {"summary_md": str(md), "summary_json": str(js)}
