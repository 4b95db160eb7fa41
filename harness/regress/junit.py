"""JUnit XML for a regression run: one <testcase> per job.

Shape accepted by Jenkins (junit plugin), GitLab and GitHub test reporters: <testsuites> holding one
<testsuite name tests failures errors skipped time timestamp hostname>, <properties> with the
engine versions, and one <testcase classname name time> per job with <failure> (accuracy
regression, message carries the numbers), <error> (unresolved: crash / timeout / OOM) or
<skipped>, plus <system-out> with the job's summary lines.
"""
from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

from harness.regress.jobs import JobResult

_XML_BAD = {c: None for c in list(range(0, 9)) + [11, 12] + list(range(14, 32))}


def _clean(text) -> str:
    """XML 1.0 cannot hold most control characters; drop them (log tails carry ANSI escapes)."""
    return str(text if text is not None else "").translate(_XML_BAD)


def _fmt(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}"


def failure_message(r: JobResult) -> str:
    """One line with the numbers: score, threshold, reference, n, paired verdict."""
    parts = []
    ref = r.reference or {}
    if r.score is not None:
        parts.append(f"{r.job['task']} {_fmt(r.score)}")
    if r.threshold is not None:
        op = ">=" if ref.get("higher_is_better", True) else "<="
        parts.append(f"threshold {_fmt(r.threshold)} (need {op}; ref {_fmt(ref.get('accuracy'))}, n={r.n}, "
                     f"sigma={ref.get('sigma')}, alpha={ref.get('alpha')}, theta={_fmt(r.theta)})")
    if r.paired:
        p = r.paired
        pv = "n/a" if p.get("p_value") is None else f"{p['p_value']:.2g}"
        parts.append(f"paired vs {p.get('backend')}: {p.get('verdict')} (ref {_fmt(p.get('score'))}, "
                     f"delta {_fmt(p.get('delta'))}, p={pv})")
    head = "; ".join(parts)
    why = "; ".join(r.messages)
    message = f"{why} | {head}" if why and head else (why or head)
    return f"{message} | bisect: {bisect_text(r)}" if bisect_text(r) else message


def bisect_text(r: JobResult) -> str | None:
    """What the job's bisect found, one line (the culprit first), or None when none ran."""
    found = r.bisect or {}
    if found.get("culprit"):
        return found["culprit"]
    return r.bisect_status


def job_lines(r: JobResult) -> list[str]:
    j = r.job
    conf = j.get("config_path") or ("inline (config.yaml in the job directory)" if j.get("config") else "(defaults)")
    lines = [f"job: {r.name}", f"backend: {j['backend']}  config: {conf}",
             f"status: {r.status}", f"message: {failure_message(r)}"]
    if r.config_hash:
        lines.append(f"config hash: {r.config_hash}")
    if r.error:
        lines.append(f"error: {r.error}")
    if r.triage and r.triage.get("primary"):
        lines.append(f"triage: {r.triage['primary']}")
    if r.bisect:
        lines.append(f"bisect: {r.bisect.get('culprit')}")
        if r.bisect.get("headline"):
            lines.append(f"bisect headline: {r.bisect['headline']}")
    if r.bisect_report:
        lines.append(f"bisect report: {r.bisect_report}")
    if r.result_dir:
        lines.append(f"results: {r.result_dir}")
    return lines


def build_junit(suite_name: str, results: list[JobResult], versions: dict | None = None,
                timestamp: datetime | None = None, hostname: str | None = None) -> ET.ElementTree:
    ts = (timestamp or datetime.now(timezone.utc)).replace(microsecond=0)
    total_time = sum(r.duration_s or 0.0 for r in results)
    counts = {s: sum(r.status == s for r in results) for s in ("failed", "error", "skipped")}
    root = ET.Element("testsuites", name=suite_name, tests=str(len(results)), failures=str(counts["failed"]),
                      errors=str(counts["error"]), time=f"{total_time:.3f}")
    suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(results)),
                          failures=str(counts["failed"]), errors=str(counts["error"]),
                          skipped=str(counts["skipped"]), time=f"{total_time:.3f}",
                          timestamp=ts.strftime("%Y-%m-%dT%H:%M:%S"),
                          hostname=hostname or socket.gethostname())
    if versions:
        props = ET.SubElement(suite, "properties")
        for k, v in sorted(versions.items()):
            ET.SubElement(props, "property", name=str(k), value=_clean(v))
    for r in results:
        j = r.job
        classname = "regress." + ".".join(
            str(x).replace(".", "_").replace("/", "_") for x in (j["model_id"], j["task"]))
        case = ET.SubElement(suite, "testcase", classname=classname, name=r.name, time=f"{r.duration_s or 0.0:.3f}")
        msg = _clean(failure_message(r))
        if r.status == "failed":
            el = ET.SubElement(case, "failure", message=msg, type="AccuracyRegression")
            el.text = _clean("\n".join(job_lines(r)))
        elif r.status == "error":
            el = ET.SubElement(case, "error", message=_clean(r.error or msg), type="Unresolved")
            el.text = _clean("\n".join(job_lines(r)) + ("\n\n" + r.log_tail if r.log_tail else ""))
        elif r.status == "skipped":
            ET.SubElement(case, "skipped", message=msg or "skipped")
        out = ET.SubElement(case, "system-out")
        out.text = _clean("\n".join(job_lines(r)))
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(path, suite_name: str, results: list[JobResult], **kw) -> str:
    tree = build_junit(suite_name, results, **kw)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return str(path)
