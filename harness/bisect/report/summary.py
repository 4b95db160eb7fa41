"""summary.json: the machine-readable result of a bisect run (schema in harness/bisect/report/SCHEMA.md).

``build_summary`` assembles it from the orchestrator's ``BisectState``; everything outside the ``run``
section is a pure function of the inputs and the stored evaluations, so a rerun of the same
command (all evaluations from the store) writes the same summary apart from ``run``.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from harness.bisect.state import BisectState

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
                                         "default_yaml", "compile_backend", "world_size", "attn_backend", "plugins",
                                         "truncate_prompt_tokens", "truncated_prompts")
                if info.get(k) is not None}
        versions = info.get("versions")
        if isinstance(versions, dict):
            keep["versions"] = versions
        if info.get("env_scrubbed"):
            keep["env_scrubbed"] = info["env_scrubbed"]
        env["backends"][role] = keep
    env["knob_warnings"] = list(warnings)
    return env


def build_summary(inputs, plan, state: BisectState, files: dict, run: dict) -> dict:
    """The summary.json dict (see SCHEMA.md) of a ``BisectState``."""
    outcome = state.outcome or "unexplained"
    phases = state.phases or {}
    p1 = phases.get("1") or {}
    trail = [step_dict(s) for s in state.trail or []]
    summary = {
        "schema_version": SCHEMA_VERSION,
        "tool": "python -m harness bisect",
        "verdict": VERDICTS.get(outcome, "regressed"),
        "outcome": outcome,
        "headline": state.headline or "",
        "label": (phases.get("2") or {}).get("label"),
        "culprits": state.culprits or [],
        "suspects": (phases.get("search") or {}).get("suspects", []),
        "scores": {"reference": p1.get("score_ref"), "candidate": p1.get("score_cand"), "n": p1.get("n")},
        "inputs": inputs.to_dict(),
        "plan": plan.to_dict(),
        "phases": phases,
        "trail": trail,
        "evaluations": {"steps": len(trail),
                        "search": len([t for t in trail if t["phase"] == "search"])},
        "next_steps": state.next_steps or [],
        "warnings": (state.warnings or []) + _truncation_warnings(state.results),
        "environment": environment(state.results, state.warnings or []),
        "knob_effects": _knob_effects(inputs, plan, state.results.get("candidate")),
        "config_accounting": _config_accounting(inputs, state.results.get("candidate")),
        "localization": state.localization or {"ran": False, "note": f"not run: outcome {outcome} (localization "
                                               "follows a confirmed culprit, or a minimal config that still regresses)"},
        "files": files,
        "run": run,
    }
    return _json_safe(summary)


def _truncation_warnings(results: dict) -> list[str]:
    """Prompts the decisive runs truncated to truncate_prompt_tokens (harness/evaluation/run.py), one line each."""
    from harness.evaluation.run import truncation_note

    notes = [truncation_note(res.info or {}, len(res.records), f"the {role} run")
             for role, res in results.items() if res is not None and res.status == "ok"]
    return [n for n in notes if n]


def _knob_effects(inputs, plan, cand) -> dict:
    """Did each knob of the full config take effect in the decisive candidate run?"""
    if cand is None or cand.status != "ok":
        return {}
    from harness.bisect.effects import knob_effects
    from harness.config import resolve

    return knob_effects(resolve(inputs.catalogue, inputs.user_config), cand.info,
                        [k.name for k in plan.togglable + plan.kept])


def _config_accounting(inputs, cand) -> dict:
    """Every key of --config, APPLIED / DISABLED / SKIPPED / FAILED / UNKNOWN in the full candidate run, with the
    evidence (harness/backends/accounting.py)."""
    if cand is None or cand.status != "ok":
        return {"rows": [], "counts": {}, "note": "no full-candidate run to account against"}
    from harness.backends.accounting import account_config, counts

    rows = account_config(inputs.user_config, cand.info or {})
    return {"rows": rows, "counts": counts(rows), "summary": (cand.info or {}).get("transforms_summary")}


def write_json(path: Path, obj) -> None:
    """summary.json, atomically; a failed write (a full disk) leaves no temp file (harness/jsonio.py)."""
    from harness.jsonio import atomic_write

    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")


def stable_part(summary: dict) -> dict:
    """The summary without its ``run`` section (what must not change on a rerun)."""
    return {k: v for k, v in summary.items() if k != "run"}
