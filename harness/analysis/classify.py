"""Phase 2: map a run's outputs to the method's error-pattern table, with measured evidence.

``classify(records, reference_records=None, world_size_runs=None, task=None)`` measures, per
record, what the output looks like and returns a ``Classification``: the primary label, every
label that matched (``findings``) with evidence counts, example samples and the next step the
method prescribes. The label vocabulary, thresholds, root causes and next steps are data in
``configs/phase2_patterns.yaml`` (the Phase 2 table of docs/method.md, plus rows from its
"Checklist of common failures").

What is measured (no guessing from a single output):

* nonfinite - NaN/inf in the answer or top-k log-probabilities; how many at the first generated
  position (computed by the prefill pass).
* empty_or_eos - empty output after stripping (an EOS decodes to "").
* gibberish - an output that carries no valid answer and is implausible by at least one measure:
  its *word-likeness* (share of whitespace-separated words that look like words: alphabetic with
  vowels and no triple letters, numbers, short tokens, ordinary punctuation) is below a
  threshold; or, *under the reference* run, its first token is not even in the reference's top-k
  at that position; or the run's own first-position distribution is flat (top-1 probability
  below 5%, i.e. the model is not choosing).
* random_answers - (multiple choice, with a reference) the outputs are valid letters, but on the
  subjects the reference knows (>= 90% right) the candidate's letters are at chance and spread over
  all letters: the answers no longer depend on the question (a constant letter is "consistently
  wrong" instead). The same root causes as gibberish, seen through a 2-token answer.
* repetition_loop - the output ends in a unit of 1-8 tokens repeated, covering half of it.
* meta_text - "The user wants", "The answer is", "Let me think", "Okay" ... instead of an answer.
* parser_mismatch - wrong records whose output nonetheless contains the right answer in an
  answer-like form (MMLU scores ``text.strip().startswith(letter)``, so "(B)" or "b" is scored
  wrong; GSM8K: the gold number is in the output but not extracted).
* truncated - generation tasks only: stopped on the length limit without an extractable answer
  (MMLU always stops at max_tokens 2 by design, so it is never labelled).
* world_size_dependence - paired verdicts of every world size > 1 against world size 1.
* accuracy_extreme - 0% or 100% (docs/method.md, "Checklist of common failures": suspect the data,
  labels or parser).
* easy_right_hard_wrong - difficulty from the reference: subjects split by the reference's
  per-subject accuracy (subjects at chance in the reference carry no information and are left
  out); when that split is not possible (e.g. every informative subject is easy), samples split
  by the reference's own confidence (its top1-top2 letter margin): a subtle numerical error
  loses near-boundary samples (a significant *net* loss among the less confident half, McNemar)
  and keeps confident ones; rounding noise flips near ties both ways and is not flagged.
* coherent_wrong - valid answers, but significantly fewer right than the reference (paired
  McNemar), or a paired ``regressed`` verdict against the reference (harness.comparison.verdict: the
  log-probability test finds subtle faults long before accuracy does), or near chance without a
  reference.

Patterns that compare against the reference (empty, loops, truncation) require an excess over the
reference's own rate, so a model that is simply like that in both backends is not labelled.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from harness.errors import HarnessError

LETTERS = ("A", "B", "C", "D")
MAX_EXAMPLES = 3


@lru_cache(maxsize=4)
def load_patterns(path: str | None = None) -> dict:
    """The pattern table (configs/phase2_patterns.yaml unless ``path``)."""
    import yaml

    from harness.paths import CONFIGS

    p = Path(path) if path else CONFIGS / "phase2_patterns.yaml"
    if not p.is_file():
        raise HarnessError(f"pattern table {str(p)!r} not found; restore configs/phase2_patterns.yaml or pass "
                           f"--patterns <file>")
    with open(p, encoding="utf-8") as f:
        data = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    missing = [k for k in data.get("order", []) if k not in data.get("patterns", {})]
    if missing:
        raise HarnessError(f"{p}: labels {missing} are in 'order' but have no entry under 'patterns'; add them")
    return data


# ---------------------------------------------------------------------------------------------
# per-output measures


_VOWELS = set("aeiouyAEIOUY")


def _word_like(w: str) -> bool:
    core = w.strip(".,;:!?()[]{}\"'`*-_/\\")
    if not core:
        return not re.search(r"(.)\1\1", w)  # plain punctuation, not '####' or '!!!!'
    if "\ufffd" in core or any(ord(ch) < 32 for ch in core):
        return False
    if re.fullmatch(r"[-+$]?\d[\d,]*(\.\d+)?%?", core):
        return True
    if not core.isascii():
        return core.isalpha()
    if not core.isalpha():
        return bool(re.fullmatch(r"\d+(st|nd|rd|th|s)", core)) or bool(re.fullmatch(r"[A-Za-z]+'[a-z]{1,2}", core))
    if len(core) <= 2:
        return True
    if re.search(r"(.)\1\1", core) or len(core) > 20:
        return False
    v = sum(ch in _VOWELS for ch in core) / len(core)
    return 0.15 <= v <= 0.8


def word_likeness(text: str) -> float | None:
    """Share of whitespace-separated words that look like words (None for empty text)."""
    words = text.split()
    if not words:
        return None
    return sum(_word_like(w) for w in words) / len(words)


def tail_repeat_cover(ids: list) -> float:
    """Share of the sequence covered by the longest tail repetition of a 1-8 token unit (>= 3 copies)."""
    n = len(ids)
    best = 0.0
    for u in range(1, min(8, n // 3) + 1):
        unit = ids[n - u:]
        reps = 1
        while (reps + 1) * u <= n and ids[n - (reps + 1) * u: n - reps * u] == unit:
            reps += 1
        if reps >= 3:
            best = max(best, reps * u / n)
    return best


def _nonfinite_values(obj) -> bool:
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, str):
        return obj in ("nan", "inf", "-inf")
    if isinstance(obj, dict):
        return any(_nonfinite_values(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_nonfinite_values(v) for v in obj)
    return False


def _first_top(rec: dict) -> dict | None:
    tops = rec.get("top_logprobs")
    if isinstance(tops, list) and tops and isinstance(tops[0], dict) and tops[0]:
        return tops[0]
    return None


def _top1_prob(top: dict | None) -> float | None:
    if not top:
        return None
    vals = [v for v in top.values() if isinstance(v, (int, float)) and not math.isnan(v)]
    return math.exp(max(vals)) if vals else None


def _argmax_token(top: dict | None) -> str | None:
    if not top:
        return None
    vals = {k: v for k, v in top.items() if isinstance(v, (int, float)) and not math.isnan(v)}
    return max(vals, key=vals.get) if vals else None


def _is_meta(text: str, phrases: dict) -> bool:
    t = text.strip().lower()
    if not t:
        return False
    return any(t.startswith(p) for p in phrases.get("start", [])) or \
        any(p in t for p in phrases.get("anywhere", []))


def _norm_number(s) -> str | None:
    if s is None:
        return None
    s = str(s)
    if "####" in s:
        s = s.split("####")[-1]
    s = s.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        v = float(s)
    except ValueError:
        return s or None
    return str(int(v)) if v == int(v) else str(v)


def _mc_answer_present(text: str, gold: str) -> bool:
    """MMLU: the right letter is in an answer-like form although startswith(letter) failed."""
    t = text.strip()
    if not gold or t.startswith(gold):
        return False
    g = re.escape(gold)
    if re.match(rf"^[\W_]*\(?{g}\)?(?![A-Za-z])", t):  # '(B)', '**B', '"B'
        return True
    if re.match(rf"^\(?{g.lower()}\)?(?![A-Za-z])", t):  # lower-case 'b' / '(b)'
        return True
    return bool(re.search(rf"answer\s*(is|:)?\s*\(?{g}\)?(?![A-Za-z])", t, re.IGNORECASE))


def _gen_answer_present(rec: dict) -> bool:
    gold = _norm_number(rec.get("reference"))
    if gold is None:
        return False
    nums = [_norm_number(x) for x in re.findall(r"-?[$]?\d[\d,]*(?:\.\d+)?", rec.get("output") or "")]
    return gold in nums


# ---------------------------------------------------------------------------------------------
# results


@dataclass
class Finding:
    label: str
    title: str
    count: int
    total: int
    evidence: dict = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)
    root_cause: str = ""
    next_step: str = ""
    phase: str = ""

    @property
    def fraction(self) -> float:
        return self.count / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "fraction": self.fraction}


@dataclass
class Classification:
    label: str
    title: str
    next_step: str
    root_cause: str = ""
    phase: str = ""
    n: int = 0
    accuracy: float | None = None  # points
    evidence: dict = field(default_factory=dict)  # every measure, matched or not
    findings: list[Finding] = field(default_factory=list)  # matched labels, primary first
    examples: list[dict] = field(default_factory=list)  # of the primary label
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [f.label for f in self.findings]

    def to_dict(self) -> dict:
        from harness.comparison.verdict import json_safe

        d = asdict(self)
        d["findings"] = [f.to_dict() for f in self.findings]
        d["labels"] = self.labels
        return json_safe(d)

    def summary_lines(self) -> list[str]:
        L = [f"pattern: {self.label} - {self.title}"]
        acc = "-" if self.accuracy is None else f"{self.accuracy:.1f}%"
        L.append(f"  samples {self.n}, accuracy {acc}")
        prim = self.findings[0] if self.findings else None
        if prim is not None:
            ev = ", ".join(f"{k} {_fmt(v)}" for k, v in prim.evidence.items() if not isinstance(v, (dict, list)))
            L.append(f"  evidence: {prim.count}/{prim.total} samples" + (f"; {ev}" if ev else ""))
            for ex in prim.examples:
                L.append(f"  e.g. {ex.get('id')}: output {ex.get('output')!r}, reference {ex.get('reference')!r}"
                         + (f", subject {ex['subject']}" if ex.get("subject") else ""))
        if self.root_cause and self.root_cause != "-":
            L.append(f"  likely root cause: {self.root_cause}")
        L.append(f"  next step (phase {self.phase}): {self.next_step}")
        for f in self.findings[1:]:
            L.append(f"also: {f.label} - {f.title} ({f.count}/{f.total})")
        ev = self.evidence
        L.append("measures: " + ", ".join(f"{k} {_fmt(v)}" for k, v in ev.items()
                                          if not isinstance(v, (dict, list)) and v is not None))
        for note in self.notes:
            L.append(f"note: {note}")
        return L

    def __str__(self) -> str:
        return "\n".join(self.summary_lines())


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _example(rec: dict) -> dict:
    return {"id": rec.get("id"), "subject": rec.get("subject"), "reference": rec.get("reference"),
            "output": rec.get("output"), "parsed": rec.get("parsed"), "correct": bool(rec.get("correct")),
            "finish_reason": rec.get("finish_reason")}


def _records_of(run) -> tuple[list[dict], str]:
    if run is None:
        return [], "missing"
    if isinstance(run, list):
        return run, "ok"
    if isinstance(run, dict):
        return list(run.get("records") or []), run.get("status") or "ok"
    if hasattr(run, "records"):
        return list(run.records or []), getattr(run, "status", "ok") or "ok"
    raise HarnessError(f"cannot classify a {type(run).__name__}; pass a list of records or an EvalResult")


# ---------------------------------------------------------------------------------------------
# the classifier


def _measure(recs: list[dict], is_mc: bool, is_gen: bool, cfg: dict, ref_by_id: dict | None) -> dict:
    """Per-record booleans for every pattern, as id lists (so the caller can count and pick examples)."""
    P = cfg["patterns"]
    phrases = cfg.get("meta_phrases", {})
    out = {k: [] for k in ("nonfinite", "nonfinite_first", "empty", "meta", "gibberish", "loop", "truncated",
                           "parser_mismatch", "valid", "flat", "not_in_ref_topk", "ref_topk_checked")}
    word_min = P["gibberish"].get("word_like_min", 0.5)
    flat_max = P["gibberish"].get("flat_top1_max", 0.05)
    loop_min_tokens = P["repetition_loop"].get("min_tokens", 8)
    loop_cover = P["repetition_loop"].get("loop_cover", 0.5)
    for r in recs:
        text = r.get("output") or ""
        rid = r.get("id")
        if r.get("nonfinite") or _nonfinite_values(r.get("answer_logprobs")) or _nonfinite_values(r.get("top_logprobs")):
            out["nonfinite"].append(r)
            tops = r.get("top_logprobs")
            if _nonfinite_values(r.get("answer_logprobs")) or (isinstance(tops, list) and tops and
                                                                _nonfinite_values(tops[0])):
                out["nonfinite_first"].append(r)
        parsed = r.get("parsed")
        valid = (parsed in LETTERS) if is_mc else (parsed not in (None, "", "[invalid]"))
        if valid:
            out["valid"].append(r)
        empty = text.strip() == ""
        if empty:
            out["empty"].append(r)
        meta = (not empty) and _is_meta(text, phrases) and not (is_mc and text.strip()[:1] in LETTERS and
                                                                 text.strip()[1:2] in ("", " ", ".", ")", "\n"))
        if meta:
            out["meta"].append(r)
        top = _first_top(r)
        p1 = _top1_prob(top)
        flat = p1 is not None and p1 < flat_max
        if flat:
            out["flat"].append(r)
        outside = False
        if ref_by_id is not None and top:
            ref = ref_by_id.get(rid)
            rtop = _first_top(ref) if ref else None
            tok = _argmax_token(top)
            if rtop and tok is not None:
                out["ref_topk_checked"].append(r)
                if tok not in rtop:
                    outside = True
                    out["not_in_ref_topk"].append(r)
        wl = word_likeness(text)
        if not valid and not empty and not meta and ((wl is not None and wl < word_min) or outside or flat):
            out["gibberish"].append(r)
        ids = r.get("token_ids") or []
        if is_gen and len(ids) >= loop_min_tokens and tail_repeat_cover(list(ids)) >= loop_cover:
            out["loop"].append(r)
        if is_gen and r.get("finish_reason") == "length" and not r.get("correct") and not valid:
            out["truncated"].append(r)
        if not r.get("correct") and not empty:
            present = _mc_answer_present(text, str(r.get("reference") or "")) if is_mc else _gen_answer_present(r)
            if present:
                out["parser_mismatch"].append(r)
    return out


@dataclass
class _Context:
    """What every rule reads (the run, its reference, their measures) and writes (evidence, notes,
    findings). ``measures`` / ``reference_measures`` are _measure's per-pattern record lists."""
    patterns: dict  # the 'patterns' section of the table
    order: list[str]  # the table's label order: the first matching label is the primary one
    records: list[dict]
    reference_records: list[dict]
    is_mc: bool
    is_gen: bool
    accuracy: float  # points
    alpha: float
    world_size_runs: dict | None
    measures: dict
    reference_measures: dict | None
    evidence: dict
    notes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.records)

    @property
    def valid_answer_rate(self) -> float:
        return len(self.measures["valid"]) / self.n

    def fraction(self, key: str) -> float:
        """Share of the run's records with measure ``key``."""
        return len(self.measures[key]) / self.n if self.n else 0.0

    def reference_fraction(self, key: str) -> float:
        total = len(self.reference_records)
        return len(self.reference_measures[key]) / total if total else 0.0

    def reference_count(self, key: str) -> int | None:
        return len(self.reference_measures[key]) if self.reference_measures else None

    def excess_ok(self, key: str, label: str) -> bool:
        """True unless the reference shows the pattern nearly as often (min_excess_over_reference)."""
        if self.reference_measures is None or not self.reference_records:
            return True
        excess = self.fraction(key) - self.reference_fraction(key)
        return excess >= self.patterns[label].get("min_excess_over_reference", 0.0)

    def add(self, label: str, rows, total: int, **evidence) -> None:
        """Record a matched label: ``rows`` are the matching records (examples) or just their count."""
        pattern = self.patterns[label]
        row_list = rows if isinstance(rows, list) else []
        self.findings.append(Finding(label=label, title=pattern["title"],
                                     count=len(rows) if isinstance(rows, list) else rows, total=total,
                                     evidence=evidence, examples=[_example(r) for r in row_list[:MAX_EXAMPLES]],
                                     root_cause=pattern.get("root_cause", ""),
                                     next_step=pattern.get("next_step", ""), phase=str(pattern.get("phase", ""))))


def _usable_records(records, reference_records) -> tuple[list[dict], list[dict]]:
    """The run's records (an error when the run is unresolved or empty) and the reference's
    (empty when it is unresolved)."""
    records_list, status = _records_of(records)
    if status != "ok":
        raise HarnessError(f"cannot classify an {status} run (it produced no usable records); see its log "
                           f"tail with `python -m harness triage`")
    if not records_list:
        raise HarnessError("the run has no records to classify; pass a run directory with samples.jsonl")
    reference_list, reference_status = _records_of(reference_records)
    if reference_records is not None and reference_status != "ok":
        reference_list = []
    return records_list, reference_list


def _base_evidence(measures: dict, task: str | None, is_mc: bool, is_gen: bool, accuracy: float) -> dict:
    """Every measure's count, matched or not (and the answer letters for multiple choice)."""
    evidence = {"task": task or ("multiple-choice" if is_mc else "generation"), "generation": is_gen,
                "accuracy_points": accuracy, "valid_answers": len(measures["valid"]), "empty": len(measures["empty"]),
                "meta_text": len(measures["meta"]), "gibberish": len(measures["gibberish"]),
                "nonfinite": len(measures["nonfinite"]), "nonfinite_first_position": len(measures["nonfinite_first"]),
                "flat_first_position": len(measures["flat"]),
                "first_token_outside_reference_topk": len(measures["not_in_ref_topk"]),
                "reference_topk_checked": len(measures["ref_topk_checked"]),
                "repetition_loops": len(measures["loop"]), "truncated": len(measures["truncated"]),
                "parser_mismatch": len(measures["parser_mismatch"])}
    if is_mc:
        letters = Counter(r.get("parsed") for r in measures["valid"])
        evidence["answer_letters"] = dict(sorted(letters.items()))
        evidence["top_letter_share"] = (letters.most_common(1)[0][1] / len(measures["valid"])
                                        if measures["valid"] else None)
    return evidence


def _build_context(records, reference_records, world_size_runs, task, alpha, patterns) -> _Context:
    table = load_patterns(patterns)
    run_records, reference_list = _usable_records(records, reference_records)
    is_mc = task == "mmlu" if task else all(str(r.get("reference") or "").strip() in LETTERS for r in run_records)
    longest_output = max(len(r.get("token_ids") or []) for r in run_records)
    is_gen = (not is_mc) or (task not in (None, "mmlu") and longest_output > 2)
    accuracy = 100.0 * sum(bool(r.get("correct")) for r in run_records) / len(run_records)
    reference_by_id = {str(r.get("id")): r for r in reference_list} if reference_list else None
    measures = _measure(run_records, is_mc, is_gen, table, reference_by_id)
    reference_measures = _measure(reference_list, is_mc, is_gen, table, None) if reference_list else None
    return _Context(patterns=table["patterns"], order=table["order"], records=run_records,
                    reference_records=reference_list, is_mc=is_mc, is_gen=is_gen, accuracy=accuracy, alpha=alpha,
                    world_size_runs=world_size_runs, measures=measures, reference_measures=reference_measures,
                    evidence=_base_evidence(measures, task, is_mc, is_gen, accuracy))


# -- one rule per label family of configs/phase2_patterns.yaml (in the order they are evaluated) --


def _rule_nonfinite(context: _Context) -> None:
    measures = context.measures
    if len(measures["nonfinite"]) >= context.patterns["nonfinite"].get("min_count", 1):
        context.add("nonfinite", measures["nonfinite"], context.n,
                    at_first_position=len(measures["nonfinite_first"]),
                    in_reference=context.reference_count("nonfinite"))


def _rule_empty_or_eos(context: _Context) -> None:
    if context.fraction("empty") >= context.patterns["empty_or_eos"]["min_fraction"] and \
            context.excess_ok("empty", "empty_or_eos"):
        context.add("empty_or_eos", context.measures["empty"], context.n, in_reference=context.reference_count("empty"))


def _rule_gibberish(context: _Context) -> None:
    """Outputs that carry no answer and do not look like text."""
    pattern, measures = context.patterns["gibberish"], context.measures
    if context.fraction("gibberish") >= pattern["min_fraction"]:
        context.add("gibberish", measures["gibberish"], context.n, flat_first_position=len(measures["flat"]),
                    outside_reference_topk=len(measures["not_in_ref_topk"]),
                    median_word_likeness=_median([word_likeness(r.get("output") or "")
                                                  for r in measures["gibberish"]]))


def _rule_random_answers(context: _Context) -> None:
    """Multiple choice: valid letters that no longer depend on the question (not when the text is gibberish)."""
    if not (context.is_mc and context.reference_records):
        return
    random_answers = _random_answers(context.reference_records, context.records, context.patterns["random_answers"])
    if random_answers is None:
        return
    context.evidence["random_answers"] = {k: v for k, v in random_answers.items() if k != "rows"}
    if random_answers["matched"] and not any(f.label == "gibberish" for f in context.findings):
        context.add("random_answers", random_answers["rows"], random_answers["known_n"],
                    **{k: v for k, v in random_answers.items() if k not in ("rows", "matched", "known_n")})


def _rule_repetition_loop(context: _Context) -> None:
    if context.is_gen and context.fraction("loop") >= context.patterns["repetition_loop"]["min_fraction"] and \
            context.excess_ok("loop", "repetition_loop"):
        context.add("repetition_loop", context.measures["loop"], context.n,
                    in_reference=context.reference_count("loop"))


def _rule_meta_text(context: _Context) -> None:
    if context.fraction("meta") >= context.patterns["meta_text"]["min_fraction"]:
        context.add("meta_text", context.measures["meta"], context.n)


def _rule_parser_mismatch(context: _Context) -> None:
    mismatched = context.measures["parser_mismatch"]
    wrong = context.n - sum(bool(r.get("correct")) for r in context.records)
    pattern = context.patterns["parser_mismatch"]
    if len(mismatched) >= pattern.get("min_count", 2) and wrong and \
            len(mismatched) / wrong >= pattern.get("min_fraction_of_wrong", 0.05):
        context.add("parser_mismatch", mismatched, wrong, of_wrong_answers=wrong)


def _rule_truncated(context: _Context) -> None:
    """Generation tasks only."""
    if not context.is_gen:
        context.notes.append("truncation not assessed: multiple-choice runs stop at max_tokens (2 for MMLU) by design")
    elif context.fraction("truncated") >= context.patterns["truncated"]["min_fraction"] and \
            context.excess_ok("truncated", "truncated"):
        context.add("truncated", context.measures["truncated"], context.n,
                    in_reference=context.reference_count("truncated"))


def _rule_world_size_dependence(context: _Context) -> None:
    if context.world_size_runs:
        finding = _world_size_finding(context.world_size_runs, context.alpha, context.notes)
        if finding is not None:
            context.add("world_size_dependence", finding.pop("rows"), finding.pop("total"), **finding)


def _rule_accuracy_extreme(context: _Context) -> None:
    """0% or 100%: the count is every sample, the examples the first few."""
    if context.n >= context.patterns["accuracy_extreme"].get("min_samples", 10) and context.accuracy in (0.0, 100.0):
        context.add("accuracy_extreme", context.records[:MAX_EXAMPLES], context.n, accuracy_points=context.accuracy)
        context.findings[-1].count = context.n


# rules that need only the run (and the reference's own measures), in evaluation order
_OUTPUT_RULES = (_rule_nonfinite, _rule_empty_or_eos, _rule_gibberish, _rule_random_answers,
                 _rule_repetition_loop, _rule_meta_text,
                 _rule_parser_mismatch, _rule_truncated, _rule_world_size_dependence, _rule_accuracy_extreme)


def _compare_with_reference(ref_recs, recs, alpha, evidence: dict, notes: list):
    """The paired verdict against the reference (None without one, or when it is not comparable);
    its numbers go into ``evidence``."""
    cmp_ = None
    if ref_recs:
        from harness.comparison.verdict import VerdictOptions, compare_runs

        cmp_ = compare_runs(ref_recs, recs, options=VerdictOptions(alpha=alpha, on_invalid="unresolved"))
        if cmp_.verdict == "unresolved":
            notes.append("reference not comparable: " + "; ".join(cmp_.reasons))
            cmp_ = None
        else:
            evidence["reference_accuracy_points"] = cmp_.accuracy["ref_points"]
            evidence["paired_diff_points"] = cmp_.accuracy["diff_points"]
            evidence["mcnemar_p_worse"] = cmp_.mcnemar["p_regressed"]
            evidence["verdict_vs_reference"] = cmp_.verdict
            if cmp_.differs and cmp_.verdict != "regressed":
                t = cmp_.logprob_test
                notes.append(f"log-probs differ from the reference beyond tolerance ({t.get('k')}/{t.get('n')} "
                             f"samples, verdict {cmp_.verdict}) without a clear direction at this n; rerun with "
                             f"more samples before concluding there is no pattern")
    return cmp_


def _rule_easy_right_hard_wrong(context: _Context, comparison) -> None:
    """Only with a comparable reference (see easy_hard_split)."""
    if comparison is None:
        return
    split = easy_hard_split(context.reference_records, context.records, context.patterns["easy_right_hard_wrong"],
                            context.alpha, context.notes)
    if split is None:
        return
    context.evidence["easy_hard"] = {k: v for k, v in split.items() if k != "rows"}
    if split["matched"]:
        context.add("easy_right_hard_wrong", split["rows"], split["total"],
                    **{k: v for k, v in split.items() if k not in ("rows", "total", "matched")})


def _rule_coherent_wrong(context: _Context, comparison) -> None:
    """Valid answers, but significantly worse than the reference (accuracy or the paired verdict);
    without a reference, near chance."""
    pattern = context.patterns["coherent_wrong"]
    if context.valid_answer_rate < pattern["parse_min"]:
        return
    if comparison is not None:
        accuracy_drop = comparison.mcnemar["p_regressed"] < context.alpha and \
            -comparison.accuracy["diff_points"] >= pattern["min_effect_points"]
        if accuracy_drop or comparison.verdict == "regressed":
            context.add("coherent_wrong", _lost_records(context, comparison), context.n,
                        accuracy_points=context.accuracy, reference_points=comparison.accuracy["ref_points"],
                        losses=comparison.mcnemar["b"], gains=comparison.mcnemar["c"],
                        p_worse=comparison.mcnemar["p_regressed"], verdict=comparison.verdict,
                        evidence=", ".join(comparison.evidence) or "accuracy",
                        right_answer_prob_change_points=_pts(comparison.logprob.get("delta_gold_prob_mean")),
                        kl_exceed_rate=comparison.logprob_test.get("rate"),
                        top_letter_share=context.evidence.get("top_letter_share"))
    elif context.is_mc and context.accuracy <= 25.0 + pattern["chance_margin_points"]:
        wrong_rows = [r for r in context.records if not r.get("correct")]
        context.add("coherent_wrong", wrong_rows, context.n, accuracy_points=context.accuracy, chance_points=25.0,
                    top_letter_share=context.evidence.get("top_letter_share"))
        context.notes.append("no reference given: coherent_wrong judged against chance (25%), not against a "
                             "reference run")


def _lost_records(context: _Context, comparison) -> list[dict]:
    """The candidate's records the reference got right and it got wrong; for a log-prob regression
    without flips, the samples that moved most."""
    lost = [cand for ref, cand in _pairs(context.reference_records, context.records)
            if ref.get("correct") and not cand.get("correct")]
    if not lost:
        moved = {flip["id"] for flip in comparison.flips}
        lost = [cand for cand in context.records if cand.get("id") in moved]
    return lost


def _result(context: _Context) -> Classification:
    """Findings sorted by the table's order (primary first); no_pattern when nothing matched."""
    rank = {label: i for i, label in enumerate(context.order)}
    context.findings.sort(key=lambda finding: rank.get(finding.label, len(rank)))
    if not context.findings:
        context.add("no_pattern", [], context.n)
    primary = context.findings[0]
    return Classification(label=primary.label, title=primary.title, next_step=primary.next_step,
                          root_cause=primary.root_cause, phase=primary.phase, n=context.n,
                          accuracy=context.accuracy, evidence=context.evidence, findings=context.findings,
                          examples=primary.examples, notes=context.notes)


def classify(records, reference_records=None, world_size_runs: dict | None = None, task: str | None = None,
             alpha: float = 0.05, patterns: str | None = None) -> Classification:
    """Label a run's failure pattern (see the module docstring). ``records``: the run to classify;
    ``reference_records``: the reference run (e.g. PT) on the same samples; ``world_size_runs``:
    {world_size: records or EvalResult} of the same config at several world sizes; ``task``:
    "mmlu" | "gsm8k" | None (inferred: multiple choice when every reference is a letter A-D)."""
    context = _build_context(records, reference_records, world_size_runs, task, alpha, patterns)
    for rule in _OUTPUT_RULES:
        rule(context)
    comparison = _compare_with_reference(context.reference_records, context.records, alpha, context.evidence,
                                         context.notes)
    context.evidence["valid_answer_rate"] = context.valid_answer_rate
    _rule_easy_right_hard_wrong(context, comparison)
    _rule_coherent_wrong(context, comparison)
    return _result(context)


def _random_answers(ref_recs, recs, p: dict) -> dict | None:
    """Multiple choice: on subjects the reference knows (accuracy >= random_known_min), are the
    candidate's letters at chance *and* spread over the letters (not one constant letter, which is
    'consistently wrong')? Then the answers no longer depend on the question: random tokens."""
    by_subj = _by_subject(_pairs(ref_recs, recs))
    known_min = p.get("random_known_min", 0.9)
    known = [x for v in by_subj.values() if sum(bool(r.get("correct")) for r, _ in v) / len(v) >= known_min for x in v]
    if len(known) < p.get("random_min_samples", 10):
        return None
    ref_acc = 100.0 * sum(bool(r.get("correct")) for r, _ in known) / len(known)
    cand_acc = 100.0 * sum(bool(c.get("correct")) for _, c in known) / len(known)
    letters = Counter(c.get("parsed") for _, c in known if c.get("parsed") in LETTERS)
    share = letters.most_common(1)[0][1] / sum(letters.values()) if letters else None
    matched = cand_acc <= 25.0 + p.get("random_band_points", 10.0) and share is not None and \
        share <= p.get("random_max_top_letter_share", 0.6)
    return {"matched": matched, "known_n": len(known), "known_subject_ref_points": ref_acc,
            "known_subject_cand_points": cand_acc, "known_top_letter_share": share,
            "rows": [c for r, c in known if not c.get("correct")]}


def _pts(x):
    return None if x is None else 100.0 * x


def _median(vals):
    vals = sorted(v for v in vals if v is not None)
    if not vals:
        return None
    k = len(vals) // 2
    return vals[k] if len(vals) % 2 else 0.5 * (vals[k - 1] + vals[k])


def _pairs(ref_recs, recs):
    from harness.comparison.pairing import pair_records

    return pair_records(ref_recs, recs).pairs


def _by_subject(pairs) -> dict[str, list]:
    """Paired (reference, candidate) records grouped by the reference's subject."""
    by_subject: dict[str, list] = {}
    for ref, cand in pairs:
        by_subject.setdefault(str(ref.get("subject")), []).append((ref, cand))
    return by_subject


def _net_loss(pairs) -> tuple[int, int, float]:
    """(losses, gains, net drop in points) of the candidate against the reference."""
    losses = sum(1 for ref, cand in pairs if ref.get("correct") and not cand.get("correct"))
    gains = sum(1 for ref, cand in pairs if cand.get("correct") and not ref.get("correct"))
    drop = 100.0 * (losses - gains) / len(pairs) if pairs else 0.0
    return losses, gains, drop


def _lost_in(pairs) -> list[dict]:
    return [cand for ref, cand in pairs if ref.get("correct") and not cand.get("correct")]


def _subject_split(by_subject: dict, easy: list, hard: list, pattern: dict, alpha: float, out: dict) -> dict:
    """Easy subjects against hard ones: a significant loss on the hard subjects, margin_points more
    than on the easy ones, which stay within easy_tolerance_points."""
    from harness.comparison import stats

    easy_pairs = [pair for subject in easy for pair in by_subject[subject]]
    hard_pairs = [pair for subject in hard for pair in by_subject[subject]]
    _, _, easy_drop = _net_loss(easy_pairs)
    hard_losses, hard_gains, hard_drop = _net_loss(hard_pairs)
    p_worse = stats.mcnemar_exact(hard_losses, hard_gains).p_regressed
    out.update(split="subject", easy_drop_points=easy_drop, hard_drop_points=hard_drop, hard_p_worse=p_worse,
               easy_n=len(easy_pairs), hard_n=len(hard_pairs))
    out["matched"] = p_worse < alpha and hard_drop - easy_drop >= pattern.get("margin_points", 5.0) and \
        easy_drop <= pattern.get("easy_tolerance_points", 5.0)
    out["rows"] = _lost_in(hard_pairs)
    out["total"] = len(hard_pairs)
    return out


def _margin_split(pairs, pattern: dict, alpha: float, out: dict, notes: list, easy_min: float) -> dict | None:
    """All samples split at the median of the reference's own confidence (its top1-top2 letter
    margin): a net loss concentrated on the samples the reference was unsure of. Noise that flips
    near ties both ways (bf16 rounding) has no net loss and is not flagged."""
    from harness.comparison import stats
    from harness.comparison.logprobs import sample_divergence

    scored = []
    for ref, cand in pairs:
        margin = sample_divergence(ref, cand).ref_margin
        if margin is not None and math.isfinite(margin):
            scored.append((margin, ref, cand))
    if len(scored) < 20:
        notes.append("easy/hard split not possible: the reference has no subjects on both sides of "
                     f"{easy_min:.0f}% and too few log-prob margins for a per-sample split")
        return None
    scored.sort(key=lambda item: item[0])
    half = len(scored) // 2
    low = [(ref, cand) for _, ref, cand in scored[:half]]
    high = [(ref, cand) for _, ref, cand in scored[half:]]
    low_losses, low_gains, low_drop = _net_loss(low)
    high_losses, high_gains, high_drop = _net_loss(high)
    p_worse = stats.mcnemar_exact(low_losses, low_gains).p_regressed
    out.update(split="sample (reference margin)", margin_median=scored[half][0], low_margin_n=len(low),
               high_margin_n=len(high), low_margin_drop_points=low_drop, high_margin_drop_points=high_drop,
               low_margin_losses=low_losses, low_margin_gains=low_gains, high_margin_losses=high_losses,
               high_margin_gains=high_gains, low_margin_p_worse=p_worse)
    out["matched"] = p_worse < alpha and low_drop - high_drop >= pattern.get("margin_points", 5.0) and \
        high_drop <= pattern.get("easy_tolerance_points", 5.0)
    out["rows"] = _lost_in(low)
    out["total"] = len(low)
    return out


def easy_hard_split(ref_recs, recs, p: dict | None = None, alpha: float = 0.05, notes: list | None = None) -> dict | None:
    """Where the losses fall by difficulty: subjects split by the reference's per-subject accuracy;
    when no subject falls on each side, samples split by the reference's own top1-top2 margin.
    Returns the numbers and ``matched`` (the easy-right/hard-wrong pattern), or None without pairs."""
    pattern = p if p is not None else load_patterns()["patterns"]["easy_right_hard_wrong"]
    notes = notes if notes is not None else []
    pairs = _pairs(ref_recs, recs)
    if not pairs:
        return None
    by_subject = _by_subject(pairs)
    chance = 25.0
    easy_min = 100.0 * pattern.get("easy_min", 0.8)
    subject_accuracy = {subject: 100.0 * sum(bool(ref.get("correct")) for ref, _ in subject_pairs) / len(subject_pairs)
                        for subject, subject_pairs in by_subject.items()}
    # subjects at chance in the reference carry no information about a fault
    informative = {subject for subject, accuracy in subject_accuracy.items() if accuracy >= chance + 15.0}
    easy = sorted(subject for subject in informative if subject_accuracy[subject] >= easy_min)
    hard = sorted(subject for subject in informative if subject_accuracy[subject] < easy_min)
    out = {"split": None, "easy_subjects": easy, "hard_subjects": hard,
           "at_chance_in_reference": sorted(set(subject_accuracy) - informative), "matched": False}
    if easy and hard:
        return _subject_split(by_subject, easy, hard, pattern, alpha, out)
    return _margin_split(pairs, pattern, alpha, out, notes, easy_min)


def _world_size_finding(world_size_runs: dict, alpha: float, notes: list) -> dict | None:
    from harness.comparison.verdict import VerdictOptions, compare_runs

    try:
        runs = {int(k): v for k, v in world_size_runs.items()}
    except (TypeError, ValueError):
        raise HarnessError("world_size_runs keys must be world sizes (integers), e.g. {1: run, 2: run}") from None
    if 1 not in runs or len(runs) < 2:
        notes.append("world-size dependence needs runs at world_size 1 and at least one larger world size")
        return None
    base, base_status = _records_of(runs[1])
    if base_status != "ok" or not base:
        notes.append("world-size dependence not assessed: the world_size 1 run is unresolved")
        return None
    per_ws, rows, total, bad = {}, [], 0, []
    for ws in sorted(runs):
        if ws == 1:
            continue
        c = compare_runs(runs[1], runs[ws], options=VerdictOptions(alpha=alpha, on_invalid="unresolved"))
        per_ws[ws] = {"verdict": c.verdict, "accuracy_points": c.accuracy.get("cand_points"),
                      "diff_points": c.accuracy.get("diff_points"), "p_worse": c.mcnemar.get("p_regressed"),
                      "kl_mean": c.logprob.get("kl_mean")}
        if c.verdict == "regressed":
            bad.append(ws)
            recs, _ = _records_of(runs[ws])
            lost = {f["id"] for f in c.flips if f["ref_correct"] and not f["cand_correct"]}
            rows += [r for r in recs if r.get("id") in lost]
            total += c.n
    if not bad:
        return None
    base_acc = 100.0 * sum(bool(r.get("correct")) for r in base) / len(base)
    return {"rows": rows, "total": total, "world_size_1_points": base_acc, "failing_world_sizes": bad,
            "per_world_size": per_ws}
