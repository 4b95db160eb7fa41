"""Did the requested knobs take effect? Compare a resolved config with the engine's records.

Engines report per-transform application records under ``info["transforms"]`` (the emulator's
pipeline; for trtllm-ad, parsed from AD's ``[stage=..., transform=...]`` log lines:
``enabled=<bool>, skipped=True`` or ``num_matches=<N>``). Accepted shapes: ``{name: record}`` or
``[{"name" | "transform": ..., ...}]`` where a record has ``enabled`` and optionally ``skipped`` / ``applied`` /
``num_matches``. A transform the config disables but the engine ran (num_matches > 0 or
applied), or one the config enables that the engine reports as disabled, is a warning: the
bisect step did not test what it meant to. A transform enabled with 0 matches is not a warning
(it had nothing to match on this model) but is listed by ``knob_effects``.
Top-level settings (``compile_backend``, ``world_size``, ``attn_backend``) are checked against
``info["settings"]`` / ``info["config"]`` / top-level ``info`` keys when the engine reports them.
"""
from __future__ import annotations

SETTINGS = ("compile_backend", "world_size", "attn_backend")


def transform_records(info: dict) -> dict[str, dict]:
    recs = (info or {}).get("transforms")
    if isinstance(recs, dict):
        return {str(k): (v if isinstance(v, dict) else {"enabled": bool(v)}) for k, v in recs.items()}
    if isinstance(recs, list):
        out = {}
        for r in recs:
            if isinstance(r, dict) and (r.get("name") or r.get("transform")):
                out[str(r.get("name") or r.get("transform"))] = r
        return out
    return {}


def _ran(rec: dict) -> bool | None:
    if "applied" in rec:
        return bool(rec["applied"])
    if rec.get("skipped") is True:
        return False
    if "num_matches" in rec and rec["num_matches"] is not None:
        try:
            return int(rec["num_matches"]) > 0
        except (TypeError, ValueError):
            return None
    return None


def knob_effects(resolved: dict, info: dict, names: list[str]) -> dict[str, dict]:
    """{knob: {"requested": bool|value, "reported_enabled", "ran", "num_matches"}} for transform knobs."""
    recs = transform_records(info)
    out = {}
    for n in names:
        conf = ((resolved or {}).get("transforms") or {}).get(n)
        if conf is None:
            continue
        rec = recs.get(n)
        out[n] = {"requested": bool(conf.get("enabled", True)),
                  "reported_enabled": None if rec is None else rec.get("enabled"),
                  "ran": None if rec is None else _ran(rec),
                  "num_matches": None if rec is None else rec.get("num_matches")}
    return out


def effect_warnings(resolved: dict, info: dict, names: list[str]) -> list[str]:
    warnings = []
    if not transform_records(info):
        return warnings
    for n, e in knob_effects(resolved, info, names).items():
        if e["reported_enabled"] is None and e["ran"] is None:
            warnings.append(f"{n}: requested {'on' if e['requested'] else 'off'} but the engine reported nothing "
                            "for it (did it run at all?)")
        elif not e["requested"] and (e["ran"] or e["reported_enabled"]):
            warnings.append(f"{n}: requested off but the engine ran it (num_matches={e['num_matches']})")
        elif e["requested"] and e["reported_enabled"] is False:
            warnings.append(f"{n}: requested on but the engine reports it disabled (an environment variable or "
                            "an older default.yaml overrode the config?)")
    reported = (info or {}).get("settings") or (info or {}).get("config") or info or {}
    if isinstance(reported, dict):
        for key in SETTINGS:
            if key in reported and key in (resolved or {}) and str(reported[key]) != str(resolved[key]):
                warnings.append(f"{key}: requested {resolved[key]!r} but the engine ran with {reported[key]!r}")
    return warnings
