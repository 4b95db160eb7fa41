"""Pairing refuses to compare different prompts and reports mismatches loudly."""
import pytest

from harness.errors import HarnessError
from harness.comparison.pairing import PairingError, pair_records, require_valid
from harness.evaluation.records import prompt_hash, token_hash


def rec(i, prompt=None, tokens=None, correct=True):
    prompt = prompt or f"question {i}\nAnswer:"
    return {"id": f"demo/s/{i}", "subject": "s", "reference": "A", "prompt_hash": prompt_hash(prompt),
            "prompt_token_hash": token_hash(tokens) if tokens is not None else None, "correct": correct}


def test_identical_runs_pair_completely():
    a = [rec(i, tokens=[1, 2, i]) for i in range(10)]
    p = pair_records(a, [dict(r) for r in a])
    assert p.valid and p.n == 10 and p.token_checked == 10 and p.problems() == []


def test_different_prompt_text_is_invalid_with_counts_and_examples():
    a = [rec(i) for i in range(10)]
    b = [rec(i) for i in range(7)] + [rec(i, prompt=f"other {i}") for i in range(7, 10)]
    p = pair_records(a, b)
    assert not p.valid
    assert p.prompt_mismatch == ["demo/s/7", "demo/s/8", "demo/s/9"]
    text = " ".join(p.problems())
    assert "PROMPT MISMATCH: 3 of 10" in text and "demo/s/7" in text
    with pytest.raises(PairingError) as ei:
        require_valid(p)
    assert isinstance(ei.value, HarnessError) and "PROMPT MISMATCH" in str(ei.value)


def test_same_text_different_token_ids_is_invalid():
    a = [rec(i, tokens=[1, 2, 3]) for i in range(4)]
    b = [rec(i, tokens=[1, 1, 2, 3]) for i in range(4)]  # e.g. a second BOS
    p = pair_records(a, b)
    assert not p.valid and len(p.token_mismatch) == 4
    assert "TOKEN MISMATCH: 4 of 4" in p.problems()[0]


def test_token_hash_checked_only_where_both_have_it():
    a = [rec(i, tokens=[1, i]) for i in range(4)]
    b = [rec(i) for i in range(4)]  # no token ids (e.g. an engine that does not report them)
    p = pair_records(a, b)
    assert p.valid and p.token_checked == 0 and p.n == 4


def test_unpaired_ids_reported_but_not_invalid():
    a = [rec(i) for i in range(6)]
    b = [rec(i) for i in range(2, 8)]
    p = pair_records(a, b)
    assert p.valid and p.n == 4 and len(p.only_ref) == 2 and len(p.only_cand) == 2
    assert "UNPAIRED: 2 samples only in the reference" in p.problems()[0]


def test_no_common_ids_and_duplicates_are_invalid():
    p = pair_records([rec(i) for i in range(3)], [rec(i) for i in range(5, 8)])
    assert not p.valid and any("NO COMMON SAMPLES" in x for x in p.problems())
    p = pair_records([rec(1), rec(1), rec(2)], [rec(1), rec(2)])
    assert not p.valid and p.duplicates == ["demo/s/1"]
