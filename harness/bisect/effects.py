"""Did the requested knobs take effect? Compare a resolved config with the engine's records.

Engines report one record per transform under ``info["transforms"]`` (a list in execution order:
the emulator's pipeline, harness/backends/emulator/pipeline.py; for trtllm-ad, parsed from AD's log
lines, harness/backends/trtllm/logs.py), each with a normalised ``status``: ``applied`` (matched
N > 0 sites), ``skipped`` (ran, nothing to do), ``disabled``, ``failed`` (an error, e.g. swallowed
by ``skip_on_error``) or ``not_seen``. A ``{name: record}`` mapping and records without ``status``
(older stored results: ``enabled`` / ``skipped`` / ``num_matches``) are read too.

Warnings are for what is really suspicious: a knob requested off that the engine applied, one
requested on that it reports disabled or failed, one it never mentioned. A knob that ran and found
nothing to do is not a warning: ``knob_effects`` lists it, and Phase 3 prunes it from the search
(``harness.bisect.plan``, ``Plan.prune_no_effect``). Top-level settings (``compile_backend``,
``world_size``, ``attn_backend``) are checked against ``info["settings"]`` / ``info["config"]`` /
top-level ``info`` keys when the engine reports them.
"""
from __future__ import annotations

from harness.backends.accounting import status_of

SETTINGS = ("compile_backend", "world_size", "attn_backend")
__all__ = ["SETTINGS", "status_of", "transform_records", "knob_effects", "effect_warnings"]


def transform_records(info: dict) -> dict[str, dict]:
    recs = (info or {}).get("transforms")
    if isinstance(recs, dict):
        return {str(k): (v if isinstance(v, dict) else {"enabled": bool(v)}) for k, v in recs.items()}
    if isinstance(recs, list):
        out = {}
        for r in recs:
            if isinstance(r, dict) and (r.get("name") or r.get("transform")):
                out.setdefault(str(r.get("name") or r.get("transform")), r)
        return out
    return {}


def knob_effects(resolved: dict, info: dict, names: list[str]) -> dict[str, dict]:
    """{knob: {"requested", "status", "reported_enabled", "ran", "num_matches", "evidence"}} for transform knobs."""
    recs = transform_records(info)
    out = {}
    for n in names:
        conf = ((resolved or {}).get("transforms") or {}).get(n)
        if conf is None:
            continue
        rec = recs.get(n)
        status = None if rec is None else status_of(rec)
        out[n] = {"requested": bool(conf.get("enabled", True)), "status": status or "not_seen",
                  "reported_enabled": None if rec is None else rec.get("enabled"),
                  "ran": None if status in (None, "not_seen") else status == "applied",
                  "num_matches": None if rec is None else rec.get("num_matches"),
                  "evidence": None if rec is None else rec.get("evidence")}
    return out


def _transform_warning(name: str, e: dict) -> str | None:
    status = e["status"]
    if status == "not_seen":
        return f"{name}: requested {'on' if e['requested'] else 'off'} but the engine reported nothing for it " \
               "(did it run at all?)"
    if not e["requested"] and status in ("applied", "skipped", "failed"):
        return f"{name}: requested off but the engine ran it ({status}; num_matches={e['num_matches']})"
    if e["requested"] and status == "disabled":
        return (f"{name}: requested on but the engine reports it disabled (an environment variable or an "
                "older default.yaml overrode the config?)")
    if e["requested"] and status == "failed":
        return f"{name}: failed while applying: {e.get('evidence')}"
    return None


def effect_warnings(resolved: dict, info: dict, names: list[str]) -> list[str]:
    warnings = []
    if not transform_records(info):
        return warnings
    for n, e in knob_effects(resolved, info, names).items():
        w = _transform_warning(n, e)
        if w:
            warnings.append(w)
    reported = (info or {}).get("settings") or (info or {}).get("config") or info or {}
    if isinstance(reported, dict):
        for key in SETTINGS:
            if key in reported and key in (resolved or {}) and str(reported[key]) != str(resolved[key]):
                warnings.append(f"{key}: requested {resolved[key]!r} but the engine ran with {reported[key]!r}")
    return warnings
