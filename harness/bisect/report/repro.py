"""repro/: the minimal failing YAML, the confirming YAML, and the one command that reproduces
the regression (the reference backend and the candidate on the minimal failing config, on the
same samples, then the paired verdict)."""
from __future__ import annotations

import shlex
from pathlib import Path

from harness.backends import capabilities
from harness.config import dump_yaml
from harness.jsonio import write_text_atomic


def _comment_safe(text: str) -> str:
    """One line whatever the text holds: a newline (or any control character) in a file name must not end
    the YAML comment and become a line of the config."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


def _header(lines: list[str]) -> str:
    return "".join(f"# {_comment_safe(x)}\n" for x in lines)


def repro_configs(outcome: str, plan, user: dict, culprit_groups: list[list[str]], recovered: dict | None = None) -> dict:
    """{"minimal_failing": (config, why) | None, "confirming": (config, why) | None}; ``recovered``: the
    core-path ladder's rung that recovered (harness/bisect/core_path.py), whose config confirms."""
    names = [n for g in culprit_groups for n in g]
    out = {"minimal_failing": None, "confirming": None}
    if outcome in ("culprit", "unconfirmed") and names:
        out["minimal_failing"] = (plan.config(user, plan.closure(names)),
                                  f"the minimal config plus the culprit(s) {', '.join(names)}: regresses")
        out["confirming"] = (plan.config(user, plan.without(names)),
                             f"the full config minus the culprit(s) {', '.join(names)}: recovers (also the "
                             "workaround until the fix)")
    elif outcome == "core_path":
        out["minimal_failing"] = (plan.config(user, ()), "the minimal config (every strippable knob off): still "
                                  "regresses, so the bug is in a core path")
        rung = next((r for r in plan.ladder if recovered and (r["axis"], r["value"]) ==
                     (recovered["axis"], recovered["value"])), None)
        if rung is not None:
            from harness.config.ops import deep_merge

            out["confirming"] = (deep_merge(plan.config(user, ()), rung["config"]),
                                 f"the minimal config with {rung['axis']} {rung.get('from')} -> {rung['value']}: "
                                 "recovers (the core-path ladder's finding)")
    else:
        out["minimal_failing"] = (user, f"the full candidate config (outcome {outcome}: nothing smaller to offer)")
    return out


def command_lines(inputs, config_rel: str) -> str:
    """A POSIX sh script: diagnose the reference and the candidate, then compare them."""
    q = shlex.quote
    common = ["--model", inputs.model, "--task", inputs.task, "--dataset", str(inputs.dataset), "--seed",
              str(inputs.seed)]
    if inputs.samples is not None:
        common += ["--samples", str(inputs.samples)]
    po = inputs.prompt_options or {}
    if po.get("num_fewshot") is not None:
        common += ["--num-fewshot", str(po["num_fewshot"])]
    if po.get("apply_chat_template"):
        common += ["--apply-chat-template"]
    if po.get("fewshot_as_multiturn"):
        common += ["--fewshot-as-multiturn"]
    if po.get("system_prompt"):
        common += ["--system-prompt", po["system_prompt"]]
    plug = [x for p in inputs.plugins for x in ("--plugin", p)]
    ref = ["python", "-m", "harness", "diagnose", "--backend", inputs.backend_ref] + common
    cand = ["python", "-m", "harness", "diagnose", "--backend", inputs.backend] + common + plug
    env_var = capabilities(inputs.backend).default_yaml_env
    env = f"{env_var}={q(inputs.default_yaml)} " if env_var else ""
    return "\n".join([
        "#!/bin/sh",
        "# Reproduces the bisect's finding: the reference backend and the candidate on the minimal failing",
        "# config, on the same samples, then the paired verdict (expect: regressed).",
        "# Written by `python -m harness bisect`; run from anywhere: sh repro/command.sh",
        "set -e",
        'HERE=$(cd "$(dirname "$0")" && pwd)',
        'OUT=${OUT:-"$HERE/runs"}',
        " ".join(map(q, ref)) + ' --out "$OUT" --label repro-reference --quiet',
        env + " ".join(map(q, cand)) + f' --config "$HERE/{config_rel}" --out "$OUT" --label repro-candidate --quiet',
        'REF=$(ls -d "$OUT"/*-repro-reference | tail -n 1)',
        'CAND=$(ls -d "$OUT"/*-repro-candidate | tail -n 1)',
        'python -m harness compare "$REF" "$CAND"',
        "",
    ])


def write_repro(run_dir: Path, outcome: str, plan, inputs, culprit_groups: list[list[str]], headline: str,
                recovered: dict | None = None) -> dict:
    d = Path(run_dir) / "repro"
    d.mkdir(parents=True, exist_ok=True)
    cfgs = repro_configs(outcome, plan, inputs.user_config, culprit_groups, recovered)
    files = {}
    src = inputs.config_path or "(no --config: the default.yaml in force)"
    for key, fname in (("minimal_failing", "minimal_failing.yaml"), ("confirming", "confirming.yaml")):
        path = d / fname
        if cfgs[key] is None:
            if path.exists():
                path.unlink()
            continue
        cfg, why = cfgs[key]
        text = _header([f"{fname}: {why}.", f"Bisect outcome: {outcome} - {headline}"[:300],
                        f"An overlay on {inputs.default_yaml} (AD yaml_extra / --extra_llm_api_options); "
                        f"derived from {src}."])
        text += dump_yaml(cfg) if cfg else "{}\n"
        write_text_atomic(path, text)
        files[f"{key}_yaml"] = f"repro/{fname}"
    cmd = d / "command.sh"
    write_text_atomic(cmd, command_lines(inputs, "minimal_failing.yaml"))
    cmd.chmod(0o755)
    files["repro_command"] = "repro/command.sh"
    return files
