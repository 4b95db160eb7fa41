"""report.md: the verdict first, then phase by phase with numbers, the evaluation trail with each
step's config diff and verdict, and the next steps the method prescribes for the outcome."""
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
    L = ["| # | phase | step | verdict | outcome | score | n | config change |", "|---|---|---|---|---|---|---|---|"]
    for t in trail:
        diff = t.get("config_diff") or []
        base = t.get("diff_base")
        if base == "reference":
            change = f"{t.get('backend')} (reference backend)"
        elif diff:
            shown = "; ".join(diff[:6]) + (f"; ... ({len(diff)} changes)" if len(diff) > 6 else "")
            change = f"vs {base}: {shown}"
        else:
            change = f"= {base}" if base else ""
        esc = f" (escalated to {t['escalated_to']})" if t.get("escalated_to") else ""
        L.append(f"| {t['index']} | {t['phase']} | {_cell(t['purpose'])} | {t.get('verdict') or '-'}{esc} | "
                 f"{t.get('outcome') or '-'} | {_f(t.get('score'))} | {t.get('n') or '-'} | `{_cell(change)}` |")
    return L


def render_markdown(s: dict) -> str:
    inp = s["inputs"]
    ph = s["phases"]
    L = [f"# AD accuracy bisect: {Path(str(inp['model'])).name} on {inp['task']}", ""]
    L.append(f"**{OUTCOME_TITLE.get(s['outcome'], s['outcome'])}**: {s['headline']}")
    L.append("")
    sc = s["scores"]
    if sc.get("reference") is not None:
        L.append(f"Reference `{inp['backend_ref']}` {_f(sc['reference'])} vs candidate `{inp['backend']}` "
                 f"{_f(sc.get('candidate'))} on {sc.get('n')} paired samples"
                 + (f"; Phase-2 pattern: **{s['label']}**" if s.get("label") else "") + ".")
        L.append("")
    for c in s.get("culprits") or []:
        conf = {True: "confirmed both ways", False: "NOT confirmed", None: "not confirmed"}[c.get("confirmed")]
        extra = ""
        if c.get("with"):
            extra += f" (with {', '.join(c['with'])})"
        if c.get("switches"):
            extra += f" (switches {', '.join(c['switches'])})"
        kind = "regress only together" if c["kind"] == "interaction" else "alone"
        L.append(f"- culprit ({kind}): **{', '.join(c['describe'])}**{extra} - {conf}")
    if s.get("suspects"):
        L.append(f"- untestable suspects (their steps crashed or stayed inconclusive): {', '.join(s['suspects'])}")
    if s.get("culprits") or s.get("suspects"):
        L.append("")
    L += ["## Next steps", ""]
    L += [f"{i}. {x}" for i, x in enumerate(s.get("next_steps") or [], 1)]
    L.append("")
    if s["files"].get("repro_command"):
        L += [f"Reproduce: `sh {s['files']['repro_command']}` (minimal failing config "
              f"`{s['files'].get('minimal_failing_yaml', '-')}`, confirming config "
              f"`{s['files'].get('confirming_yaml', '-')}`).", ""]
    if s.get("warnings"):
        L += ["## Warnings", ""] + [f"- {w}" for w in s["warnings"]] + [""]

    # Phase 0
    p0 = ph.get("0") or {}
    L += ["## Phase 0 - harness validation", ""]
    L += ["| check | result | detail |", "|---|---|---|"]
    for c in p0.get("checks", []):
        res = "FAIL" if not c["ok"] else ("warn" if c.get("warn") else "ok")
        L.append(f"| {c['name']} | {res} | {_cell(c['detail'])} |")
    aa = p0.get("aa")
    if aa:
        L.append("")
        L.append(f"A/A repeats of the reference (batch size varied): "
                 + ", ".join(f"#{r['repeat']} bs {r['batch_size']}: {r.get('verdict', r.get('status'))}"
                             for r in aa["repeats"]))
        if aa.get("floor"):
            fl = aa["floor"]
            L.append(f"Noise floor: accuracy +-{_f(fl.get('acc_floor_points'), 2)} points, A/A KL p95 "
                     f"{_f(fl.get('kl_p95'), 4)}; verdicts below use it.")
    L.append("")
    # Phases 1-2
    p1 = ph.get("1")
    if p1:
        L += ["## Phases 1-2 - candidate vs reference", ""]
        L.append(f"Verdict **{p1['verdict']}** (trail step {p1['step']})"
                 + (f", escalated to {p1['escalated_to']} samples" if p1.get("escalated_to") else "") + ".")
        if p1.get("summary"):
            L += ["", "```"] + p1["summary"] + ["```"]
        p2 = ph.get("2") or {}
        if p2.get("label"):
            d = p2.get("detail") or {}
            L += ["", f"Phase-2 pattern: **{p2['label']}** - {d.get('title', '')}"]
            if d.get("root_cause"):
                L.append(f"Likely root cause: {d['root_cause']}")
            L.append(f"Next step (method phase {d.get('phase', '-')}): {p2.get('next_step')}")
        elif p2.get("note"):
            L += ["", f"Phase-2 pattern: - ({p2['note']})"]
        L.append("")
    # Phase 3
    p3 = ph.get("3")
    if p3:
        L += ["## Phase 3 - strip to minimal", ""]
        L.append(f"Stripped {len(p3['stripped'])} knobs ({', '.join(p3['stripped']) or 'none'}): minimal config "
                 f"**{p3['verdict']}** (score {_f(p3.get('score'))}, step {p3['step']}).")
        L.append("The minimal config still regresses: the bug is in a core path (weights, attention, KV cache)."
                 if p3["core_path_bug"] else "The minimal config recovers: a stripped knob is responsible; searching.")
        L.append("")
    ps = ph.get("search")
    if ps:
        L += [f"## Search ({ps['strategy']})", ""]
        L.append(f"{len(ps['knobs'])} knobs, {ps['evaluations']} distinct configurations judged; culprit groups: "
                 + (", ".join("[" + ", ".join(g) + "]" for g in ps["culprits"]) or "none")
                 + (f"; untestable: {', '.join(ps['suspects'])}" if ps["suspects"] else "")
                 + (f"; the full config minus them {'recovers' if ps['explained'] else 'does not recover'}"
                    if ps.get("explained") is not None else "")
                 + ("; the search hit its evaluation budget" if ps.get("budget_exhausted") else "") + ".")
        L.append("")
    p6 = ph.get("6")
    if p6 and p6.get("ran"):
        L += ["## Phase 6 - confirmation both ways", ""]
        d, u = p6["full_minus_culprits"], p6["minimal_plus_culprits"]
        L.append(f"- full config minus the culprits: **{d['verdict']}** (score {_f(d.get('score'))}, step {d['step']})"
                 " - expected same")
        L.append(f"- minimal config plus the culprits: **{u['verdict']}** (score {_f(u.get('score'))}, step "
                 f"{u['step']}) - expected regressed")
        for g in p6.get("per_group") or []:
            L.append(f"- minimal + {', '.join(g['knobs'])}: **{g['verdict']}** (step {g['step']})")
        for a in p6.get("members_alone") or []:
            L.append(f"- minimal + {a['knob']} alone (member of {', '.join(a['group'])}): **{a['verdict']}** "
                     f"(step {a['step']}) - expected same: the pair regresses only together")
        L += ["", f"Confirmed: **{'yes' if p6['confirmed'] else 'no'}**.", ""]
    p4a = ph.get("4a")
    if p4a:
        L += ["## Phase 4a - quantization", ""]
        q = p4a.get("quant") or {}
        L.append(f"Quantized: {q.get('algo')} ({q.get('source')}); MoE: {p4a.get('moe')}.")
        fq = p4a.get("fake_quant") or {}
        L.append(f"- fake-quant mode ({', '.join(p4a.get('fake_quant_disabled') or []) or 'nothing to disable'}; "
                 f"`{p4a.get('fake_quant_yaml')}`): {fq.get('verdict') or '-'} - {fq.get('finding')}")
        uq = p4a.get("unquantized") or {}
        L.append(f"- unquantized baseline: {uq.get('verdict') or '-'} - {uq.get('finding')}")
        L.append("")
    p4c = ph.get("4c")
    if p4c:
        L += ["## Phase 4c - world size", ""]
        L.append("Ladder: " + ", ".join(f"world_size {w}: {v}" for w, v in p4c["ladder"].items())
                 + f" -> **{p4c['kind']}**: {p4c['finding']}")
        n = p4c.get("nccl") or {}
        L.append(f"allreduce_strategy NCCL: {n.get('verdict') or '-'} - {n.get('finding')}")
        L.append("")
    p5 = ph.get("5")
    if p5 and p5.get("ran"):
        L += ["## Phase 5 - per-subject breakdown (" + p5["comparison"] + ")", ""]
        L += ["| subject | n | reference | candidate | delta | ref right, cand wrong | ref wrong, cand right |",
              "|---|---|---|---|---|---|---|"]
        for r in p5["per_subject"]:
            L.append(f"| {r['subject']} | {r['n']} | {_f(r['ref_acc'])} | {_f(r['cand_acc'])} | {r['diff']:+.1f} | "
                     f"{r['ref_right_cand_wrong']} | {r['ref_wrong_cand_right']} |")
        bd = p5.get("breakdown") or {}
        for name, fl in (bd.get("flags") or {}).items():
            if isinstance(fl, dict) and fl.get("flag"):
                L.append(f"\n- flagged **{name}**: {fl.get('implication')}")
        if p5.get("files"):
            L.append("\nBreakdown files: " + ", ".join(f"`{f}`" for f in p5["files"]))
        if p5.get("note"):
            L.append(f"\n{p5['note']}")
        L.append("")
    failed = [t for t in s["trail"] if t.get("status") == "unresolved"]
    if failed:
        L += ["## Unresolved evaluations (crash, hang, out of memory)", "",
              "Each was run twice (the retry is not cached); a step that stays unresolved is untestable, never a "
              "pass. Classify a log with `python -m harness triage`.", ""]
        for t in failed:
            L.append(f"- step {t['index']} ({t['phase']}: {t['purpose']}): {t.get('error') or 'unresolved'}")
            tail = (t.get("log_tail") or "").strip().splitlines()[-12:]
            if tail:
                L += ["", "```"] + tail + ["```", ""]
        L.append("")
    L += ["## Evaluation trail", "",
          "Every configuration evaluated, in order, with its paired verdict against the reference run and its "
          "config diff (against the minimal or the full config, as marked).", ""]
    L += _trail_table(s["trail"], s["scores"].get("reference"))
    L.append("")
    L += ["## Plan", "", "```", s["plan"].get("rendered", ""), "```", ""]
    env = s["environment"]
    L += ["## Environment", ""]
    L.append(f"harness {env['harness']}, Python {env['python']}, {env['platform']}, {env['cpu_count']} CPUs")
    for role, b in env["backends"].items():
        L.append(f"- {role}: " + ", ".join(f"{k} {v}" for k, v in b.items() if not isinstance(v, (dict, list))))
        if b.get("env_scrubbed"):
            L.append(f"  - environment variables removed from the worker: {b['env_scrubbed']}")
    ke = s.get("knob_effects") or {}
    if ke:
        L.append("")
        L.append("Knobs in the full candidate run (requested -> what the engine reported):")
        for n, e in ke.items():
            ran = {True: "ran", False: "did not run", None: "?"}[e.get("ran")]
            L.append(f"- {n}: requested {'on' if e['requested'] else 'off'}, {ran}"
                     + (f" ({e['num_matches']} matches)" if e.get("num_matches") is not None else ""))
    L.append("")
    L += ["## Files", ""] + [f"- `{v}` ({k})" for k, v in s["files"].items()] + [""]
    return "\n".join(L)
