"""GSM8K prompts, stop strings and both answer filters, from the installed lm-eval gsm8k task."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.tasks.base import PromptOptions
from harness.tasks.gsm8k import GSM8KTask

FIX = Path(__file__).resolve().parent / "fixtures" / "gsm8k_small"
REAL = Path("/work/shared/data/gsm8k")


def _rows(split):
    with open(FIX / f"{split}.jsonl") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def task():
    return GSM8KTask()


def test_zero_shot_prompt_layout(task):
    samples = task.samples(str(FIX), None, 0, PromptOptions(num_fewshot=0))
    assert len(samples) == 4
    mia = next(s for s in samples if s.id == "gsm8k/0")
    # lm-eval gsm8k.yaml doc_to_text: "Question: {{question}}\nAnswer:"
    assert mia.prompt == "Question: Mia has 8 pencils and gives away 3. How many pencils does she keep?\nAnswer:"
    assert mia.reference == "5"
    assert sorted(s.id for s in samples) == [f"gsm8k/{i}" for i in range(4)]


def test_five_shot_prompt_matches_lm_eval_sampling(task):
    samples = task.samples(str(FIX), 2, 0, PromptOptions())
    assert len(samples) == 2
    train, test = _rows("train"), _rows("test")
    # Oracle: the test split shuffled with the seed (datasets' Dataset.shuffle, as TRT-LLM's
    # _adjust_config does) and lm-eval's default sampler Random(seed).sample(train docs, 5) per doc.
    import datasets

    order = datasets.Dataset.from_list(test).shuffle(seed=0)["question"]
    rnd = random.Random(0)
    for s, question in zip(samples, order):
        shots = rnd.sample(train, 5)
        expected = "".join(f"Question: {d['question']}\nAnswer: {d['answer']}\n\n" for d in shots)
        expected += f"Question: {question}\nAnswer:"
        assert s.prompt == expected
        assert test[int(s.id.split("/")[1])]["question"] == question


def test_stop_strings_and_budget_from_lm_eval(task):
    task.samples(str(FIX), 1, 0, PromptOptions())
    assert task.stop == ["Question:", "</s>", "<|im_end|>"]
    assert (task.max_tokens, task.max_input_tokens, task.end_id_minus_one) == (256, 4096, False)


@pytest.mark.parametrize("text,strict,flexible,parsed", [
    ("She keeps 8 - 3 = 5 pencils.\n#### 5", 1.0, 1.0, "5"),
    ("She keeps 5 pencils.", 0.0, 1.0, "5"),
    ("#### 5\nThen 7 more", 1.0, 0.0, "7"),
    ("The answer is 5.", 0.0, 1.0, "5."),  # "\.$" is ignored when comparing
    ("no number here", 0.0, 0.0, None),
    ("", 0.0, 0.0, None),
    ("#### 6", 0.0, 0.0, "6"),
])
def test_both_filters(task, text, strict, flexible, parsed):
    mia = next(s for s in task.samples(str(FIX), None, 0, PromptOptions(num_fewshot=0)) if s.id == "gsm8k/0")
    sc = task.score(mia, text)
    assert sc.detail["strict-match"]["exact_match"] == strict
    assert sc.detail["flexible-extract"]["exact_match"] == flexible
    assert sc.correct == bool(flexible)
    assert sc.parsed == parsed


def test_commas_and_dollars_are_ignored(task):
    pens = next(s for s in task.samples(str(FIX), None, 0, PromptOptions(num_fewshot=0)) if s.id == "gsm8k/1")
    assert pens.reference == "2,400"
    assert task.score(pens, "They sell $2,400 pens.\n#### 2400").detail["strict-match"]["exact_match"] == 1.0
    assert task.score(pens, "That is 2400").correct


def test_aggregate_is_mean_of_both_filters(task):
    s = task.samples(str(FIX), None, 0, PromptOptions(num_fewshot=0))
    by = {x.id: x for x in s}
    recs = [{"detail": task.score(by["gsm8k/0"], "#### 5").detail},   # 1, 1
            {"detail": task.score(by["gsm8k/2"], "21 dollars").detail},  # 0, 1
            {"detail": task.score(by["gsm8k/3"], "#### 5").detail}]   # 0, 0
    agg = task.aggregate(recs)
    assert agg["per_filter"]["strict-match"]["score"] == pytest.approx(100 / 3)
    assert agg["per_filter"]["flexible-extract"]["score"] == pytest.approx(200 / 3)
    assert agg["score"] == pytest.approx(50.0)


def test_errors(task):
    with pytest.raises(HarnessError, match="does not exist"):
        task.samples("/nonexistent/gsm8k", 3, 0, PromptOptions())
    with pytest.raises(HarnessError, match="positive"):
        task.samples(str(FIX), 0, 0, PromptOptions())
    with pytest.raises(HarnessError, match="apply-chat-template"):
        task.samples(str(FIX), 2, 0, PromptOptions(fewshot_as_multiturn=True))


@pytest.mark.realdata
def test_real_gsm8k_first_prompt(task):
    if not (REAL / "test.jsonl").is_file():
        pytest.skip("real GSM8K data not present")
    s = task.samples(str(REAL), 3, 0, PromptOptions())
    assert len(s) == 3
    assert s[0].prompt.count("Question: ") == 6 and s[0].prompt.endswith("\nAnswer:")
    assert s[0].prompt.count("\n#### ") == 5
