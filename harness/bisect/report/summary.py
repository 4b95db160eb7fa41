"""summary.json: the machine-readable result of a bisect run (schema in harness/bisect/report/SCHEMA.md).

``build_summary`` assembles it from the orchestrator's state; everything outside the ``run``
section is a pure function of the inputs and the stored evaluations, so a rerun of the same
command (all evaluations from the store) writes the same summary apart from ``run``.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

SCHEMA_VERSION = 1
VOLATILE_STEP_FIELDS = ("cached", "seconds", "attempts")

VERDICTS = {  # outcome -> top-level verdict
    "culprit": "regressed", "unconfirmed": "regressed", "core_path": "regressed", "unexplained": "regressed",
    "same": "same", "improved": "improved", "inconclusive": "inconclusive", "unresolved": "unresolved",
    "harness_suspect": "harness_suspect",
}


def _json_safe(obj):
    from harness.comparison.verdict import json_safe

    return json_safe(obj)


def step_dict(step) -> dict:
    d = step.to_dict() if hasattr(step, "to_dict") else dict(step)
    for k in VOLATILE_STEP_FIELDS:
        d.pop(k, None)
    return d


def environment(results: dict, warnings: list[str]) -> dict:
    """Engine, torch, transformers, device of each backend (from the engines' info) + the harness side."""
    from harness import __version__

    env = {"harness": __version__, "python": platform.python_version(), "platform": platform.platform(),
           "cpu_count": os.cpu_count(), "backends": {}}
    for role, res in results.items():
        if res is None:
            continue
        info = dict(res.info or {})
        keep = {k: info.get(k) for k in ("backend", "engine", "engine_version", "emulator_version", "device",
                                         "device_name", "dtype", "torch", "transformers", "tensorrt_llm", "threads",
                                         "default_yaml", "compile_backend", "world_size", "attn_backend", "plugins")
                if info.get(k) is not None}
        versions = info.get("versions")
        if isinstance(versions, dict):
            keep["versions"] = versions
        if info.get("env_scrubbed"):
            keep["env_scrubbed"] = info["env_scrubbed"]
        env["backends"][role] = keep
    env["knob_warnings"] = list(warnings)
    return env


def build_summary(inputs, plan, state: dict, results: dict, files: dict, run: dict) -> dict:
    """The summary.json dict (see SCHEMA.md)."""
    outcome = state.get("outcome") or "unexplained"
    phases = state.get("phases") or {}
    p1 = phases.get("1") or {}
    knob_effects = {}
    cand = results.get("candidate")
    if cand is not None and cand.status == "ok":
        from harness.bisect.effects import knob_effects as ke
        from harness.config import resolve

        knob_effects = ke(resolve(inputs.catalogue, inputs.user_config), cand.info,
                          [k.name for k in plan.togglable + plan.kept])
    trail = [step_dict(s) for s in state.get("trail") or []]
    summary = {
        "schema_version": SCHEMA_VERSION,
        "tool": "python -m harness bisect",
        "verdict": VERDICTS.get(outcome, "regressed"),
        "outcome": outcome,
        "headline": state.get("headline") or "",
        "label": (phases.get("2") or {}).get("label"),
        "culprits": state.get("culprits") or [],
        "suspects": (phases.get("search") or {}).get("suspects", []),
        "scores": {"reference": p1.get("score_ref"), "candidate": p1.get("score_cand"), "n": p1.get("n")},
        "inputs": inputs.to_dict(),
        "plan": plan.to_dict(),
        "phases": phases,
        "trail": trail,
        "evaluations": {"steps": len(trail),
                        "search": len([t for t in trail if t["phase"] == "search"])},
        "next_steps": state.get("next_steps") or [],
        "warnings": state.get("warnings") or [],
        "environment": environment(results, state.get("warnings") or []),
        "knob_effects": knob_effects,
        "files": files,
        "run": run,
    }
    return _json_safe(summary)


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")
    os.replace(tmp, path)


def stable_part(summary: dict) -> dict:
    """The summary without its ``run`` section (what must not change on a rerun)."""
    return {k: v for k, v in summary.items() if k != "run"}
