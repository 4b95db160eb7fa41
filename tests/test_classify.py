"""Phase-2 classifier on constructed record sets, one per failure family (and emulator runs when present)."""
import math
import random

import pytest

from harness.analysis.classify import classify, load_patterns, tail_repeat_cover, word_likeness
from harness.errors import HarnessError
from harness.evaluation.records import prompt_hash

LETTERS = "ABCD"


def mc(i, gold, out, subject="s", lp=None, top=None, nonfinite=False, correct=None):
    text = out.strip()
    parsed = text[:1] if text[:1] in LETTERS else None
    return {"id": f"mmlu/{subject}/{i}", "subject": subject, "reference": gold,
            "prompt_hash": prompt_hash(f"{subject}{i}"), "prompt_token_hash": None, "prompt_tokens": 100,
            "output": out, "token_ids": [1, 2], "finish_reason": "length", "parsed": parsed,
            "correct": text.startswith(gold) if correct is None else correct,
            "answer_logprobs": lp, "top_logprobs": top, "nonfinite": nonfinite, "detail": {}}


def lp_for(top, conf=0.9):
    rest = (1 - conf) / 3
    return {k: math.log(conf if k == top else rest) for k in LETTERS}


def reference_run(n=120, subjects=("easy1", "easy2", "hard1", "hard2"), seed=0):
    rng = random.Random(seed)
    recs = []
    for i in range(n):
        s = subjects[i % len(subjects)]
        gold = LETTERS[rng.randrange(4)]
        right = rng.random() < (0.97 if s.startswith("easy") else 0.6)
        ans = gold if right else LETTERS[(LETTERS.index(gold) + 1) % 4]
        conf = 0.95 if s.startswith("easy") else 0.5
        recs.append(mc(i, gold, " " + ans, s, lp=lp_for(ans, conf), top=[{" " + ans: math.log(conf), " X": -3.0}]))
    return recs


def test_pattern_table_has_every_issue_label_with_next_step():
    cfg = load_patterns()
    for label in ("coherent_wrong", "meta_text", "empty_or_eos", "gibberish", "easy_right_hard_wrong", "nonfinite",
                  "world_size_dependence", "repetition_loop", "truncated", "accuracy_extreme", "parser_mismatch",
                  "random_answers", "no_pattern"):
        assert label in cfg["order"] and cfg["patterns"][label]["next_step"]


def test_measures():
    assert word_likeness("The answer is B") == 1.0
    assert word_likeness("xkcdqwrt zzzq bbbbb") < 0.5
    assert word_likeness("") is None
    assert tail_repeat_cover([5, 1, 2, 1, 2, 1, 2, 1, 2]) == pytest.approx(8 / 9)
    assert tail_repeat_cover([1, 2, 3, 4, 5, 6]) == 0.0


def test_same_as_reference_is_no_pattern():
    ref = reference_run(n=600)  # enough pairs for the verdict's equivalence test
    c = classify([dict(r) for r in ref], reference_records=ref)
    assert c.label == "no_pattern", c.summary_lines()
    assert c.evidence["verdict_vs_reference"] == "same"


def test_nonfinite_logprobs():
    ref = reference_run()
    cand = [dict(r, answer_logprobs={k: float("nan") for k in LETTERS}, nonfinite=True) for r in ref]
    c = classify(cand, reference_records=ref)
    assert c.label == "nonfinite"
    assert c.findings[0].count == len(ref) and c.findings[0].evidence["at_first_position"] == len(ref)
    assert "AD_DUMP_GRAPHS_DIR" in c.next_step


def test_empty_or_eos():
    ref = reference_run()
    cand = [dict(r, output="", parsed=None, correct=False) if i % 2 == 0 else dict(r) for i, r in enumerate(ref)]
    c = classify(cand, reference_records=ref)
    assert c.label == "empty_or_eos" and c.findings[0].count == len(ref) // 2
    assert "KV" in c.root_cause


def test_gibberish_measured_by_word_likeness_and_reference_topk():
    ref = reference_run()
    rng = random.Random(1)
    junk = ["qzx", "vvvbn", "\ufffd\ufffd", "xkcdq", "zzzt", "#@!"]
    cand = [dict(r, output=" " + rng.choice(junk), parsed=None, correct=False,
                 top=None, top_logprobs=[{"qz": -4.0, "k": -4.1}]) for r in ref]
    c = classify(cand, reference_records=ref)
    assert c.label == "gibberish"
    assert c.findings[0].evidence["outside_reference_topk"] == len(ref)
    # without a reference: word statistics alone still find it
    c2 = classify([dict(r, top_logprobs=None) for r in cand])
    assert c2.label == "gibberish"


def test_meta_text():
    ref = reference_run()
    outs = [" Okay,", " The user", " Let me", " The answer"]
    cand = [dict(r, output=outs[i % 4], parsed=None, correct=False) for i, r in enumerate(ref)]
    c = classify(cand, reference_records=ref)
    assert c.label == "meta_text" and c.findings[0].count == len(ref)
    assert "Phase 0" in c.next_step or c.phase == "0"


def test_parser_mismatch_right_letter_not_extracted():
    ref = reference_run()
    cand = [dict(r, output=f" ({r['reference']})", parsed=None, correct=False) if i % 3 == 0 else dict(r)
            for i, r in enumerate(ref)]
    c = classify(cand, reference_records=ref)
    assert c.label == "parser_mismatch"
    assert c.findings[0].count == len(ref) // 3
    assert all("(" in ex["output"] for ex in c.findings[0].examples)


def gen(i, out, gold="42", finish="length", ids=None, correct=False, parsed=None):
    return {"id": f"gsm8k/{i}", "subject": "gsm8k", "reference": gold, "prompt_hash": prompt_hash(str(i)),
            "prompt_token_hash": None, "output": out, "token_ids": ids or list(range(40)), "finish_reason": finish,
            "parsed": parsed, "correct": correct, "answer_logprobs": None, "top_logprobs": None, "nonfinite": False}


def test_truncated_generation_but_never_mmlu():
    recs = [gen(i, "Natalia sold 48 clips in April and then in May she sold half as many so we compute") for i in range(30)]
    for r in recs:
        r["parsed"] = None
    c = classify(recs, task="gsm8k")
    assert "truncated" in c.labels
    # MMLU stops at max_tokens 2 by design: never labelled truncated
    mm = [mc(i, "A", " B") for i in range(30)]
    c2 = classify(mm, task="mmlu")
    assert "truncated" not in c2.labels and any("max_tokens" in n for n in c2.notes)


def test_repetition_loop():
    loop_ids = [7, 8, 9] + [3, 4] * 20
    recs = [gen(i, "the the the the the the the the", ids=loop_ids, finish="length") for i in range(20)]
    ref = [gen(i, "She sold 72 clips. #### 72", gold="72", finish="stop", ids=list(range(20)), correct=True,
               parsed="72") for i in range(20)]
    c = classify(recs, reference_records=ref, task="gsm8k")
    assert "repetition_loop" in c.labels
    assert c.label in ("repetition_loop", "gibberish")


def test_accuracy_extreme():
    recs = [mc(i, "A", " A") for i in range(30)]
    c = classify(recs)
    assert c.label == "accuracy_extreme"


def test_coherent_wrong_against_reference_and_without():
    ref = reference_run()
    rng = random.Random(3)
    cand = []
    for r in ref:
        if r["correct"] and rng.random() < 0.5:
            wrong = LETTERS[(LETTERS.index(r["reference"]) + 2) % 4]
            cand.append(dict(r, output=" " + wrong, parsed=wrong, correct=False, answer_logprobs=lp_for(wrong)))
        else:
            cand.append(dict(r))
    c = classify(cand, reference_records=ref)
    assert c.label == "coherent_wrong", c.summary_lines()
    assert c.findings[0].evidence["losses"] > 20
    # without a reference: valid letters at chance level
    chance = [mc(i, LETTERS[i % 4], " " + LETTERS[(i + (i % 5 != 0)) % 4]) for i in range(80)]  # 20% right
    c2 = classify(chance)
    assert c2.label == "coherent_wrong" and any("chance" in n for n in c2.notes)


def test_easy_right_hard_wrong_by_subject():
    ref = reference_run(n=400)
    rng = random.Random(4)
    cand = []
    for r in ref:
        if r["subject"].startswith("hard") and r["correct"] and rng.random() < 0.5:
            wrong = LETTERS[(LETTERS.index(r["reference"]) + 1) % 4]
            cand.append(dict(r, output=" " + wrong, parsed=wrong, correct=False))
        else:
            cand.append(dict(r))
    c = classify(cand, reference_records=ref)
    assert c.label == "easy_right_hard_wrong", c.summary_lines()
    f = c.findings[0]
    assert f.evidence["split"] == "subject" and f.evidence["hard_drop_points"] > 10
    assert "coherent_wrong" in c.labels  # also true; the more specific label wins


def test_world_size_dependence():
    ref = reference_run()
    def wrong(r):  # the answer and its letter distribution both moved to the next letter
        letter = LETTERS[(LETTERS.index(r["reference"]) + 1) % 4]
        return dict(r, output=" " + letter, correct=False, parsed=letter, answer_logprobs=lp_for(letter, 0.9))

    ws2 = [wrong(r) for r in ref]
    c = classify(ref, world_size_runs={1: ref, 2: ws2})
    assert "world_size_dependence" in c.labels
    f = [x for x in c.findings if x.label == "world_size_dependence"][0]
    assert f.evidence["failing_world_sizes"] == [2] and "4c" in f.phase
    c2 = classify(ref, world_size_runs={1: ref, 2: [dict(r) for r in ref]})
    assert "world_size_dependence" not in c2.labels


def test_unresolved_or_empty_run_is_a_clear_error():
    with pytest.raises(HarnessError):
        classify([])
    with pytest.raises(HarnessError):
        classify({"status": "unresolved", "records": []})


def test_classify_command(tmp_path, capsys):
    from harness.cli import main
    from harness.evaluation.rundir import write_run

    ref = reference_run()
    cand = [dict(r, output=" Okay,", parsed=None, correct=False) for r in ref]
    for name, recs in (("ref", ref), ("cand", cand)):
        write_run(tmp_path / name, {"label": name, "task": "mmlu"}, {"status": "ok", "records": recs})
    assert main(["classify", str(tmp_path / "cand"), "--reference", str(tmp_path / "ref")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pattern: meta_text") and "next step (phase 0)" in out and "e.g. mmlu/" in out
    assert main(["classify", str(tmp_path / "cand"), "--json"]) == 0
    assert '"label": "meta_text"' in capsys.readouterr().out
    assert main(["classify", str(tmp_path / "cand"), "--world-size", "two=x"]) == 2


# -- emulator fault runs (the demo model + ad-emulator; skipped when absent) ---------------------


@pytest.fixture(scope="module")
def emulator_runs():
    from harness.paths import DEMO_MMLU, DEMO_MODEL

    if not (DEMO_MODEL / "model.safetensors").is_file():
        pytest.skip("demo model not built")
    pytest.importorskip("harness.backends.emulator.backend")
    from harness.evaluation.run import run_evaluation
    from harness.evaluation.spec import EvalSpec

    def ev(backend, config, n=200):  # enough pairs for the verdict to call a 5-7 point fault
        res = run_evaluation(EvalSpec(backend=backend, model=str(DEMO_MODEL), task="mmlu", config=config,
                                      dataset=str(DEMO_MMLU), samples=n, seed=0))
        assert res.status == "ok", res.error
        return res.records

    return ev, ev("hf", {})


@pytest.mark.parametrize("host,fault,extra,expected", [
    ("match_repeat_kv", "nan_on_prefill", {}, {"nonfinite"}),
    ("insert_cached_attention", "kv_cache_garbage", {}, {"empty_or_eos"}),
    ("optimize_rope", "rope_applied_twice", {}, {"random_answers"}),
    ("fuse_silu_mul", "compiled_lowering_bug", {}, {"coherent_wrong"}),
    ("match_attention_layout", "wrong_softmax_scale", {}, {"coherent_wrong", "easy_right_hard_wrong"}),
    ("fuse_rmsnorm", "hardcoded_eps", {}, {"coherent_wrong", "easy_right_hard_wrong"}),
    (None, None, {}, {"no_pattern"}),
])
def test_emulator_fault_families(emulator_runs, host, fault, extra, expected):
    ev, ref = emulator_runs
    config = {"transforms": {host: {"fault": fault, **extra}}} if host else {}
    c = classify(ev("ad-emulator", config), reference_records=ref, task="mmlu")
    assert c.label in expected, c.summary_lines()
    if fault == "rope_applied_twice":  # valid letters, chosen at random: not "gibberish" text
        assert c.findings[0].title == "random answers (multiple choice)"
        assert c.evidence["valid_answers"] == c.n and "gibberish" not in [f.label for f in c.findings]
    if fault == "nan_on_prefill":
        assert c.findings[0].evidence["at_first_position"] == c.n  # NaN already on the prefill


def test_emulator_world_size_dependence(emulator_runs):
    ev, ref = emulator_runs
    cfg = {"transforms": {"sharding_transform_executor": {"fault": "head_reshape_stride"}}}
    ws1, ws2 = ev("ad-emulator", {**cfg, "world_size": 1}), ev("ad-emulator", {**cfg, "world_size": 2})
    c = classify(ws2, reference_records=ref, world_size_runs={1: ws1, 2: ws2}, task="mmlu")
    assert c.label == "world_size_dependence" and "4c" in c.phase
    assert c.findings[0].evidence["failing_world_sizes"] == [2]
