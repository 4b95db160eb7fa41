"""Did it apply?  AD's per-transform log lines -> one record per transform, for both log eras.

Every message a transform logs carries the tag ``[stage=S, transform=T]`` (``_log_info`` and, from
@c57d2c55 on, ``with_transform_logging``, which prefixes every ``ad_logger`` call made inside the
transform).  What follows the tag differs by era (NVIDIA/TensorRT-LLM
tensorrt_llm/_torch/auto_deploy/transform/interface.py):

* **legacy** (@01f08360, @c57d2c55): one result line ``enabled=<bool>, skipped=True`` *or*
  ``enabled=<bool>, num_matches=N``, then ``is_clean=..., has_valid_shapes=...``; @c57d2c55 adds a
  second line ``elapsed time: total=Xs, pre_cleanup=..., apply=..., post_cleanup=...`` and cleanup
  chatter ``running graph cleanup (with shape_prop)`` / ``(no shape_prop)`` (@01f08360: ``running
  pre-cleanup ...`` / ``running post-cleanup ...``).
* **summary** (the newest stored interface.py, with ``Stages.EXPORT_ONNX`` and memory tracking; the
  same format is documented in .claude/skills/ad-conf-check/references/config_log_patterns.md@6f2ff172):
  ``[PRE-CLEANUP] ...``, ``[APPLY] applying transform...`` (every message logged while the transform
  applies gets ``[APPLY]``), ``[POST-CLEANUP] ...``, optional ``[CUDA MEM DIFF (...)]``, then one of
  ``[SUMMARY] matches=N | time: Xs (pre=..s, apply=..s, post=..s)``, ``[SUMMARY] skipped | time: ...``,
  ``[SUMMARY] disabled``.

The era is detected per line, so a log mixing both parses.  A line may carry any prefix before the
tag: ``[MM/DD/YYYY-HH:MM:SS]`` (the logging Formatter), ``[TRT-LLM AUTO-DEPLOY]`` / ``[TRT-LLM]``,
``[RANK r]`` (newer Logger) or ``[MPI_Rank r]`` (tensorrt_llm/logger.py@027cd518), a severity
``[I] [W] [E] [V] [D] [F]``; ANSI colour codes are stripped.

``skipped`` is what a transform reports when it had nothing to do -- ``FuseFP8Linear`` returns
``skipped=(cnt == 0)`` (transform/library/fuse_quant.py), sharding returns ``skipped=True`` below
world_size 2 after "Skipping sharding for single device" (transform/library/sharding.py@03dd9bb8) --
and also what ``skip_on_error`` records after the warning ``Transform T failed: <error>``.  The two are
told apart by that warning: a skip preceded by an error is ``failed``, any other skip is ``skipped``.

Record statuses: ``applied`` (num_matches > 0), ``skipped`` (skipped, or 0 matches: nothing to do on
this model, as the ad-conf-check skill reads ``matches=0``), ``disabled``, ``failed`` (an error line,
or lines without a result: the build stopped inside it), ``not_seen`` (added by ``with_not_seen`` for
transforms of the config AD never logged).
"""
from __future__ import annotations

import re

TAG_RE = re.compile(r"\[stage=(?P<stage>[A-Za-z0-9_]+),\s*transform=(?P<transform>[A-Za-z0-9_\-.]+)\]\s*(?P<rest>.*)")
RANK_RE = re.compile(r"\[(?:RANK|MPI_Rank) (\d+)\]")
SEVERITY_RE = re.compile(r"\[([FEWIVD])\]")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
KV_RE = re.compile(r"(\w+)=([^,\s]+)")
ELAPSED_RE = re.compile(r"elapsed time:\s*total=([0-9.]+)s")
SUMMARY_RE = re.compile(r"\[SUMMARY\]\s*(?:(?P<disabled>disabled)|(?P<skipped>skipped)|matches=(?P<n>\d+))"
                        r"(?:.*?time:\s*(?P<t>[0-9.]+)s)?")
FAILED_RE = re.compile(r"Transform \S+ failed")
CHATTER = ("[PRE-CLEANUP]", "[POST-CLEANUP]", "[CUDA MEM", "running graph cleanup", "running pre-cleanup",
           "running post-cleanup", "applying transform...")
STATUSES = ("applied", "skipped", "disabled", "failed", "not_seen")


def _bool(v: str | None):
    return None if v is None else v.strip().lower() == "true"


class _Line:
    """One tagged log line, split into what the parser needs."""

    def __init__(self, raw: str, m: re.Match):
        head = raw[: m.start()]
        rank = RANK_RE.search(head)
        sev = SEVERITY_RE.findall(head)
        self.raw = raw.strip()
        self.rank = int(rank.group(1)) if rank else 0
        self.severity = sev[-1] if sev else None
        self.stage, self.name = m.group("stage"), m.group("transform")
        rest = m.group("rest").strip()
        self.apply = rest.startswith("[APPLY]")
        self.rest = rest[len("[APPLY]"):].strip() if self.apply else rest

    @property
    def is_error(self) -> bool:
        return self.severity in ("E", "F") or bool(FAILED_RE.search(self.rest))


def _new_record(ln: _Line) -> dict:
    return {"stage": ln.stage, "transform": ln.name, "status": None, "num_matches": None, "enabled": None,
            "skipped": False, "is_clean": None, "has_valid_shapes": None, "evidence": None, "format": None,
            "rank": ln.rank, "time_s": None, "messages": [], "errors": []}


def _result(rec: dict, ln: _Line) -> bool:
    """Fill ``rec`` from a result line (either era); False when ``ln`` is not one."""
    sm = SUMMARY_RE.search(ln.rest)
    if sm:
        rec["format"] = "summary"
        rec["enabled"] = not sm.group("disabled")
        rec["skipped"] = bool(sm.group("disabled") or sm.group("skipped"))
        rec["num_matches"] = int(sm.group("n")) if sm.group("n") is not None else (0 if sm.group("disabled") else None)
        rec["time_s"] = float(sm.group("t")) if sm.group("t") else None
    elif ln.rest.startswith("enabled="):
        kv = dict(KV_RE.findall(ln.rest))
        rec["format"] = "legacy"
        rec["enabled"] = _bool(kv.get("enabled"))
        rec["skipped"] = _bool(kv.get("skipped")) is True
        rec["num_matches"] = None if rec["skipped"] or "num_matches" not in kv else int(kv["num_matches"])
        rec["is_clean"], rec["has_valid_shapes"] = _bool(kv.get("is_clean")), _bool(kv.get("has_valid_shapes"))
    else:
        return False
    rec["status"] = _status(rec)
    rec["evidence"] = rec["errors"][-1] if rec["status"] == "failed" and rec["errors"] else ln.raw
    return True


def _starts(ln: _Line) -> bool:
    """A line that opens a transform's block (after an earlier run of the same transform closed)."""
    return (ln.apply or ln.rest.startswith(("[PRE-CLEANUP]", "running ", "enabled="))
            or SUMMARY_RE.search(ln.rest) is not None)


def _status(rec: dict) -> str:
    if rec["enabled"] is False:
        return "disabled"
    if rec["errors"]:
        return "failed"  # skip_on_error swallowed a failure (interface.py: warning, then skipped=True)
    if rec["skipped"] or not rec["num_matches"]:
        return "skipped"
    return "applied"


def _note(rec: dict, ln: _Line) -> None:
    """A non-result line of an open record: timing, chatter, a message, an error."""
    em = ELAPSED_RE.search(ln.rest)
    if em:
        rec["time_s"] = float(em.group(1))
        return
    if ln.is_error:
        rec["errors"].append(ln.raw)
        return
    if ln.rest and not any(ln.rest.startswith(c) or c in ln.rest[:40] for c in CHATTER):
        rec["messages"].append(ln.rest[:300])


def parse_transform_lines(text: str) -> list[dict]:
    """Per-transform records, in execution order, from captured AD output (stdout and stderr alike).

    Lines from ranks other than the lowest seen are dropped (every rank runs the same pipeline); a
    transform that runs twice on one rank gives two records.  A transform with lines but no result
    line (the build stopped inside it) is ``failed`` with its last line as evidence.
    """
    per_rank: dict[int, list[dict]] = {}
    open_: dict[tuple[int, str], dict] = {}  # (rank, transform) -> record still collecting lines
    for raw in ANSI_RE.sub("", text).splitlines():
        m = TAG_RE.search(raw)
        if not m:
            continue
        ln = _Line(raw, m)
        key = (ln.rank, ln.name)
        rec = open_.get(key)
        if rec is None or rec["status"] is not None and _starts(ln):
            rec = _new_record(ln)
            open_[key] = rec
            per_rank.setdefault(ln.rank, []).append(rec)
        if rec["status"] is None and _result(rec, ln):
            continue
        _note(rec, ln)
    if not per_rank:
        return []
    records = per_rank[min(per_rank)]
    for rec in records:
        _close(rec)
    return records


def _close(rec: dict) -> None:
    """A record that never got its result line."""
    if rec["status"] is not None:
        return
    rec["status"] = "failed"
    last = (rec["errors"] or rec["messages"] or ["(no result line)"])[-1]
    rec["evidence"] = rec["errors"][-1] if rec["errors"] else f"no result line: the build stopped here? last: {last}"


def with_not_seen(records: list[dict], resolved: dict) -> list[dict]:
    """``records`` plus a ``not_seen`` record for every transform of ``resolved`` AD never logged.

    Nothing is added when no record was captured at all (the log level, not the pipeline, is the
    likely cause: the caller warns once instead)."""
    if not records:
        return []
    seen = {r["transform"] for r in records}
    out = list(records)
    for name, conf in ((resolved or {}).get("transforms") or {}).items():
        if name in seen or not isinstance(conf, dict):
            continue
        out.append({"stage": conf.get("stage"), "transform": name, "status": "not_seen", "num_matches": None,
                    "enabled": None, "skipped": False, "evidence": "no log line for this transform",
                    "format": None, "messages": [], "errors": []})
    return out


def summarize(records: list[dict]) -> dict:
    """Counts per status, and the names behind the ones worth a look."""
    counts = {s: sum(1 for r in records if r.get("status") == s) for s in STATUSES}
    return {"n_transforms": len(records), "counts": counts,
            "skipped": [r["transform"] for r in records if r.get("status") == "skipped"],
            "failed": [r["transform"] for r in records if r.get("status") == "failed"],
            "not_seen": [r["transform"] for r in records if r.get("status") == "not_seen"],
            "formats": sorted({r["format"] for r in records if r.get("format")})}


def describe(rec: dict) -> str:
    """One line for the report, e.g. "fuse_fp8_linear [post_load_fusion]: skipped (nothing to do)"."""
    head = f"{rec['transform']} [{rec.get('stage')}]"
    status = rec.get("status")
    if status == "applied":
        n = rec["num_matches"]
        return f"{head}: applied, {n} match{'es' if n != 1 else ''}"
    if status == "skipped":
        why = "0 matches" if rec.get("num_matches") == 0 and not rec.get("skipped") else "reported skipped"
        return f"{head}: skipped - nothing to do ({why})"
    if status == "failed":
        return f"{head}: FAILED - {rec.get('evidence')}"
    return f"{head}: {status}"


def find_evidence(text: str, patterns: dict, limit: int = 3) -> dict:
    """Lines of ``text`` matching configs/trtllm/config_log_patterns.yaml, per config key:
    ``{key: {"confirm": {value_or_*: [line, ...]}, "fail": [line, ...]}}`` (keys with a match only)."""
    lines = [ln.strip() for ln in ANSI_RE.sub("", text).splitlines() if ln.strip()]
    out: dict = {}
    for key, spec in (patterns or {}).items():
        found: dict = {"confirm": {}, "fail": []}
        for group, subs in ((spec or {}).get("confirm") or {}).items():
            hits = [ln for ln in lines if any(s in ln for s in subs)][:limit]
            if hits:
                found["confirm"][str(group)] = hits
        found["fail"] = [ln for ln in lines if any(s in ln for s in (spec or {}).get("fail") or [])][:limit]
        if found["confirm"] or found["fail"]:
            out[key] = found
    return out


def not_applied_warnings(records: list[dict], resolved: dict, requested: dict | None = None,
                         engine_args: dict | None = None) -> list[str]:
    """Warnings for what is really suspicious, and nothing else.

    ``records``: parsed (with ``not_seen`` added); ``resolved``: the config sent to AD; ``requested``: what
    differs from the default.yaml in force; ``engine_args``: values of AD's validated ``LlmArgs``
    (``compile_backend``, ``attn_backend``, ``world_size``, ``transforms`` with their options).
    Warned: no transform line at all, a requested transform AD never logged, a transform that
    failed (an error before its skip, or no result line), a transform run against the request, a
    setting or option AD's validated config does not carry.  Not warned: a transform that found
    nothing to do (that is ``skipped``, reported in the did-it-apply table and pruned from the search).
    """
    warnings: list[str] = []
    want = (resolved or {}).get("transforms") or {}
    asked = set(((requested or {}).get("transforms") or {}).keys())
    if want and not records:
        return ["no per-transform log lines were captured (AUTO_DEPLOY_LOG_LEVEL above info?); cannot confirm "
                "which transforms ran"]
    for rec in records:
        name, status = rec["transform"], rec.get("status")
        conf = want.get(name) if isinstance(want.get(name), dict) else {}
        on = bool(conf.get("enabled", True))
        if status == "not_seen" and name in asked:
            warnings.append(f"{name}: set in the config ({'enabled' if on else 'disabled'}) but AD logged no line "
                            "for it (not in the pipeline that ran?)")
        elif status == "failed":
            warnings.append(f"{name}: failed: {rec.get('evidence')}")
        elif status == "disabled" and on and name in want:
            warnings.append(f"{name}: requested enabled but AD ran it disabled (an AD_* variable or validator "
                            "overrode it?)")
        elif status in ("applied", "skipped") and not on and name in want:
            warnings.append(f"{name}: requested disabled but AD ran it ({status})")
    return warnings + _engine_arg_warnings(resolved, requested, engine_args)


def _engine_arg_warnings(resolved: dict, requested: dict | None, engine_args: dict | None) -> list[str]:
    """Settings and requested transform options AD's validated LlmArgs does not carry."""
    eng = engine_args or {}
    out = []
    for key in ("compile_backend", "attn_backend", "world_size"):
        if key in (resolved or {}) and eng.get(key) is not None and str(resolved[key]) != str(eng[key]):
            out.append(f"{key}: requested {resolved[key]!r} but AD resolved {eng[key]!r}")
    eng_t = eng.get("transforms") or {}
    for name, conf in (((requested or {}).get("transforms")) or {}).items():
        got = eng_t.get(name)
        if not isinstance(conf, dict) or not isinstance(got, dict):
            continue
        for opt, value in conf.items():
            if opt in got and str(got[opt]) != str(value):
                out.append(f"transforms.{name}.{opt}: requested {value!r} but AD's validated config has {got[opt]!r}")
    return out
