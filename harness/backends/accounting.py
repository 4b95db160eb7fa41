"""Account for every key of a config: APPLIED / DISABLED / SKIPPED / FAILED / UNKNOWN, with the evidence.

This is TensorRT-LLM's own config-to-log check done mechanically (NVIDIA/TensorRT-LLM
.claude/skills/ad-conf-check/SKILL.md@222982db): the YAML is flattened to dotted keys, every key gets
one status and the line that proves it, and no key is ever left out.

* ``APPLIED``: the engine confirms it (a transform that matched, a setting the engine reports with
  the requested value, a confirming log line);
* ``FAILED``: attempted but it did not take (an error, a fallback line, the engine resolved another
  value, a transform that ran although disabled or was disabled although requested);
* ``SKIPPED``: the transform ran but found nothing to do (0 matches or reported skipped);
* ``DISABLED``: ``enabled: false`` and the engine agrees (or an option of a disabled transform);
* ``UNKNOWN``: no evidence either way (a runtime setting with no log line, a transform never logged).

Input is an engine's ``EvalResult.info``: ``transforms`` (per-transform records with ``status`` and
``evidence``, harness/backends/trtllm/logs.py or harness/backends/emulator/pipeline.py), ``settings``
and ``engine_args`` (values the engine ended up with), ``transform_configs`` (the validated option
values per transform) and ``log_evidence`` (harness/backends/trtllm/logs.py ``find_evidence``).
Pure: no engine, no I/O.
"""
from __future__ import annotations

STATUSES = ("APPLIED", "DISABLED", "SKIPPED", "FAILED", "UNKNOWN")
_FROM_RECORD = {"applied": "APPLIED", "skipped": "SKIPPED", "disabled": "DISABLED", "failed": "FAILED"}


def flatten(cfg: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Dotted keys in YAML order; a transform given as ``{}`` (or null) counts as ``.enabled: True``."""
    out: list[tuple[str, object]] = []
    for k, v in (cfg or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out += flatten(v, key + ".")
        elif prefix == "transforms." and (v is None or v == {}):
            out.append((key + ".enabled", True))
        else:
            out.append((key, v))
    return out


def _row(key, value, status: str, evidence: str) -> dict:
    return {"key": key, "value": value, "status": status, "evidence": evidence}


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return [str(x) for x in a] == [str(x) for x in b]
    return str(a) == str(b)


def status_of(rec: dict) -> str | None:
    """A per-transform record's normalised status (applied | skipped | disabled | failed | not_seen), derived from
    the older keys (``enabled`` / ``skipped`` / ``applied`` / ``num_matches``) for records stored without one."""
    if rec.get("status"):
        return str(rec["status"])
    if rec.get("enabled") is False:
        return "disabled"
    if "applied" in rec:
        return "applied" if rec["applied"] else "skipped"
    if rec.get("skipped") is True:
        return "skipped"
    try:
        n = rec.get("num_matches")
        return None if n is None else ("applied" if int(n) > 0 else "skipped")
    except (TypeError, ValueError):
        return None


def _records(info: dict) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in (info or {}).get("transforms") or []:
        if isinstance(r, dict) and r.get("transform"):
            out.setdefault(str(r["transform"]), r)
    return out


def _transform_row(key: str, value, rec: dict | None, validated: dict, any_records: bool) -> dict:
    name, opt = key.split(".", 2)[1], key.split(".", 2)[2]
    if opt != "enabled" and opt in validated and not _same(validated[opt], value):
        return _row(key, value, "FAILED", f"the engine's validated config has {name}.{opt}={validated[opt]!r}")
    if rec is None or status_of(rec) in (None, "not_seen"):
        why = "no log line for this transform" if any_records else "no per-transform records were captured"
        return _row(key, value, "UNKNOWN", why)
    status, evidence = status_of(rec), str(rec.get("evidence") or "")
    if opt == "enabled" and value is False:
        if status == "disabled":
            return _row(key, value, "DISABLED", evidence)
        return _row(key, value, "FAILED", f"requested enabled: false, but the engine ran it: {evidence}")
    if status == "disabled" and opt == "enabled":
        return _row(key, value, "FAILED", f"requested enabled, but the engine reports it disabled: {evidence}")
    return _row(key, value, _FROM_RECORD.get(status, "UNKNOWN"), evidence)


def _reported(key: str, info: dict):
    """The value the engine reports for a top-level key (settings first, then its validated args)."""
    settings = (info or {}).get("settings") or {}
    if key in settings:
        return True, settings[key]
    flat = dict(flatten((info or {}).get("engine_args") or {}))
    if key in flat:
        return True, flat[key]
    if key in (info or {}) and key in ("compile_backend", "attn_backend", "world_size"):
        return True, info[key]
    return False, None


def _log_row(key: str, value, ev: dict) -> dict | None:
    """A row decided by configs/trtllm/config_log_patterns.yaml lines, or None."""
    if ev.get("fail"):
        return _row(key, value, "FAILED", ev["fail"][0])
    confirm = ev.get("confirm") or {}
    mine = confirm.get(str(value)) or [ln for ln in confirm.get("*", []) if str(value) in ln]
    if mine:
        return _row(key, value, "APPLIED", mine[0])
    other = [lines[0] for group, lines in confirm.items() if group not in ("*", str(value))]
    if other:
        return _row(key, value, "FAILED", f"log shows another value: {other[0]}")
    return None


def _top_row(key: str, value, info: dict) -> dict:
    ev = ((info or {}).get("log_evidence") or {}).get(key) or {}
    known, reported = _reported(key, info)
    if known and not _same(reported, value):
        return _row(key, value, "FAILED", f"requested {value!r}, the engine resolved {reported!r}")
    by_log = _log_row(key, value, ev)
    if by_log is not None:
        return by_log
    if known:
        return _row(key, value, "APPLIED", f"the engine reports {key}={reported!r}")
    if key == "plugins" and (info or {}).get("plugins"):
        return _row(key, value, "APPLIED", f"plugins loaded: {', '.join(map(str, info['plugins']))}")
    return _row(key, value, "UNKNOWN", "no evidence (consumed without a log line, or not reported by the engine)")


def account_config(config: dict, info: dict) -> list[dict]:
    """One row per dotted key of ``config`` (what the user wrote), judged against an engine's info."""
    recs = _records(info)
    validated_all = (info or {}).get("transform_configs") or {}
    rows = []
    for key, value in flatten(config):
        if key.startswith("transforms.") and key.count(".") >= 2:
            name = key.split(".", 2)[1]
            ev = ((info or {}).get("log_evidence") or {}).get(key)
            row = _transform_row(key, value, recs.get(name), validated_all.get(name) or {}, bool(recs))
            if ev and row["status"] in ("APPLIED", "UNKNOWN"):
                row = _log_row(key, value, ev) or row
            rows.append(row)
        else:
            rows.append(_top_row(key, value, info))
    return rows


def counts(rows: list[dict]) -> dict:
    return {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES if any(r["status"] == s for r in rows)}


def render_rows(rows: list[dict], width: int = 110) -> list[str]:
    """A markdown table of the rows (the report's did-it-apply section)."""
    lines = ["| config | result | evidence |", "|---|---|---|"]
    for r in rows:
        ev = str(r["evidence"])
        if "[stage=" in ev:
            ev = ev[ev.index("[stage="):]
        ev = ev.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{r['key']} = {r['value']}` | {r['status']} | {ev[:width]} |")
    return lines
