"""report.md: the verdict first, then phase by phase with numbers, the evaluation trail with each
step's config diff and verdict, and the next steps docs/method.md prescribes for the outcome."""
from __future__ import annotations

from pathlib import Path

OUTCOME_TITLE = {
    "culprit": "REGRESSED - culprit found and confirmed",
    "unconfirmed": "REGRESSED - suspect found, not confirmed",
    "core_path": "REGRESSED - core-path bug (the minimal config regresses too)",
    "unexplained": "REGRESSED - not isolated",
    "same": "SAME - no regression",
    "improved": "IMPROVED",
    "inconclusive": "INCONCLUSIVE",
    "unresolved": "UNRESOLVED - the candidate crashed or hung",
    "harness_suspect": "HARNESS SUSPECT - fix the evaluation before blaming AD",
}


def _f(x, nd=1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _trail_table(trail: list[dict], ref_score) -> list[str]:
    lines = ["| # | phase | step | verdict | outcome | score | n | config change |",
             "|---|---|---|---|---|---|---|---|"]
    for step in trail:
        diff = step.get("config_diff") or []
        base = step.get("diff_base")
        if base == "reference":
            change = f"{step.get('backend')} (reference backend)"
        elif diff:
            shown = "; ".join(diff[:6]) + (f"; ... ({len(diff)} changes)" if len(diff) > 6 else "")
            change = f"vs {base}: {shown}"
        else:
            change = f"= {base}" if base else ""
        escalated = f" (escalated to {step['escalated_to']})" if step.get("escalated_to") else ""
        lines.append(f"| {step['index']} | {step['phase']} | {_cell(step['purpose'])} | "
                     f"{step.get('verdict') or '-'}{escalated} | {step.get('outcome') or '-'} | "
                     f"{_f(step.get('score'))} | {step.get('n') or '-'} | `{_cell(change)}` |")
    return lines


# ---------------------------------------------------------------------------------------------
# one function per report section, each returning its lines (empty when the section is absent)


def culprit_text(culprit: dict) -> str:
    """One culprit group in words: the knobs, what they switch on with them, and how they fail
    (a single knob, or a group that regresses only together). A knob that requires another (e.g.
    fuse_allreduce_* and world_size) is named with its requirement, never beside it as a co-culprit."""
    names = " + ".join(culprit.get("knobs") or culprit["describe"])
    extra = []
    if culprit.get("with"):
        extra.append(f"switched on with {', '.join(culprit['with'])}, which it requires and which alone does not "
                     "regress")
    if culprit.get("switches"):
        extra.append(f"switches {', '.join(culprit['switches'])} with it")
    if culprit["kind"] == "interaction":
        extra.append("regress only together")
    return names + (f" ({'; '.join(extra)})" if extra else "")


def _culprit_line(culprit: dict) -> str:
    confirmation = {True: "confirmed both ways", False: "NOT confirmed",
                    None: "not confirmed"}[culprit.get("confirmed")]
    return f"- culprit: **{culprit_text(culprit)}** - {confirmation}; " + "; ".join(culprit["describe"])


def _verdict_section(s: dict) -> list[str]:
    """Title, outcome and headline, the scores, the culprits and untestable suspects."""
    inputs = s["inputs"]
    lines = [f"# AD accuracy bisect: {Path(str(inputs['model'])).name} on {inputs['task']}", "",
             f"**{OUTCOME_TITLE.get(s['outcome'], s['outcome'])}**: {s['headline']}", ""]
    scores = s["scores"]
    if scores.get("reference") is not None:
        lines.append(f"Reference `{inputs['backend_ref']}` {_f(scores['reference'])} vs candidate "
                     f"`{inputs['backend']}` {_f(scores.get('candidate'))} on {scores.get('n')} paired samples"
                     + (f"; Phase-2 pattern: **{s['label']}**" if s.get("label") else "") + ".")
        lines.append("")
    lines += [_culprit_line(culprit) for culprit in s.get("culprits") or []]
    if s.get("suspects"):
        lines.append(f"- untestable suspects (their steps crashed or stayed inconclusive): {', '.join(s['suspects'])}")
    if s.get("culprits") or s.get("suspects"):
        lines.append("")
    return lines


def _next_steps_section(s: dict) -> list[str]:
    """The next steps, the repro command and the warnings."""
    lines = ["## Next steps", ""]
    lines += [f"{number}. {step}" for number, step in enumerate(s.get("next_steps") or [], 1)]
    lines.append("")
    files = s["files"]
    if files.get("repro_command"):
        lines += [f"Reproduce: `sh {files['repro_command']}` (minimal failing config "
                  f"`{files.get('minimal_failing_yaml', '-')}`, confirming config "
                  f"`{files.get('confirming_yaml', '-')}`).", ""]
    if s.get("warnings"):
        lines += ["## Warnings", ""] + [f"- {warning}" for warning in s["warnings"]] + [""]
    return lines


def _phase0_section(s: dict) -> list[str]:
    phase0 = s["phases"].get("0") or {}
    lines = ["## Phase 0 - harness validation", "", "| check | result | detail |", "|---|---|---|"]
    for check in phase0.get("checks", []):
        result = "FAIL" if not check["ok"] else ("warn" if check.get("warn") else "ok")
        lines.append(f"| {check['name']} | {result} | {_cell(check['detail'])} |")
    aa = phase0.get("aa")
    if aa:
        lines.append("")
        lines.append("A/A repeats of the reference (batch size varied): "
                     + ", ".join(f"#{rep['repeat']} bs {rep['batch_size']}: {rep.get('verdict', rep.get('status'))}"
                                 for rep in aa["repeats"]))
        if aa.get("floor"):
            floor = aa["floor"]
            lines.append(f"Noise floor: accuracy +-{_f(floor.get('acc_floor_points'), 2)} points, A/A KL p95 "
                         f"{_f(floor.get('kl_p95'), 4)}; verdicts below use it.")
    lines.append("")
    return lines


def _phase2_lines(phase2: dict) -> list[str]:
    if phase2.get("label"):
        detail = phase2.get("detail") or {}
        lines = ["", f"Phase-2 pattern: **{phase2['label']}** - {detail.get('title', '')}", ""]
        if detail.get("root_cause"):
            lines.append(f"- likely root cause: {detail['root_cause']}")
        lines.append(f"- next step (method phase {detail.get('phase', '-')}): {phase2.get('next_step')}")
        return lines
    if phase2.get("note"):
        return ["", f"Phase-2 pattern: - ({phase2['note']})"]
    return []


def _phases_1_2_section(s: dict) -> list[str]:
    phase1 = s["phases"].get("1")
    if not phase1:
        return []
    lines = ["## Phases 1-2 - candidate vs reference", ""]
    lines.append(f"Verdict **{phase1['verdict']}** (trail step {phase1['step']})"
                 + (f", escalated to {phase1['escalated_to']} samples" if phase1.get("escalated_to") else "") + ".")
    if phase1.get("summary"):
        lines += ["", "```"] + phase1["summary"] + ["```"]
    lines += _phase2_lines(s["phases"].get("2") or {})
    lines.append("")
    return lines


def _phase3_section(s: dict) -> list[str]:
    phase3 = s["phases"].get("3")
    if not phase3:
        return []
    lines = ["## Phase 3 - strip to minimal", "",
             f"Stripped {len(phase3['stripped'])} knobs ({', '.join(phase3['stripped']) or 'none'}): minimal config "
             f"**{phase3['verdict']}** (score {_f(phase3.get('score'))}, step {phase3['step']}).",
             "The minimal config still regresses: the bug is in a core path (weights, attention, KV cache)."
             if phase3["core_path_bug"] else "The minimal config recovers: a stripped knob is responsible; searching."]
    pruned = (s["phases"].get("prune") or {}).get("no_effect") or []
    if pruned:
        lines += ["", f"No effect on this model, not searched ({len(pruned)}; the full candidate run reported them "
                  "skipped / 0 matches, so they stay off in every probe):", ""]
        lines += [f"- {d['name']} ({d['category']}): `{_cell(_evidence(d.get('evidence')))}`" for d in pruned]
    lines.append("")
    return lines


def _evidence(text, width: int = 120) -> str:
    text = str(text or "")
    return (text[text.index("[stage="):] if "[stage=" in text else text)[:width]


def _ladder_section(s: dict) -> list[str]:
    ladder = s["phases"].get("ladder")
    if not ladder:
        return []
    lines = ["## Core-path ladder", "",
             "The minimal config still regresses; each installed alternative is tried alone on it, in order, until "
             "one recovers:", "", "| # | switched | verdict | score | step |", "|---|---|---|---|---|"]
    for i, r in enumerate(ladder["rungs"], 1):
        lines.append(f"| {i} | {r['axis']}: {r.get('from')} -> {r['value']} | {r['verdict']} | {_f(r.get('score'))} | "
                     f"{r['step']} |")
    if ladder["tried"] < ladder["offered"]:
        lines += ["", f"{ladder['offered'] - ladder['tried']} further rung(s) not needed."]
    lines += ["", f"**{ladder['finding']}**", ""]
    return lines


def _did_it_apply_section(s: dict) -> list[str]:
    acc = s.get("config_accounting") or {}
    rows = acc.get("rows") or []
    if not rows:
        return []
    from harness.backends.accounting import render_rows

    counts = " | ".join(f"{k}: {v}" for k, v in (acc.get("counts") or {}).items())
    return (["## Did it apply? (every key of --config, full candidate run)", "",
             f"Total keys: {len(rows)} | {counts}", ""] + render_rows(rows) + [""])


def _search_section(s: dict) -> list[str]:
    search = s["phases"].get("search")
    if not search:
        return []
    explained = search.get("explained")
    groups = ", ".join("[" + ", ".join(group) + "]" for group in search["culprits"]) or "none"
    return [f"## Search ({search['strategy']})", "",
            f"{len(search['knobs'])} knobs, {search['evaluations']} distinct configurations judged; culprit groups: "
            + groups
            + (f"; untestable: {', '.join(search['suspects'])}" if search["suspects"] else "")
            + (f"; the full config minus them {'recovers' if explained else 'does not recover'}"
               if explained is not None else "")
            + ("; the search hit its evaluation budget" if search.get("budget_exhausted") else "") + ".",
            ""]


def _interval(record: dict) -> str:
    interval = record.get("interval_points")
    if not interval or record.get("estimate_points") is None:
        return ""
    return f", {record.get('route') or 'primary route'} {record['estimate_points']:+.2f} points [{interval[0]:+.2f}, " \
        f"{interval[1]:+.2f}]"


def _phase6_section(s: dict) -> list[str]:
    phase6 = s["phases"].get("6")
    if not (phase6 and phase6.get("ran")):
        return []
    down, up = phase6["full_minus_culprits"], phase6["minimal_plus_culprits"]
    prompts = phase6.get("prompts") or {}
    where = (f"on {prompts.get('n')} fresh prompts, disjoint from the {prompts.get('search_prompts')} the search used"
             if prompts.get("fresh") else prompts.get("note") or "on the search's prompts")
    lines = ["## Phase 6 - confirmation", "", f"Re-judged {where}.", "",
             f"- full config minus the culprits: **{down['verdict']}** (score {_f(down.get('score'))}, "
             f"n {down.get('n')}, step {down['step']}{_interval(down)}) - expected: no regression",
             f"- minimal config plus the culprits: **{up['verdict']}** (score {_f(up.get('score'))}, n {up.get('n')}, "
             f"step {up['step']}{_interval(up)}) - expected regressed"]
    for group in phase6.get("per_group") or []:
        lines.append(f"- minimal + {', '.join(group['knobs'])}: **{group['verdict']}** (step {group['step']})")
    for alone in phase6.get("members_alone") or []:
        lines.append(f"- minimal + {alone['knob']} alone (member of {', '.join(alone['group'])}): "
                     f"**{alone['verdict']}** (step {alone['step']}) - expected same: the pair regresses only together")
    lines += ["", f"Confirmed: **{'yes' if phase6['confirmed'] else 'no'}**.", ""]
    return lines


def _err(metric: dict | None, key: str = "rel_err", nd: int = 3) -> str:
    """A metric value for a table cell: "-" when absent, "non-finite" when not a number."""
    if not metric:
        return "-"
    value = metric.get(key)
    if isinstance(value, str) or (metric.get("nonfinite") and key == "rel_err"):
        return "non-finite"
    return "-" if value is None else f"{value:.{nd}g}"


def _localization_rows(rows: list[dict], limit: int = 40) -> list[str]:
    """The per-module table (every module of a small model; else decoder layers, rows that leave the band, ends)."""
    shown = rows if len(rows) <= limit else [r for r in rows if r.get("role") in ("decoder layer", "embedding",
                                             "final norm", "lm head") or r.get("exceeds_isolated")]
    lines = ["| module | propagated | isolated | band (isolated) | cosine (isolated) | max abs (isolated) | leaves band |",
             "|---|---|---|---|---|---|---|"]
    for r in shown:
        mark = "**isolated**" if r.get("exceeds_isolated") else ("propagated" if r.get("exceeds_propagated") else "")
        note = f" ({_cell('; '.join(r['notes']))})" if r.get("notes") and not r.get("isolated") else ""
        lines.append(f"| `{r['module']}`{note} | {_err(r.get('propagated'))} | {_err(r.get('isolated'))} | "
                     f"{_err({'v': r.get('band_isolated')}, 'v')} | "
                     f"{_err(r.get('isolated'), 'cosine', 6)} | {_err(r.get('isolated'), 'max_abs')} | {mark} |")
    if len(shown) < len(rows):
        lines += ["", f"{len(rows) - len(shown)} module rows inside the band not shown (all in summary.json)."]
    return lines


def _ops(counts: dict | None) -> str:
    return ", ".join(f"`{op}` x{n}" for op, n in (counts or {}).items()) or "nothing"


def _localization_extras(loc: dict) -> list[str]:
    """The weight check and the graph view, when they have something to show."""
    lines, weights, graph = [], loc.get("weights") or {}, loc.get("graph") or {}
    if weights.get("ran"):
        lines += ["", f"Weight check (method Phase 4a step 2) against {weights.get('against')}: "
                  f"{weights.get('quantized_layers')} quantized linear layers, median relative error "
                  f"{_err(weights, 'median_rel_err')}; flagged: {len(weights.get('flagged') or [])}."]
        lines += [f"- `{r['module']}` ({r.get('kind')}): relative error {_err(r)}, {r.get('suspect')}"
                  for r in (weights.get("layers") or []) if r.get("flagged")][:10]
    if graph.get("available"):
        lines += ["", f"Graph dumps ({graph.get('dumps')} in `{graph.get('dump_dir')}`):"]
        for d in graph.get("diffs") or []:
            groups: dict = {}  # the rewritten nodes grouped by (new op, the ops it replaced)
            for w in d.get("rewritten") or []:
                groups.setdefault((w["op"], ", ".join(w["source_ops"]) or "new inputs"), []).append(f"`%{w['node']}`")
            rewritten = "; ".join(f"{', '.join(nodes)} = {op} from {src}" for (op, src), nodes in groups.items())
            lines.append(f"- {d['transform']} ({d['before']} -> {d['after']}): removed {_ops(d.get('removed'))}, "
                         f"added {_ops(d.get('added'))}"
                         + (f"; rewritten: {rewritten}" if rewritten else ""))
        if graph.get("note"):
            lines.append(f"- {graph['note']}")
    elif graph.get("note"):
        lines += ["", f"Graph view: {graph['note']}."]
    return lines


def _localization_section(s: dict) -> list[str]:
    """Phase 4, automated: where the candidate first leaves the noise band (harness/bisect/localize_step.py)."""
    loc = s.get("localization") or {}
    if not loc.get("ran") and not (loc.get("graph") or {}).get("available"):
        return ["## Phase 4 - first divergence inside the culprit", "",
                _cell(loc.get("error") or loc.get("note") or "not run"), ""] if loc.get("target") or loc.get("error") \
            else []
    lines = ["## Phase 4 - first divergence inside the culprit", ""]
    if loc.get("ran"):
        prompts = loc.get("prompts") or []
        lines += [f"Candidate **{loc.get('candidate')}** against the {loc.get('reference')}, module by module on "
                  f"{len(prompts)} prompt(s) (the most divergent of the decisive comparison: "
                  f"{', '.join(str(p['id']) for p in prompts)}); noise band measured on "
                  f"{loc.get('control') or 'nothing (default band)'}, x{(loc.get('band') or {}).get('margin')}.", "",
                  f"**{loc.get('finding')}**", ""]
        if loc.get("plot"):
            lines += [f"![per-module divergence: propagated vs isolated, noise band shaded]({loc['plot']})", ""]
        lines += _localization_rows(loc.get("modules") or [])
    else:
        lines.append(_cell(loc.get("error") or loc.get("note") or "layer-wise comparison not run"))
    lines += _localization_extras(loc) + [""]
    return lines


def _statistics_section(s: dict) -> list[str]:
    """The engine pair's calibration and how the run's decisions ended (harness/bisect/calibration.py)."""
    calibration, decisions = s["phases"].get("calibration") or {}, s["phases"].get("decisions") or {}
    if not decisions:
        return []
    lines = ["## Statistics of this run", ""]
    if calibration.get("source"):
        lines.append(f"Engine-pair noise, measured on {calibration['source']} (n {calibration.get('n')}): letter KL "
                     f"p95 {_f(calibration.get('kl_p95'), 4)} nats (max {_f(calibration.get('kl_max'), 3)}), "
                     f"{_f(100 * (calibration.get('share_beyond_default_tolerance') or 0))}% of samples beyond 0.01 nats, "
                     f"top-1 agreement {_f(100 * (calibration.get('top1_agreement') or 0))}%, expected-accuracy change "
                     f"{_f(calibration.get('expected_accuracy_change_points'), 2)} points (per-sample sd "
                     f"{_f(calibration.get('expected_accuracy_sd_points'), 2)}), accuracy discordance "
                     f"{_f(100 * (calibration.get('accuracy_discordance') or 0))}%. The KL diagnostic's tolerance is "
                     f"its 95th percentile: {_f(calibration.get('kl_tolerance'), 4)} nats.")
    else:
        lines.append("Engine-pair noise: not measured (no comparison was judged the same as the reference); the KL "
                     "diagnostic kept its 0.01-nat default.")
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted((decisions.get("verdicts") or {}).items()))
    lines += ["", f"Decisions: {decisions.get('judged')} judged ({verdicts}); {decisions.get('escalated')} re-run with "
              f"more samples, {decisions.get('untestable')} untestable. The search's {decisions.get('search_decisions')} "
              f"decisions called regressions at alpha {decisions.get('search_alpha', 0):.3g} each: family-wise error "
              f"of any false regression call <= {decisions.get('search_family_wise_error_bound', 0):.3g}.", ""]
    return lines


def _phase4a_section(s: dict) -> list[str]:
    phase4a = s["phases"].get("4a")
    if not phase4a:
        return []
    quant = phase4a.get("quant") or {}
    fake_quant = phase4a.get("fake_quant") or {}
    unquantized = phase4a.get("unquantized") or {}
    disabled = ", ".join(phase4a.get("fake_quant_disabled") or []) or "nothing to disable"
    return ["## Phase 4a - quantization", "",
            f"Quantized: {quant.get('algo')} ({quant.get('source')}); MoE: {phase4a.get('moe')}.",
            f"- fake-quant mode ({disabled}; `{phase4a.get('fake_quant_yaml')}`): "
            f"{fake_quant.get('verdict') or '-'} - {fake_quant.get('finding')}",
            f"- unquantized baseline: {unquantized.get('verdict') or '-'} - {unquantized.get('finding')}",
            ""]


def _phase4c_section(s: dict) -> list[str]:
    phase4c = s["phases"].get("4c")
    if not phase4c:
        return []
    nccl = phase4c.get("nccl") or {}
    return ["## Phase 4c - world size", "",
            "Ladder: " + ", ".join(f"world_size {world_size}: {verdict}"
                                   for world_size, verdict in phase4c["ladder"].items())
            + f" -> **{phase4c['kind']}**: {phase4c['finding']}",
            f"allreduce_strategy NCCL: {nccl.get('verdict') or '-'} - {nccl.get('finding')}",
            ""]


def _phase5_section(s: dict) -> list[str]:
    phase5 = s["phases"].get("5")
    if not (phase5 and phase5.get("ran")):
        return []
    lines = ["## Phase 5 - per-subject breakdown (" + phase5["comparison"] + ")", "",
             "| subject | n | reference | candidate | delta | ref right, cand wrong | ref wrong, cand right |",
             "|---|---|---|---|---|---|---|"]
    for row in phase5["per_subject"]:
        lines.append(f"| {row['subject']} | {row['n']} | {_f(row['ref_acc'])} | {_f(row['cand_acc'])} | "
                     f"{row['diff']:+.1f} | {row['ref_right_cand_wrong']} | {row['ref_wrong_cand_right']} |")
    breakdown = phase5.get("breakdown") or {}
    for name, flag in (breakdown.get("flags") or {}).items():
        if isinstance(flag, dict) and flag.get("flag"):
            lines.append(f"\n- flagged **{name}**: {flag.get('implication')}")
    if phase5.get("files"):
        lines.append("\nBreakdown files: " + ", ".join(f"`{path}`" for path in phase5["files"]))
    if phase5.get("note"):
        lines.append(f"\n{phase5['note']}")
    lines.append("")
    return lines


def _unresolved_section(s: dict) -> list[str]:
    failed = [step for step in s["trail"] if step.get("status") == "unresolved"]
    if not failed:
        return []
    lines = ["## Unresolved evaluations (crash, hang, out of memory)", "",
             "Each was run twice (the retry is not cached); a step that stays unresolved is untestable, never a "
             "pass. Classify a log with `python -m harness triage`.", ""]
    for step in failed:
        lines.append(f"- step {step['index']} ({step['phase']}: {step['purpose']}): "
                     f"{step.get('error') or 'unresolved'}")
        tail = (step.get("log_tail") or "").strip().splitlines()[-12:]
        if tail:
            lines += ["", "```"] + tail + ["```", ""]
    lines.append("")
    return lines


def _trail_section(s: dict) -> list[str]:
    return (["## Evaluation trail", "",
             "Every configuration evaluated, in order, with its paired verdict against the reference run and its "
             "config diff (against the minimal or the full config, as marked).", ""]
            + _trail_table(s["trail"], s["scores"].get("reference")) + [""])


def _plan_section(s: dict) -> list[str]:
    return ["## Plan", "", "```", s["plan"].get("rendered", ""), "```", ""]


def _knob_effects_lines(knob_effects: dict) -> list[str]:
    if not knob_effects:
        return []
    lines = ["", "Knobs in the full candidate run (requested -> what the engine reported):"]
    for name, effect in knob_effects.items():
        status = effect.get("status") or {True: "applied", False: "not applied", None: "?"}[effect.get("ran")]
        lines.append(f"- {name}: requested {'on' if effect['requested'] else 'off'}, {status}"
                     + (f" ({effect['num_matches']} matches)" if effect.get("num_matches") is not None else ""))
    return lines


def _environment_section(s: dict) -> list[str]:
    env = s["environment"]
    lines = ["## Environment", "",
             f"harness {env['harness']}, Python {env['python']}, {env['platform']}, {env['cpu_count']} CPUs"]
    for role, backend in env["backends"].items():
        lines.append(f"- {role}: " + ", ".join(f"{key} {value}" for key, value in backend.items()
                                               if not isinstance(value, (dict, list))))
        if backend.get("env_scrubbed"):
            lines.append(f"  - environment variables removed from the worker: {backend['env_scrubbed']}")
    lines += _knob_effects_lines(s.get("knob_effects") or {})
    protocols = (s["phases"].get("0") or {}).get("protocols")
    if protocols:
        lines += ["", f"Sampling protocols (--reference-protocol {protocols.get('flag')}): paired runs "
                  f"{protocols['paired']['name']} ({protocols['paired']['source']}); reference-score check "
                  f"{protocols['reference_score']['name']} ({protocols['reference_score']['source']})."]
    lines.append("")
    return lines


def _files_section(s: dict) -> list[str]:
    lines = ["## Files", ""] + [f"- `{path}` ({role})" for role, path in s["files"].items()]
    dumps = (s.get("run") or {}).get("dump_graphs_dir")
    if dumps:  # the runner gives every evaluation AD_DUMP_GRAPHS_DIR=<dir>/<first 16 of its cache key>
        lines += [f"- `{dumps}` (graph dumps, one directory per evaluation):"]
        lines += [f"  - step {t['index']}: `{dumps.rstrip('/')}/{t['cache_key'][:16]}`" for t in s["trail"]
                  if t.get("cache_key") and t.get("diff_base") != "reference"]
    return lines + [""]


SECTIONS = (_verdict_section, _next_steps_section, _phase0_section, _phases_1_2_section, _did_it_apply_section,
            _phase3_section, _ladder_section, _search_section, _phase6_section, _localization_section,
            _phase4a_section, _phase4c_section,
            _phase5_section, _statistics_section,
            _unresolved_section, _trail_section, _plan_section, _environment_section, _files_section)


def render_markdown(s: dict) -> str:
    """The report, section by section in SECTIONS order (absent phases contribute nothing)."""
    lines: list[str] = []
    for section in SECTIONS:
        lines += section(s)
    return "\n".join(lines)
