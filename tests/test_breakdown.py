"""Phase-5 breakdown: tables, flags on constructed data, and the written files."""
import json
import random

import pandas as pd
import pytest

from harness.analysis.breakdown import breakdown_tables, write_breakdown
from harness.errors import HarnessError
from harness.evaluation.records import prompt_hash

LETTERS = "ABCD"


def rec(subject, i, gold, ans, tokens=100):
    return {"id": f"mmlu/{subject}/{i}", "subject": subject, "reference": gold,
            "prompt_hash": prompt_hash(f"{subject}/{i}"), "prompt_token_hash": None, "prompt_tokens": tokens,
            "output": " " + ans, "parsed": ans, "correct": ans == gold, "answer_logprobs": None}


def wrong(gold):
    return LETTERS[(LETTERS.index(gold) + 1) % 4]


def reference(subjects, n_per=60, acc=0.8, seed=0, tokens=lambda s, i: 100 + i):
    rng = random.Random(seed)
    out = []
    for s in subjects:
        a = acc[s] if isinstance(acc, dict) else acc
        for i in range(n_per):
            gold = LETTERS[rng.randrange(4)]
            out.append(rec(s, i, gold, gold if rng.random() < a else wrong(gold), tokens(s, i)))
    return out


def degrade(ref, pick, seed=1):
    """Candidate = reference, except right answers for which pick(record, rng) is true become wrong."""
    rng = random.Random(seed)
    return [dict(r, output=" " + wrong(r["reference"]), parsed=wrong(r["reference"]), correct=False)
            if r["correct"] and pick(r, rng) else dict(r) for r in ref]


SUBJ = ["anatomy", "astronomy", "virology", "marketing", "philosophy", "sociology"]


def test_uniform_drop_flag():
    ref = reference(SUBJ)
    cand = degrade(ref, lambda r, rng: rng.random() < 0.2)
    t = breakdown_tables(ref, cand)
    f = t["flags"]["uniform_drop"]
    assert f["flag"] and f["share_down"] >= 2 / 3 and f["p_worse"] < 0.05
    assert not t["flags"]["near_chance"]["flag"]
    # MMLU categories come from the evaluator's table
    assert set(t["per_subject"]["category"]) >= {"STEM", "other (business, health, misc.)"}
    # a clean candidate flags nothing
    t0 = breakdown_tables(ref, [dict(r) for r in ref])
    assert not any(v["flag"] for v in t0["flags"].values())


def test_concentrated_drop_is_not_uniform_and_near_chance_is_flagged():
    ref = reference(SUBJ, acc=0.9)
    cand = degrade(ref, lambda r, rng: r["subject"] == "virology" and rng.random() < 0.75)
    t = breakdown_tables(ref, cand)
    assert not t["flags"]["uniform_drop"]["flag"]
    nc = t["flags"]["near_chance"]
    assert nc["flag"] and nc["subjects"] == ["virology"]
    row = t["per_subject"].set_index("subject").loc["virology"]
    assert row["delta"] < -50 and row["p_worse"] < 1e-6


def test_near_chance_in_both_runs_is_listed_not_flagged():
    ref = reference(SUBJ, acc={s: (0.25 if s == "sociology" else 0.85) for s in SUBJ}, seed=3)
    t = breakdown_tables(ref, [dict(r) for r in ref])
    nc = t["flags"]["near_chance"]
    assert not nc["flag"] and "sociology" in nc["near_chance_in_both"]


def test_easy_right_hard_wrong_flag():
    acc = {"anatomy": 0.97, "astronomy": 0.97, "virology": 0.97, "marketing": 0.6, "philosophy": 0.6,
           "sociology": 0.6}
    ref = reference(SUBJ, n_per=80, acc=acc, seed=5)
    cand = degrade(ref, lambda r, rng: acc[r["subject"]] < 0.9 and rng.random() < 0.5)
    t = breakdown_tables(ref, cand)
    f = t["flags"]["easy_right_hard_wrong"]
    assert f["flag"] and f["split"] == "subject" and f["hard_drop_points"] > 15


def test_length_correlated_flag():
    ref = reference(SUBJ, tokens=lambda s, i: 100 + 10 * i)
    cand = degrade(ref, lambda r, rng: r["prompt_tokens"] > 600 and rng.random() < 0.6)  # only long prompts lose
    t = breakdown_tables(ref, cand)
    f = t["flags"]["length_correlated"]
    assert f["flag"] and f["lost_median_tokens"] > f["kept_median_tokens"]
    assert len(t["by_prompt_length"]) == 4
    # a drop unrelated to length does not flag it
    cand2 = degrade(ref, lambda r, rng: rng.random() < 0.2)
    assert not breakdown_tables(ref, cand2)["flags"]["length_correlated"]["flag"]


def test_write_breakdown_files(tmp_path):
    ref = reference(SUBJ)
    cand = degrade(ref, lambda r, rng: rng.random() < 0.2)
    res = write_breakdown(ref, cand, tmp_path / "bd", labels=("hf", "ad-emulator"))
    df = pd.read_csv(res["per_subject_csv"])
    assert len(df) == len(SUBJ) and {"subject", "ref_acc", "cand_acc", "delta", "p_two_sided"} <= set(df.columns)
    assert len(pd.read_csv(res["per_category_csv"])) >= 2
    md = open(res["markdown"]).read()
    assert "uniform_drop**: FLAGGED" in md and "| subject |" in md
    with open(res["plot"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    flags = json.load(open(res["flags_json"]))
    assert flags["flags"]["uniform_drop"]["flag"] is True and res["flags"]["uniform_drop"]["flag"]


def test_mismatched_prompts_refuse():
    ref = reference(SUBJ[:2], n_per=5)
    cand = [dict(r, prompt_hash="zz") for r in ref]
    with pytest.raises(HarnessError):
        breakdown_tables(ref, cand)


def test_breakdown_command(tmp_path, capsys):
    from harness.cli import main
    from harness.evaluation.rundir import write_run

    ref = reference(SUBJ)
    cand = degrade(ref, lambda r, rng: rng.random() < 0.2)
    for name, recs in (("a", ref), ("b", cand)):
        write_run(tmp_path / name, {"label": name, "task": "mmlu"}, {"status": "ok", "records": recs})
    assert main(["breakdown", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "bd")]) == 0
    out = capsys.readouterr().out
    assert "uniform_drop: FLAGGED" in out and (tmp_path / "bd" / "breakdown.png").is_file()


def test_constant_length_subjects_do_not_fake_a_length_effect():
    # every subject has one prompt length (as in the demo set); only one subject loses answers
    lens = {s: 100 + 50 * k for k, s in enumerate(SUBJ)}
    ref = reference(SUBJ, tokens=lambda s, i: lens[s])
    cand = degrade(ref, lambda r, rng: r["subject"] == "anatomy" and rng.random() < 0.3)
    f = breakdown_tables(ref, cand)["flags"]["length_correlated"]
    assert f["p_lost_longer_within_subject"] is None and not f["flag"]


def test_one_subject_out_of_forty_with_an_uncorrected_p_below_alpha_is_not_coloured():
    # 40 subjects, one with 6 losses and no gain (McNemar p = 0.03 on its own): after
    # Benjamini-Hochberg over the 40 subjects (q = 0.03 * 40) it is neither coloured nor flagged
    subjects = [f"s{i:02d}" for i in range(40)]
    ref = reference(subjects, n_per=30, acc=0.9)
    lost = {"s07": 6}
    cand, seen = [], {}
    for r in ref:
        k = seen.get(r["subject"], 0)
        if r["correct"] and k < lost.get(r["subject"], 0):
            seen[r["subject"]] = k + 1
            cand.append(dict(r, output=" " + wrong(r["reference"]), parsed=wrong(r["reference"]), correct=False))
        else:
            cand.append(dict(r))
    t = breakdown_tables(ref, cand)
    row = t["per_subject"].set_index("subject").loc["s07"]
    assert row["p_two_sided"] < 0.05 and row["q_two_sided"] > 0.05
    assert not t["per_subject"]["significant"].any()
    assert not t["flags"]["near_chance"]["subjects"]
