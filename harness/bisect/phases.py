"""Pure pieces of the method's phases: Phase 0 checks, Phase 3/4a/4c interpretation, next steps.

Nothing here evaluates a model; the orchestrator feeds records and verdicts in and gets
findings (plain dicts) out, which the report shows as they are.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

# Phase 0 thresholds
MIN_PARSE_RATE = 0.9  # below: warn; below SUSPECT_PARSE_RATE: the harness is suspect
SUSPECT_PARSE_RATE = 0.5
CONSTANT_ANSWER_SHARE = 0.95  # one answer for >= 95% of samples = degenerate
CHANCE = {"mmlu": 25.0}


@dataclass
class Check:
    name: str
    ok: bool  # False: the harness is suspect (Phase 0 stops)
    detail: str
    warn: bool = False  # ok, but worth a look

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------ Phase 0
def check_prompt_identity(ref_records: list[dict], cand_records: list[dict]) -> Check:
    """Same sample ids, prompt text hashes and prompt token-id hashes on both backends."""
    from harness.comparison.pairing import pair_records

    p = pair_records(ref_records, cand_records)
    if not p.valid or p.only_ref or p.only_cand:
        problems = p.problems() or [f"{len(p.only_ref)} samples only in the reference, "
                                    f"{len(p.only_cand)} only in the candidate"]
        return Check("prompt identity", False, "; ".join(problems))
    tok = (f"; prompt token ids identical on {p.token_checked} of {p.n}" if p.token_checked
           else "; token ids not reported by a backend, compared prompt text only")
    return Check("prompt identity", True, f"{p.n} samples, identical prompt text on both backends{tok}",
                 warn=p.token_checked < p.n)


def check_output_format(records: list[dict], backend: str) -> Check:
    n = len(records)
    if not n:
        return Check("output format", False, f"{backend} returned no records")
    parsed = sum(r.get("parsed") is not None for r in records)
    rate = parsed / n
    empty = sum(not (r.get("output") or "").strip() for r in records)
    examples = ", ".join(repr((r.get("output") or "")[:30]) for r in records if r.get("parsed") is None)[:160]
    detail = f"{parsed}/{n} outputs parse as an answer ({100 * rate:.0f}%)"
    if empty:
        detail += f"; {empty} empty"
    if parsed < n:
        detail += f"; unparsed e.g. {examples}"
    if rate < SUSPECT_PARSE_RATE:
        return Check("output format", False, detail + ". The prompt format, chat template or max_tokens is wrong "
                     "for this model (method Phase 0).")
    return Check("output format", True, detail, warn=rate < MIN_PARSE_RATE)


def check_accuracy(records: list[dict], task: str, score: float | None) -> Check:
    n = len(records)
    if not n or score is None:
        return Check("non-degenerate accuracy", False, "no score")
    answers = Counter(r.get("parsed") for r in records)
    top, count = answers.most_common(1)[0]
    share = count / n
    chance = CHANCE.get(task)
    if score == 0:
        return Check("non-degenerate accuracy", False, f"accuracy 0 on {n} samples: the harness, not the engine, is "
                     "the first suspect (prompt format, answer parsing, data set path)")
    if share >= CONSTANT_ANSWER_SHARE and n >= 10:
        return Check("non-degenerate accuracy", False, f"the reference answers {top!r} on {count}/{n} samples: "
                     "degenerate output (prompt format, chat template, tokenizer)")
    detail = f"accuracy {score:.1f} on {n} samples; most common answer {top!r} on {100 * share:.0f}%"
    if chance is not None and score <= chance + 5:
        return Check("non-degenerate accuracy", True, detail + f" - near chance ({chance:.0f}); verdicts will rest "
                     "on log-probabilities more than on accuracy", warn=True)
    return Check("non-degenerate accuracy", True, detail)


def check_reference_score(score: float, n: int, expected: float, source: str, sigma: float = 50.0,
                          alpha: float = 0.05) -> Check:
    """The reference backend's score against the expected one, with TRT-LLM's own one-sided gate.

    Fails when the reference backend scores below accuracy_core's threshold
    (``ref + Phi^-1(alpha) * sqrt(2 sigma^2 / n)``): then PT itself 'fails' and the method says
    the eval harness, not AD, is the first suspect.
    """
    from harness.comparison.stats import trtllm_threshold

    thr = trtllm_threshold(n, expected, sigma=sigma, alpha=alpha)
    hi = expected + (expected - thr)
    detail = (f"reference backend {score:.2f} vs expected {expected:.2f} ({source}); TRT-LLM gate at n={n}: "
              f">= {thr:.2f}")
    if score < thr:
        return Check("reference score", False, detail + ". The reference backend itself scores below the expected "
                     "value: re-examine the harness (prompt format, chat template, sampling, data set), not AD "
                     "(method Phase 0; never lower the threshold).")
    return Check("reference score", True, detail, warn=score > hi)


# ------------------------------------------------------------------------------------ Phase 4c
def interpret_ladder(verdicts: dict[int, str], full_ws: int) -> dict:
    """World-size ladder {ws: verdict} -> finding (method Phase 4c, 'Validating a sharding fix')."""
    ok = {w for w, v in verdicts.items() if v in ("same", "improved")}
    bad = {w for w, v in verdicts.items() if v == "regressed"}
    unknown = sorted(w for w in verdicts if w not in ok and w not in bad)
    above = sorted(w for w in verdicts if w > 1)
    if 1 in bad:
        kind, text = "not_sharding", ("fails at world_size 1 too: sharding is not the cause; go back to Phase 3 "
                                      "isolation at world_size 1")
    elif 1 not in ok or unknown:
        kind, text = "unclear", "the ladder does not separate the cases (some steps untestable)"
    elif not bad:
        kind, text = "no_sharding_effect", "the same at every world size tried: sharding is not the cause"
    elif len(above) >= 2 and all(w in bad for w in above):
        kind, text = "structural", ("correct at world_size 1, wrong at every world_size > 1: a structural sharding "
                                    "bug (missing or doubled all-reduce, wrong split point, wrong stride after TP)")
    elif bad == {full_ws} and len(above) >= 2:
        kind, text = "divisibility", (f"correct up to world_size {max(w for w in ok)}, wrong only at {full_ws}: "
                                      "likely a head-count divisibility assumption (heads not divisible by the TP "
                                      "degree)")
    elif bad == {full_ws}:
        kind, text = "sharding", (f"correct at world_size 1, wrong at {full_ws} (the only world_size > 1 tried): a "
                                  "sharding bug; structural and divisibility cannot be told apart with one step")
    else:
        kind, text = "unclear", "wrong at some world sizes > 1 but not at the largest: no pattern the method names"
    return {"kind": kind, "finding": text, "ladder": {str(w): v for w, v in sorted(verdicts.items())},
            "untestable": unknown}


def interpret_nccl(verdict: str | None, applicable: bool, current: dict) -> dict:
    if not applicable:
        return {"kind": "not_applicable", "finding": "allreduce_strategy is already NCCL in every transform that has "
                "it" if current else "no transform has an allreduce_strategy option", "verdict": None}
    if verdict in ("same", "improved"):
        return {"kind": "allreduce_strategy", "verdict": verdict, "finding": "allreduce_strategy: NCCL recovers: "
                "the all-reduce strategy is the bug (AUTO has caused correctness issues before)"}
    return {"kind": "not_allreduce", "verdict": verdict, "finding": f"allreduce_strategy: NCCL does not recover "
            f"({verdict}): the all-reduce strategy is not the cause"}


# ------------------------------------------------------------------------------------ Phase 4a
def interpret_unquantized(verdict: str | None) -> dict:
    if verdict == "regressed":
        return {"kind": "not_quantization", "verdict": verdict, "finding": "the unquantized model also regresses: "
                "the bug is not quantization-related (a transform, attention or weight loading); continue Phase 3 "
                "isolation on the unquantized model"}
    if verdict in ("same", "improved"):
        return {"kind": "quantization", "verdict": verdict, "finding": "the unquantized model is fine: the gap comes "
                "from quantization or the quantized kernel path (Phase 4a step 2)"}
    return {"kind": "unclear", "verdict": verdict, "finding": f"unquantized baseline {verdict}: no conclusion"}


def interpret_fake_quant(verdict: str | None, n_disabled: int) -> dict:
    if n_disabled == 0:
        return {"kind": "not_applicable", "verdict": None, "finding": "no quantization fusion is on in this config: "
                "fake-quant mode is the config itself"}
    if verdict in ("same", "improved"):
        return {"kind": "kernel", "verdict": verdict, "finding": "accuracy recovers in fake-quant mode: the quantized "
                "kernel (not the scales) is the bug"}
    if verdict == "regressed":
        return {"kind": "scales", "verdict": verdict, "finding": "still wrong in fake-quant mode: the scales or weight "
                "data are the likely culprit (missing/inverted scale, block-scale computation, .to() vs .view())"}
    return {"kind": "unclear", "verdict": verdict, "finding": f"fake-quant run {verdict}: no conclusion"}


# ------------------------------------------------------------------------------------ next steps
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
    """What the method prescribes after this bisect's final outcome."""
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
