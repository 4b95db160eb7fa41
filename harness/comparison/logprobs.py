"""Per-sample log-probability comparison of two paired runs.

Accuracy only changes when an argmax flips; log-probabilities move long before that, so they
resolve much smaller faults with far fewer samples (measured on the demo model by
scripts/bench_detection.py, reports/bench_detection.json: a fault costing 3.3 accuracy points is
flagged at n = 100 in 20 of 20 draws by the log-probability test, in 2 of 20 by McNemar).

For every pair this module computes, on the answer-letter distribution (``answer_logprobs``,
{"A": lp, ...} at the first generated position) *renormalised over the letters both runs scored*:

  * KL(ref || cand) and the Jensen-Shannon divergence (nats),
  * top-1 agreement of the letter argmax, and on flipped samples the reference's top1-top2
    margin: a *near-tie* flip (margin < ``near_tie_margin``, default 0.1 nats) is what rounding
    noise produces; a *confident* flip is a real numerical difference,
  * the change of the reference (gold) answer's probability, ``delta_gold_prob`` = p_cand - p_ref
    (the direction signal: negative = the candidate puts less mass on the right answer; its mean
    is the change of the *expected* accuracy, in the same units as accuracy), and of its
    log-probability, ``delta_gold`` = lp_cand - lp_ref (its mean is minus the log-loss change),
  * for generation tasks, the first token position where the generated ids differ, and whether it
    is position 0 (produced by the prefill pass) or later (decode / KV-cache path), with the
    reference's top1-top2 margin there when top_logprobs are recorded.

Robustness: a pair without letter log-probs on both sides is ``missing`` (left out and counted).
NaN or +inf anywhere (or every letter -inf) makes that side ``nonfinite``. A pair where exactly one
side is non-finite gets KL = inf (it always exceeds any tolerance), delta_gold = -/+ ``CLIP`` and
delta_gold_prob = -/+ the finite side's gold probability (a broken candidate counts as having
lost all its mass on the right answer); both non-finite is left out. Finite divergences
are capped at ``CLIP`` nats so means stay finite. The default near-tie margin of 0.1 nats is about
what bf16 rounding can move a difference of two logits (2^-9 relative error on logits of 10-20
nats is 0.02-0.04 each).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable

CLIP = 30.0  # nats; caps KL and |delta_gold| so averages stay finite
NEAR_TIE_MARGIN = 0.1  # nats; reference top1-top2 margin below which a flip counts as a near tie


def _letters_lp(rec: dict) -> dict[str, float] | None:
    lp = rec.get("answer_logprobs")
    if not isinstance(lp, dict) or not lp:
        return None
    out = {}
    for k, v in lp.items():
        try:
            out[str(k).strip()] = float(v)
        except (TypeError, ValueError):
            out[str(k).strip()] = float("nan")
    return out


def _finite_dist(lps: list[float]) -> bool:
    if any(math.isnan(x) or x == math.inf for x in lps):
        return False
    return any(x > -math.inf for x in lps)


def _renorm(lps: list[float]) -> list[float]:
    m = max(lps)
    s = sum(math.exp(x - m) for x in lps if x > -math.inf)
    z = m + math.log(s)
    return [x - z for x in lps]


def _kl(lp: list[float], lq: list[float]) -> float:
    total = 0.0
    for a, b in zip(lp, lq):
        if a == -math.inf:
            continue
        if b == -math.inf:
            return math.inf
        total += math.exp(a) * (a - b)
    return max(0.0, total)


def _js(lp: list[float], lq: list[float]) -> float:
    pm = [0.5 * (math.exp(a) + math.exp(b)) for a, b in zip(lp, lq)]
    lm = [math.log(x) if x > 0 else -math.inf for x in pm]
    return max(0.0, 0.5 * _kl(lp, lm) + 0.5 * _kl(lq, lm))


def _margin(lps: list[float]) -> float:
    s = sorted(lps, reverse=True)
    if len(s) < 2:
        return math.inf
    if s[1] == -math.inf:
        return math.inf if s[0] > -math.inf else 0.0
    return s[0] - s[1]


def first_divergence(ids_ref, ids_cand) -> int | None:
    """First position where two generated token-id lists differ (None when identical)."""
    if ids_ref is None or ids_cand is None:
        return None
    for i, (a, b) in enumerate(zip(ids_ref, ids_cand)):
        if a != b:
            return i
    if len(ids_ref) != len(ids_cand):
        return min(len(ids_ref), len(ids_cand))
    return None


@dataclass
class SampleDivergence:
    id: str
    status: str  # ok | missing | nonfinite_ref | nonfinite_cand | nonfinite_both
    kl: float | None = None
    js: float | None = None
    top1_ref: str | None = None
    top1_cand: str | None = None
    agree: bool | None = None
    ref_margin: float | None = None  # reference top1 - top2 (renormalised letters), nats
    gold_lp_ref: float | None = None
    gold_lp_cand: float | None = None
    delta_gold: float | None = None  # gold_lp_cand - gold_lp_ref (nats)
    delta_gold_prob: float | None = None  # exp(gold_lp_cand) - exp(gold_lp_ref)
    first_divergence: int | None = None  # generated-token position where ids first differ
    divergence_phase: str | None = None  # prefill (position 0) | decode (later) | None
    divergence_ref_margin: float | None = None  # ref top1-top2 at that position, if recorded

    @property
    def usable(self) -> bool:
        """Counts in the divergence test: both sides scored; at most one side non-finite."""
        return self.status in ("ok", "nonfinite_ref", "nonfinite_cand")


def _pos_margin(rec: dict, pos: int) -> float | None:
    tops = rec.get("top_logprobs")
    if not isinstance(tops, list) or pos >= len(tops) or not isinstance(tops[pos], dict):
        return None
    vals = [float(v) for v in tops[pos].values() if isinstance(v, (int, float))]
    vals = [v for v in vals if not math.isnan(v)]
    if len(vals) < 2:
        return None
    m = _margin(vals)
    return m if math.isfinite(m) else None


def sample_divergence(ref: dict, cand: dict) -> SampleDivergence:
    """Divergence of one pair of records (see the module docstring for the conventions)."""
    sd = SampleDivergence(id=str(ref.get("id")), status="missing")
    pos = first_divergence(ref.get("token_ids"), cand.get("token_ids"))
    if pos is not None:
        sd.first_divergence = pos
        sd.divergence_phase = "prefill" if pos == 0 else "decode"
        sd.divergence_ref_margin = _pos_margin(ref, pos)
    a, b = _letters_lp(ref), _letters_lp(cand)
    if a is None or b is None:
        return sd
    letters = sorted(set(a) & set(b))
    if len(letters) < 2:
        return sd
    la, lb = [a[x] for x in letters], [b[x] for x in letters]
    fa, fb = _finite_dist(la), _finite_dist(lb)
    gold = str(ref.get("reference") or "").strip()
    gi = letters.index(gold) if gold in letters else None
    if not fa and not fb:
        sd.status = "nonfinite_both"
        return sd
    if not fa or not fb:
        sd.status = "nonfinite_cand" if not fb else "nonfinite_ref"
        sd.kl = sd.js = math.inf
        good = _renorm(lb if not fa else la)
        top = letters[max(range(len(letters)), key=lambda i: good[i])]
        sd.agree = False
        if fa:
            sd.top1_ref, sd.ref_margin = top, _margin(good)
        else:
            sd.top1_cand = top
        if gi is not None:
            sd.delta_gold = -CLIP if not fb else CLIP
            p_good = math.exp(good[gi])
            sd.delta_gold_prob = -p_good if not fb else p_good
        return sd
    pa, pb = _renorm(la), _renorm(lb)
    sd.status = "ok"
    sd.kl = min(CLIP, _kl(pa, pb))
    sd.js = min(CLIP, _js(pa, pb))
    ia = max(range(len(letters)), key=lambda i: pa[i])
    ib = max(range(len(letters)), key=lambda i: pb[i])
    sd.top1_ref, sd.top1_cand = letters[ia], letters[ib]
    sd.agree = ia == ib
    sd.ref_margin = _margin(pa)
    if gi is not None:
        sd.gold_lp_ref, sd.gold_lp_cand = pa[gi], pb[gi]
        d = pb[gi] - pa[gi]
        sd.delta_gold = max(-CLIP, min(CLIP, d)) if not math.isnan(d) else None
        sd.delta_gold_prob = math.exp(pb[gi]) - math.exp(pa[gi])
    return sd


def _q(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return float(np.quantile(np.asarray(values, dtype=float), q))


@dataclass
class LogprobSummary:
    n_pairs: int = 0
    n_scored: int = 0  # pairs with letter log-probs on both sides, both finite
    n_missing: int = 0
    n_nonfinite_ref: int = 0
    n_nonfinite_cand: int = 0
    n_nonfinite_both: int = 0
    kl_mean: float | None = None
    kl_median: float | None = None
    kl_p95: float | None = None
    kl_max: float | None = None
    js_mean: float | None = None
    top1_agreement: float | None = None
    flips: int = 0
    near_tie_flips: int = 0
    confident_flips: int = 0
    near_tie_margin: float = NEAR_TIE_MARGIN
    flip_ref_margins: list[float] = field(default_factory=list)
    delta_gold_mean: float | None = None  # nats
    delta_gold_prob_mean: float | None = None  # probability (x100 = expected-accuracy change in points)
    # generation: first divergent token position
    n_token_compared: int = 0
    n_diverged: int = 0
    n_prefill: int = 0
    n_decode: int = 0
    first_divergence_median: float | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["flip_ref_margins"] = [round(x, 6) for x in self.flip_ref_margins[:50]]
        return d


def summarize(divs: Iterable[SampleDivergence], n_token_compared: int | None = None,
              near_tie_margin: float = NEAR_TIE_MARGIN) -> LogprobSummary:
    divs = list(divs)
    s = LogprobSummary(n_pairs=len(divs), near_tie_margin=near_tie_margin)
    ok = [d for d in divs if d.status == "ok"]
    s.n_scored = len(ok)
    s.n_missing = sum(d.status == "missing" for d in divs)
    s.n_nonfinite_ref = sum(d.status == "nonfinite_ref" for d in divs)
    s.n_nonfinite_cand = sum(d.status == "nonfinite_cand" for d in divs)
    s.n_nonfinite_both = sum(d.status == "nonfinite_both" for d in divs)
    if ok:
        kls = [d.kl for d in ok]
        s.kl_mean = sum(kls) / len(kls)
        s.kl_median = _q(kls, 0.5)
        s.kl_p95 = _q(kls, 0.95)
        s.kl_max = max(kls)
        s.js_mean = sum(d.js for d in ok) / len(ok)
        s.top1_agreement = sum(bool(d.agree) for d in ok) / len(ok)
        flipped = [d for d in ok if not d.agree]
        s.flips = len(flipped)
        s.flip_ref_margins = sorted(d.ref_margin for d in flipped)
        s.near_tie_flips = sum(d.ref_margin < near_tie_margin for d in flipped)
        s.confident_flips = s.flips - s.near_tie_flips
        deltas = [d.delta_gold for d in ok if d.delta_gold is not None]
        s.delta_gold_mean = sum(deltas) / len(deltas) if deltas else None
        dps = [d.delta_gold_prob for d in ok if d.delta_gold_prob is not None]
        s.delta_gold_prob_mean = sum(dps) / len(dps) if dps else None
    s.n_token_compared = len(divs) if n_token_compared is None else n_token_compared
    dv = [d for d in divs if d.first_divergence is not None]
    s.n_diverged = len(dv)
    s.n_prefill = sum(d.divergence_phase == "prefill" for d in dv)
    s.n_decode = sum(d.divergence_phase == "decode" for d in dv)
    s.first_divergence_median = _q([float(d.first_divergence) for d in dv], 0.5)
    return s


def compare_logprobs(pairs: list[tuple[dict, dict]], near_tie_margin: float = NEAR_TIE_MARGIN
                     ) -> tuple[list[SampleDivergence], LogprobSummary]:
    """Per-sample divergences and their summary for paired (ref, cand) records."""
    divs = [sample_divergence(r, c) for r, c in pairs]
    n_tok = sum(1 for r, c in pairs if r.get("token_ids") is not None and c.get("token_ids") is not None)
    return divs, summarize(divs, n_tok, near_tie_margin)


def divergences_for_test(divs: Iterable[SampleDivergence]) -> list[float]:
    """The per-sample KL values the log-prob test uses (inf where exactly one side is non-finite)."""
    return [d.kl for d in divs if d.usable and d.kl is not None]
