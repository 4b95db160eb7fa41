"""Verdicts on constructed paired runs: same, regressed, improved, inconclusive, unresolved."""
import json
import math
import random
import re

import pytest

from harness.errors import HarnessError
from harness.comparison.pairing import PairingError
from harness.evaluation.records import prompt_hash
from harness.comparison.verdict import Comparison, NoiseFloor, VerdictOptions, compare_runs

LETTERS = "ABCD"


def record(i, gold, probs, subject="s", nonfinite=False):
    lp = {k: (float("nan") if nonfinite else math.log(v)) for k, v in zip(LETTERS, probs)}
    top = LETTERS[max(range(4), key=lambda j: probs[j])]
    return {"id": f"t/{subject}/{i}", "subject": subject, "reference": gold, "prompt_hash": prompt_hash(f"q{i}"),
            "prompt_token_hash": None, "prompt_tokens": 50 + i, "output": " " + top, "token_ids": [LETTERS.index(top)],
            "finish_reason": "length", "parsed": top, "correct": top == gold, "answer_logprobs": lp,
            "top_logprobs": None, "nonfinite": nonfinite}


def softmax(z):
    m = max(z)
    e = [math.exp(x - m) for x in z]
    s = sum(e)
    return [x / s for x in e]


def make_run(n, seed=0, shift=0.0, noise=0.0, flip_frac=0.0, subject="s"):
    """A reference-like run (seeded logits); shift lowers the gold logit, noise adds jitter,
    flip_frac moves that share of samples confidently to a wrong letter (a real fault)."""
    rng = random.Random(seed)
    jit = random.Random(seed + 1000)
    out = []
    for i in range(n):
        gold = LETTERS[rng.randrange(4)]
        z = [rng.gauss(0, 1.5) for _ in range(4)]
        z[LETTERS.index(gold)] += 2.0
        z = [x + jit.gauss(0, noise) for x in z]
        z[LETTERS.index(gold)] -= shift
        if jit.random() < flip_frac:
            wrong = (LETTERS.index(gold) + 1) % 4
            z[wrong] = max(z) + 3.0
        out.append(record(i, gold, softmax(z), subject))
    return out


def strip_lp(recs):
    return [{**r, "answer_logprobs": None} for r in recs]


def test_identical_runs_are_same_only_once_the_sample_can_show_it():
    ref = make_run(600)
    cmp_ = compare_runs(ref, [dict(r) for r in ref])
    assert cmp_.verdict == "same" and cmp_.primary == "expected_accuracy"
    assert cmp_.mcnemar["b"] == cmp_.mcnemar["c"] == 0
    assert cmp_.logprob["kl_max"] == 0.0
    assert "equivalence test" in cmp_.reasons[0]
    # also without log-probs (accuracy only): Tango's interval at b = c = 0 is +-z^2 / (n + z^2)
    acc_only = compare_runs(strip_lp(ref), strip_lp(ref))
    assert acc_only.verdict == "same" and acc_only.primary == "accuracy"
    # at n = 100 a fault on 2% of the prompts could be absent from the sample: not "same" yet, and the
    # comparison says how many samples would settle it
    small = make_run(100)
    c = compare_runs(small, [dict(r) for r in small])
    assert c.verdict == "inconclusive" and 250 <= c.n_needed <= 600, (c.verdict, c.n_needed)
    assert "samples would decide it" in c.summary_lines()[0]


def test_tiny_noise_below_tolerance_is_same():
    ref = make_run(600)
    cand = make_run(600, noise=0.005)  # bf16-like jitter on the logits
    c = compare_runs(ref, cand)
    assert c.verdict == "same", c.summary_lines()
    assert 0 < c.logprob["kl_mean"] < 1e-3


def test_clear_regression_is_regressed_with_numbers():
    ref = make_run(200)
    cand = make_run(200, flip_frac=0.3)
    c = compare_runs(ref, cand)
    assert c.verdict == "regressed"
    assert c.evidence == ["expected_accuracy", "accuracy"]
    assert c.accuracy["diff_points"] < -10 and c.expected_accuracy["estimate_points"] < -10
    assert c.params["alpha_per_route"] == 0.025  # Bonferroni over the two routes
    text = "\n".join(c.summary_lines())
    for needle in ("REGRESSED", "McNemar exact: b=", "expected accuracy (right answer's probability)",
                   "KL(ref||cand)", "TensorRT-LLM unpaired gate at n=200", "minimum detectable effect 12.4"):
        assert needle in text
    json.dumps(c.to_dict(), allow_nan=False)  # JSON-safe


def test_accuracy_only_regression_uses_mcnemar():
    ref = make_run(200)
    cand = make_run(200, flip_frac=0.3)
    c = compare_runs(strip_lp(ref), strip_lp(cand))
    assert c.verdict == "regressed" and c.evidence == ["accuracy"] and c.primary == "accuracy"
    assert c.params["alpha_per_route"] == 0.05  # one route: no Bonferroni split


def test_improvement_is_improved():
    ref = make_run(200, flip_frac=0.3)
    cand = make_run(200)
    assert compare_runs(ref, cand).verdict == "improved"


def test_right_answer_shift_without_much_accuracy_change_is_called_by_expected_accuracy():
    # the gold logit drops by 1 nat everywhere: the right answer is believed less
    ref = make_run(100)
    cand = make_run(100, shift=1.0)
    c = compare_runs(ref, cand)
    assert c.verdict == "regressed" and "expected_accuracy" in c.evidence
    assert c.logprob["delta_gold_prob_mean"] < 0
    # the reverse move is an improvement, never called a regression
    c2 = compare_runs(ref, make_run(100, shift=-1.0))
    assert c2.verdict == "improved"


def _swap_two_wrong_letters(ref):
    cand = []
    for r in ref:
        p = [math.exp(r["answer_logprobs"][k]) for k in LETTERS]
        others = [j for j in range(4) if j != LETTERS.index(r["reference"])]
        p[others[0]], p[others[1]] = p[others[1]], p[others[0]]
        cand.append(record(int(r["id"].rsplit("/", 1)[1]), r["reference"], p))
    return cand


def test_divergence_alone_never_decides_the_verdict():
    # two wrong letters swapped: KL far beyond tolerance, the right answer's probability and the
    # accuracy unchanged. "Different" is not "worse": a diagnostic, not a regression.
    ref = make_run(600)
    c = compare_runs(ref, _swap_two_wrong_letters(ref))
    assert c.logprob_test["divergent"] and c.differs
    assert c.verdict == "same"
    assert "does not decide the verdict" in "\n".join(c.summary_lines())


def test_small_underpowered_difference_is_inconclusive_not_same():
    ref = strip_lp(make_run(20))
    for r in ref[:3]:
        r["correct"] = True
    cand = [dict(r) for r in ref]
    for r in cand[:3]:  # three losses out of 20: McNemar p = 0.25
        r["correct"] = False
    c = compare_runs(ref, cand)
    assert c.mcnemar["p_two_sided"] == pytest.approx(0.25)
    assert c.verdict == "inconclusive" and c.n_needed and c.n_needed > 20
    assert "neither a change of at least 1 points nor equivalence" in c.reasons[0]


def test_min_effect_blocks_small_significant_changes():
    ref = make_run(2000)
    cand = make_run(2000, flip_frac=0.02)
    c = compare_runs(strip_lp(ref), strip_lp(cand), options=VerdictOptions(min_effect=5.0))
    assert c.mcnemar["p_two_sided"] < 0.05
    assert c.verdict != "regressed"
    assert any("below the minimum effect of 5" in r for r in c.reasons)
    assert compare_runs(strip_lp(ref), strip_lp(cand), options=VerdictOptions(min_effect=0.5)).verdict == "regressed"


def test_same_is_an_equivalence_claim_with_its_error_rate():
    # a 1.5-point loss confined to ~2% of the prompts: at small n the sample often holds none of them and
    # every observed change is noise. "same" must still stay below alpha at every n.
    rng = random.Random(11)
    for n in (50, 100, 200):
        same = 0
        for draw in range(60):
            ref = make_run(n, seed=1000 + draw)
            cand = make_run(n, seed=1000 + draw, noise=0.05)
            for r_ref, r_cand in zip(ref, cand):
                if rng.random() < 0.02 and r_ref["correct"]:  # the fault: this prompt answered wrong, confidently
                    wrong = LETTERS[(LETTERS.index(r_ref["reference"]) + 1) % 4]
                    probs = [0.97 if k == wrong else 0.01 for k in LETTERS]
                    r_cand.update(record(int(r_cand["id"].rsplit("/", 1)[1]), r_cand["reference"], probs))
            same += compare_runs(ref, cand).verdict == "same"
        assert same <= 3, (n, same)  # <= 5% of 60 draws


def test_routes_disagreeing_in_direction_say_so():
    # accuracy improves by flipping near ties to the right letter, while the right answer loses
    # probability mass everywhere else: the verdict must not hide the disagreement
    ref = make_run(800)
    cand = []
    for r in ref:
        p = [math.exp(r["answer_logprobs"][k]) for k in LETTERS]
        g = LETTERS.index(r["reference"])
        if not r["correct"] and max(p) - p[g] < 0.15:
            p[g] = max(p) + 0.02  # a near tie tipped to the right answer
        else:
            p[g] *= 0.8  # the right answer believed less
        s = sum(p)
        cand.append(record(int(r["id"].rsplit("/", 1)[1]), r["reference"], [x / s for x in p]))
    c = compare_runs(ref, cand)
    ea, acc = c.expected_accuracy["estimate_points"], c.accuracy["diff_points"]
    assert ea < 0 < acc
    assert any(re.search("disagree|moved the other way", r) for r in c.reasons), c.reasons


def test_unresolved_run_or_empty_run_is_unresolved():
    ref = make_run(10)
    c = compare_runs(ref, {"status": "unresolved", "records": [], "error": "engine hang after 600 s"})
    assert c.verdict == "unresolved" and "hang" in c.reasons[0]
    assert compare_runs(ref, []).verdict == "unresolved"
    assert compare_runs([], ref).verdict == "unresolved"
    assert "UNRESOLVED" in c.summary_lines()[0]
    json.dumps(c.to_dict(), allow_nan=False)


def test_mismatched_prompts_refuse_to_compare():
    ref = make_run(10)
    cand = [{**r, "prompt_hash": "x" + r["prompt_hash"]} for r in ref]
    with pytest.raises(PairingError) as ei:
        compare_runs(ref, cand)
    assert isinstance(ei.value, HarnessError)
    assert compare_runs(ref, cand, options=VerdictOptions(on_invalid="unresolved")).verdict == "unresolved"


def test_nan_logprobs_in_candidate_count_as_divergent_and_worse():
    ref = make_run(40)
    cand = [record(int(r["id"].rsplit("/", 1)[1]), r["reference"], [0.25] * 4, nonfinite=True) for r in ref]
    c = compare_runs(ref, cand)
    assert c.logprob["n_nonfinite_cand"] == 40
    assert c.verdict == "regressed"


def test_aa_noise_floor_caps_calls_and_raises_the_kl_tolerance():
    ref = make_run(600)
    cand = make_run(600, shift=0.1)  # about -1.5 points of expected accuracy
    assert compare_runs(ref, cand).verdict == "regressed"
    # A/A repeats of the reference that drift as far: the effect sits within the measured floor
    aa = NoiseFloor(kl_runs=[[0.0] * 600], acc_diffs=[2.5], ea_diffs=[2.0])
    c = compare_runs(ref, cand, noise=aa)
    assert c.verdict not in ("regressed", "improved")
    assert any("within the A/A noise floor" in r for r in c.reasons)
    # jittery A/A repeats raise the KL diagnostic's tolerance to their quantile
    jittery = [compare_runs(ref, _jitter(ref, 0.6, s)) for s in range(3)]
    floor = NoiseFloor.from_any(jittery)
    assert floor.n_runs == 3 and len(floor.pooled_kl()) == 1800 and len(floor.ea_diffs) == 3
    c2 = compare_runs(ref, cand, noise=jittery)
    assert "A/A noise" in c2.logprob_test["tolerance_source"] and c2.logprob_test["tolerance"] > 0.01
    # dict form (e.g. loaded from summary.json) works too
    c3 = compare_runs(ref, cand, noise=[a.to_dict(per_sample=True) for a in jittery])
    assert c3.logprob_test["tolerance"] == pytest.approx(c2.logprob_test["tolerance"])


def _jitter(recs, sd, seed):
    rng = random.Random(seed + 77)
    out = []
    for r in recs:
        z = [r["answer_logprobs"][k] + rng.gauss(0, sd) for k in LETTERS]
        out.append(record(int(r["id"].rsplit("/", 1)[1]), r["reference"], softmax(z)))
    return out


def test_comparison_roundtrip_fields():
    c = compare_runs(make_run(30), make_run(30))
    assert isinstance(c, Comparison)
    d = c.to_dict()
    for key in ("verdict", "accuracy", "expected_accuracy", "routes", "primary", "n_needed", "mcnemar", "trtllm",
                "logprob", "logprob_test", "pairing"):
        assert key in d
    assert d["trtllm"]["theta"] == pytest.approx(32.10, abs=0.01)  # 2.486 * sqrt(2 * 50^2 / 30)


def test_verdict_options_defaults():
    assert VerdictOptions() == VerdictOptions(alpha=0.05, min_effect=1.0, kl_tolerance=0.01, kl_exceed_rate=0.05,
                                              near_tie_margin=0.1, power=0.8, trtllm_sigma=50.0,
                                              trtllm_beta=0.2, on_invalid="raise")
    ref, cand = make_run(60), make_run(60, noise=0.5)
    assert compare_runs(ref, cand).to_dict() == compare_runs(ref, cand, options=VerdictOptions()).to_dict()
    with pytest.raises(HarnessError, match="kl_exceed_rate"):
        compare_runs(ref, cand, options=VerdictOptions(kl_exceed_rate=1.0))


# -- the compare command on run directories ----------------------------------------------------


def write_run_dir(path, records, status="ok", label="run"):
    from harness.evaluation.rundir import write_run

    write_run(path, {"label": label, "backend": label, "task": "mmlu"},
              {"status": status, "records": records, "error": None if status == "ok" else "worker timed out"})
    return str(path)


def test_compare_command_text_json_and_errors(tmp_path, capsys):
    from harness.cli import main

    ref = make_run(80)
    a = write_run_dir(tmp_path / "a", ref, label="hf")
    b = write_run_dir(tmp_path / "b", make_run(80, flip_frac=0.3), label="ad-emulator")
    assert main(["compare", a, b]) == 0
    out = capsys.readouterr().out
    assert out.startswith("verdict: REGRESSED") and "McNemar exact" in out and "TensorRT-LLM unpaired gate" in out
    assert "flipped / discordant samples" in out
    assert main(["compare", a, b, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["verdict"] == "regressed" and d["labels"] == {"ref": "hf", "cand": "ad-emulator"}
    # same run twice: not a regression; at n = 80 not yet provably the same, so it says what would settle it
    assert main(["compare", a, a]) == 0
    assert re.match(r"verdict: INCONCLUSIVE - about \d+ samples would decide it", capsys.readouterr().out)
    # unresolved candidate
    u = write_run_dir(tmp_path / "u", [], status="unresolved", label="ad")
    assert main(["compare", a, u]) == 0
    assert capsys.readouterr().out.startswith("verdict: UNRESOLVED")
    # different prompts: error naming the count, exit 2
    bad = write_run_dir(tmp_path / "bad", [{**r, "prompt_hash": "0" * 16} for r in ref])
    assert main(["compare", a, bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot compare these runs: PROMPT MISMATCH: 80 of 80")
    assert main(["compare", a, str(tmp_path / "missing")]) == 2


# -- per-sample log-prob statistics ------------------------------------------------------------


def test_letter_kl_js_margin_and_robustness():
    from harness.comparison.logprobs import compare_logprobs, sample_divergence

    p = [0.7, 0.1, 0.1, 0.1]
    q = [0.4, 0.4, 0.1, 0.1]
    d = sample_divergence(record(0, "A", p), record(0, "A", q))
    kl = sum(a * math.log(a / b) for a, b in zip(p, q))
    assert d.status == "ok" and d.kl == pytest.approx(kl) and d.js > 0 and d.agree is True
    assert d.ref_margin == pytest.approx(math.log(7))
    assert d.delta_gold_prob == pytest.approx(-0.3)
    # renormalised over the letters: an unnormalised but proportional distribution gives KL 0
    r2 = record(0, "A", p)
    r2["answer_logprobs"] = {k: v - 2.0 for k, v in r2["answer_logprobs"].items()}
    assert sample_divergence(record(0, "A", p), r2).kl == pytest.approx(0.0, abs=1e-12)
    # missing, NaN on one side, NaN on both
    assert sample_divergence(record(0, "A", p), {**record(0, "A", q), "answer_logprobs": None}).status == "missing"
    nan_c = sample_divergence(record(0, "A", p), record(0, "A", q, nonfinite=True))
    assert nan_c.status == "nonfinite_cand" and nan_c.kl == math.inf and nan_c.delta_gold_prob == pytest.approx(-0.7)
    both = sample_divergence(record(0, "A", p, nonfinite=True), record(0, "A", q, nonfinite=True))
    assert both.status == "nonfinite_both" and not both.usable
    # near-tie vs confident flips
    tie = sample_divergence(record(1, "A", [0.36, 0.34, 0.15, 0.15]), record(1, "A", [0.34, 0.36, 0.15, 0.15]))
    conf = sample_divergence(record(2, "A", [0.9, 0.05, 0.03, 0.02]), record(2, "A", [0.1, 0.85, 0.03, 0.02]))
    _, s = compare_logprobs([(record(1, "A", [0.36, 0.34, 0.15, 0.15]), record(1, "A", [0.34, 0.36, 0.15, 0.15])),
                             (record(2, "A", [0.9, 0.05, 0.03, 0.02]), record(2, "A", [0.1, 0.85, 0.03, 0.02]))])
    assert tie.agree is False and tie.ref_margin < 0.1 and conf.ref_margin > 2
    assert (s.flips, s.near_tie_flips, s.confident_flips) == (2, 1, 1)


def gen_record(i, ids, correct=True, top=None):
    return {"id": f"g/{i}", "subject": "gsm8k", "reference": "42", "prompt_hash": prompt_hash(f"g{i}"),
            "prompt_token_hash": None, "output": " ".join(map(str, ids)), "token_ids": ids, "finish_reason": "stop",
            "parsed": "42" if correct else "7", "correct": correct, "answer_logprobs": None, "top_logprobs": top}


def test_generation_first_divergent_token_prefill_vs_decode():
    base = list(range(10, 30))
    ref = [gen_record(i, base, top=[{"a": -0.1, "b": -2.5}] * 20) for i in range(6)]
    cand = [gen_record(0, base), gen_record(1, [99] + base[1:], correct=False),  # prefill
            gen_record(2, base[:5] + [99] + base[6:], correct=False),  # decode at 5
            gen_record(3, base[:12]), gen_record(4, base), gen_record(5, base[:3] + [1] + base[4:])]
    c = compare_runs(ref, cand)
    g = c.generation
    assert g["is_generation"] and g["n_diverged"] == 4 and g["n_prefill"] == 1 and g["n_decode"] == 3
    assert {d.id: d.first_divergence for d in c.per_sample if d.first_divergence is not None} == \
        {"g/1": 0, "g/2": 5, "g/3": 12, "g/5": 3}
    assert [d.divergence_ref_margin for d in c.per_sample if d.id == "g/1"] == [pytest.approx(2.4)]
    text = "\n".join(c.summary_lines())
    assert "position 0 (prefill) in 1, later (decode / KV-cache path) in 3" in text
    assert not c.logprob_test["available"]  # no answer letters: accuracy only


def test_compare_command_with_aa_noise(tmp_path, capsys):
    from harness.cli import main

    ref = make_run(120)
    a = write_run_dir(tmp_path / "a", ref, label="pt")
    b = write_run_dir(tmp_path / "b", _jitter(ref, 0.6, 9), label="ad")
    aa = [write_run_dir(tmp_path / f"aa{i}", _jitter(ref, 0.6, i), label="pt") for i in range(2)]
    assert main(["compare", a, b, "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["logprob_test"]["divergent"] and plain["flips_total"] > 0
    args = ["compare", a, b, "--json"] + [x for p in aa for x in ("--aa", p)]
    assert main(args) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["noise"]["n_runs"] == 2 and d["verdict"] in ("same", "inconclusive")
    assert d["logprob_test"]["tolerance"] > 0.01 and d["runs"]["aa"] == aa
    assert main(["compare", a, b, "--kl-tolerance", "-1"]) == 2


def near_tie_flips(candidate_loses: bool, share: int = 3) -> tuple[list[dict], list[dict]]:
    """600 items; every 15th a near tie the candidate tips the other way: ``share`` in 5 of them against the
    right answer (``candidate_loses``) or for it. The right answer's probability barely moves (expected
    accuracy equivalent within +-1) while accuracy moves: by 1.33 points without significance at share 3."""
    ref, cand = [], []
    for i in range(600):
        gold = LETTERS[i % 4]
        g, other = LETTERS.index(gold), (LETTERS.index(gold) + 1) % 4
        p_ref = [0.1] * 4
        p_ref[g] = 0.7
        p_cand = list(p_ref)
        if i % 15 == 0:
            lose = ((i // 15) % 5 < share) == candidate_loses
            p_ref = [0.02] * 4
            p_ref[g], p_ref[other] = (0.475, 0.465) if lose else (0.465, 0.475)
            p_cand = list(p_ref)
            p_cand[g], p_cand[other] = p_ref[other], p_ref[g]
        ref.append(record(i, gold, p_ref))
        cand.append(record(i, gold, p_cand))
    return ref, cand


def test_flipped_near_ties_are_not_called_the_same():
    # "same" waits until accuracy's interval rules out a loss of 2 x min_effect too
    c = compare_runs(*near_tie_flips(candidate_loses=True))
    assert abs(c.expected_accuracy["estimate_points"]) < 0.2 and c.accuracy["diff_points"] == pytest.approx(-8 / 6)
    assert c.expected_accuracy["equivalent"] and c.mcnemar["p_regressed"] > 0.05
    assert c.verdict == "inconclusive" and any("may still hide a loss of 2" in r for r in c.reasons), c.reasons
    assert c.n_needed and c.n_needed > 600


def test_near_ties_flipped_to_the_right_answer_are_the_same_and_say_so():
    # the mirror image: accuracy up 1.33 points, not significant, expected accuracy equivalent. No loss is
    # possible beyond -2 points, so the guard does not hold "same" back; the gain is named in the reasons.
    c = compare_runs(*near_tie_flips(candidate_loses=False))
    assert c.accuracy["diff_points"] == pytest.approx(8 / 6) and c.routes["accuracy"]["interval_points"][1] > 2.0
    assert c.verdict == "same", c.reasons
    assert any("accuracy +1.33 points, not significant" in r for r in c.reasons), c.reasons


def test_a_significant_gain_on_accuracy_alone_is_the_same_but_a_loss_is_not():
    # every near tie tipped toward the right answer: accuracy +6.67 points, significant; expected accuracy
    # equivalent. Neither route shows a loss, so "same" stands on the primary route and names the gain. The
    # mirror image (every near tie tipped away) is a possible loss the primary route does not see: never "same".
    gain = compare_runs(*near_tie_flips(candidate_loses=False, share=5))
    assert gain.routes["accuracy"]["call"] == "improved" and gain.expected_accuracy["equivalent"]
    assert gain.verdict == "same", gain.reasons
    assert any("accuracy rose +6.67 points" in r and "not a loss" in r for r in gain.reasons), gain.reasons
    loss = compare_runs(*near_tie_flips(candidate_loses=True, share=5))
    assert loss.routes["accuracy"]["call"] == "regressed" and loss.expected_accuracy["equivalent"]
    assert loss.verdict == "inconclusive", loss.reasons
