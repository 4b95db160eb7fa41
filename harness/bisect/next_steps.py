"""What to do next: the steps docs/method.md prescribes after the bisect's outcome - per culprit
category (as in its "Knob categories") the procedures of Phase 3 (compile) and Phases 4a, 4b and
4c; per outcome those of Phases 0, 3 and 6 - plus the Phase-2 pattern's advice and Phase 4a/4c's
findings. The texts go into summary.json and the report as they are.
"""
from __future__ import annotations

from harness.bisect.state import BisectState

CATEGORY_STEPS = {
    "fusion": ["Dump the graph around the transform (AD_DUMP_GRAPHS_DIR=<dir>; compare the dumps before and after "
               "it) and check the fused kernel against the unfused ops (method Phase 4, ad-graph-dump).",
               "Check the kernel wrapper for hard-coded config values or stride assumptions (method Phase 4b)."],
    "quant_fusion": ["Run fake-quant mode (fake_quant_debug.yaml): recovery means the low-precision kernel is the "
                     "bug, no recovery means scales or weights (method Phase 4a step 3).",
                     "Grep the quantization transform for .to( on packed FP4/FP8 tensors that should be .view( "
                     "(method Phase 4a step 2)."],
    "multi_stream": ["Multi-streaming reorders work across CUDA streams: look for a missing event/synchronisation "
                     "between the streams of the transform."],
    "compile": ["CUDA graph capture or replay is the suspect (method Phase 3): compare torch-simple with the "
                "compiled backend, then try piecewise_enabled: false and fewer cuda_graph batch sizes."],
    "sharding": ["Phase 4c: check in order the allreduce strategy (allreduce_strategy: NCCL), a doubled all_reduce "
                 "in MoE, head reshapes with concrete head counts after TP (tp_scaled_dim), projections that must not "
                 "be sharded (tp_mode none), and weights lost by nested parameter deletion."],
}


def next_steps(outcome: str, culprits: list[dict] | None = None, label_step: str | None = None,
               extra: list[str] | None = None) -> list[str]:
    """What docs/method.md prescribes after this bisect's final outcome."""
    steps: list[str] = []
    if outcome == "harness_suspect":
        steps += ["Fix the harness before blaming AD (method Phase 0): compare the first prompt with what the "
                  "evaluator sends (python -m harness prompts), check the chat template / fewshot_as_multiturn, "
                  "max_tokens (2 for MMLU), the data set path and the reference score's source.",
                  "Do not lower the reference threshold as a fix."]
    elif outcome == "unresolved":
        steps += ["The candidate crashed or hung twice: read the log tail in the trail and classify it "
                  "(python -m harness triage <log>).",
                  "Try skip_on_error: true on the transform named in the log, or strip to minimal by hand."]
    elif outcome == "same":
        steps += ["No regression at this sample size: if a gap was reported, rerun with more samples (--samples) "
                  "and check the reported score's own noise (--aa-repeats)."]
    elif outcome == "improved":
        steps += ["The candidate scores better than the reference: check the reference run (Phase 0) before "
                  "accepting it."]
    elif outcome == "inconclusive":
        steps += ["Not enough evidence either way: rerun with more samples (--samples), or measure the noise floor "
                  "with --aa-repeats.",
                  "If the log-probabilities differ beyond tolerance with no direction, the engines compute "
                  "something different that has not (yet) cost accuracy: more samples tell whether it does."]
    elif outcome == "core_path":
        steps += ["The minimal config still regresses: the bug is in a core path (weight loading, attention, KV "
                  "cache), not in an optional transform (method Phase 3 -> Phase 4).",
                  "Compare module by module against HF (graph_debug_compare) and check load hooks are applied once "
                  "(anti-pattern: a non-idempotent hook applied twice).",
                  "Check the attention/KV-cache kernel wrapper for hard-coded constants (method Phase 4b)."]
    elif outcome == "culprit":
        for c in culprits or []:
            names = ", ".join(c["knobs"])
            if c.get("kind") == "interaction":
                steps.append(f"{names} regress only together: look at how they interact (e.g. "
                             "mlir_elementwise_fusion corrupting piecewise CUDA-graph replay, TRT-LLM PR #13630); "
                             "disabling either one is a workaround until the interaction is fixed.")
            for cat in dict.fromkeys(c.get("categories") or []):
                for s in CATEGORY_STEPS.get(cat, []):
                    if s not in steps:
                        steps.append(s)
        steps.append("Reproduce with repro/command.sh (minimal config plus the culprit), then fix and rerun bisect "
                     "to confirm the fix (method Phase 6: one change per run).")
    elif outcome == "unexplained":
        steps += ["The search could not isolate the regression (untestable steps or a non-monotone effect): rerun "
                  "with --strategy linear, more samples, or an ablation plan that narrows the knobs (--ablation)."]
    if label_step and label_step not in steps:
        steps.append(f"Phase 2 pattern: {label_step}")
    steps += [s for s in (extra or []) if s not in steps]
    return steps


def phase4_findings(phases: dict) -> list[str]:
    """Phase 4a/4c findings worth acting on (not the not-applicable or not-run ones)."""
    extra = []
    for key in ("4a", "4c"):
        ph = phases.get(key) or {}
        for sub in ("fake_quant", "unquantized", "nccl"):
            f = (ph.get(sub) or {}).get("finding")
            if f and (ph.get(sub) or {}).get("kind") not in ("not_applicable", "not_run"):
                extra.append(f"Phase {key}: {f}")
        if ph.get("finding"):
            extra.append(f"Phase {key}: {ph['finding']}")
    return extra


def localization_steps(loc: dict | None) -> list[str]:
    """What the layer-wise comparison, the weight check and the graph view found (harness/bisect/localize_step.py)."""
    if not loc:
        return []
    steps, first = [], loc.get("first_divergence") if loc.get("ran") else None
    suspect = loc.get("candidate") or "the candidate"
    if first:
        where = first["module"] + (f" (layer {first['layer']})" if first.get("layer") is not None else "")
        if first.get("kind") == "isolated":
            steps.append(f"Layer-wise: {suspect} first leaves the noise band at {where}, which introduces the error "
                         "on the reference's own inputs (no module before it does): compare that module's "
                         "kernel with the unfused reference ops on the captured inputs (method Phase 4; "
                         f"{loc.get('plot') or 'the localization table'}).")
        else:
            steps.append(f"Layer-wise: the error first shows at {where} end to end, but no module introduces it on "
                         "the reference's inputs: look at what runs between modules there (residual adds, masks, "
                         "position ids, the order of fused ops).")
    elif loc.get("ran") and loc.get("modules"):
        steps.append(f"Layer-wise: {suspect} stays inside the noise band at every module on the compared prompts: "
                     "the difference is in what no captured module computes (sampling, the KV cache over decode "
                     "steps), or needs other prompts.")
    weights = loc.get("weights") or {}
    if weights.get("flagged"):
        sus = next((r.get("suspect") for r in weights.get("layers") or [] if r.get("flagged")), None)
        steps.append(f"Weights (method Phase 4a step 2): {len(weights['flagged'])} linear layer(s) dequantize far from "
                     f"the reference, first {weights['flagged'][0]}: {sus}.")
    for diff in (loc.get("graph") or {}).get("diffs") or []:
        if diff.get("changed"):
            ops = ", ".join(f"{op} x{n}" for op, n in list(diff["added"].items())[:3])
            steps.append(f"Graph dumps: {diff['transform']} rewrote {sum(diff['removed'].values())} node(s) into "
                         f"{ops} ({diff['before']} -> {diff['after']}): check that fused kernel against the unfused "
                         "ops it replaced on the same inputs (method Phase 4, ad-graph-dump).")
    return steps


GRAPH_DUMP_STEP = CATEGORY_STEPS["fusion"][0]


def _done(steps: list[str], loc: dict | None) -> list[str]:
    """``steps`` without the advice to dump the graphs once the localization diffed them."""
    diffed = any(d.get("changed") for d in ((loc or {}).get("graph") or {}).get("diffs") or [])
    return [s for s in steps if not (diffed and s == GRAPH_DUMP_STEP)]


def prescribe(state: BisectState) -> list[str]:
    """The run's next steps, from its outcome, culprits, Phase-2 label and Phase 4 findings."""
    label_step = (state.phases.get("2") or {}).get("next_step")
    ladder = (state.phases.get("ladder") or {}).get("finding")
    first = [f"Core-path ladder: {ladder}"] if ladder else []  # the most specific finding of a core-path run
    first += localization_steps(state.localization)
    return first + _done(next_steps(state.outcome or "unexplained", state.culprits, label_step,
                                    phase4_findings(state.phases)), state.localization)
