"""Phase 0's checks of the harness, pure functions of the reference run's records (docs/method.md,
"Phase 0"): prompt identity across backends, output format, non-degenerate accuracy, the
reference score. ``harness.bisect.validate`` runs them; a failed check stops the bisect.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

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

    Fails when the reference backend scores below the threshold TRT-LLM's accuracy tests use
    (``ref + Phi^-1(alpha) * sqrt(2 sigma^2 / n)``: ``compute_threshold`` in NVIDIA/TensorRT-LLM
    tests/integration/defs/accuracy/accuracy_core.py@3e906a0e, here
    ``harness.comparison.stats.trtllm_threshold``): then PT itself 'fails', and the eval harness,
    not AD, is the first suspect (docs/method.md, "Phase 0").
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
