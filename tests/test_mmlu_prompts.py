"""MMLU prompts byte for byte as tensorrt_llm/evaluate/mmlu.py builds them, row selection, scoring."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.tasks.base import PromptOptions
from harness.tasks.mmlu import MMLUTask, score_text

REPO = Path(__file__).resolve().parent.parent
FIX = Path(__file__).resolve().parent / "fixtures" / "mmlu_small"
REAL_MMLU = Path("/work/shared/data/mmlu")

HEADER_AA = "The following are multiple choice questions (with answers) about  abstract algebra.\n\n"
SHOTS_AA = (
    "What is 2 + 2 in Z_3?\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\n"
    "Which of these, if any, is a group?\nA. Z under addition\nB. N under addition\nC. the empty set\n"
    "D. none\nAnswer: A\n\n"
    "Find the order of 3 in Z_4.\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: D\n\n"
    "Is Z_5 a field?\nA. yes\nB. no\nC. only under addition\nD. only if 5 is composite\nAnswer: A\n\n"
    "The identity of Z_6 under addition is\nA. 6\nB. 1\nC. 0\nD. 3\nAnswer: C\n\n"
)
QUESTION_AA2 = "Is the set {0, 2, 4} a subgroup of Z_6?\nA. yes\nB. no\nC. only of Z_4\nD. only of Z_8\nAnswer:"


def _samples(n=None, seed=0, **opts):
    return MMLUTask().samples(str(FIX), n, seed, PromptOptions(**opts))


def test_five_shot_prompt_byte_exact():
    by_id = {s.id: s for s in _samples()}
    s = by_id["mmlu/abstract_algebra/2"]
    assert s.prompt == HEADER_AA + SHOTS_AA + QUESTION_AA2
    assert s.reference == "A"
    assert s.subject == "abstract_algebra"
    assert s.choices == ["yes", "no", "only of Z_4", "only of Z_8"]
    assert s.meta["categories"] == ["STEM"] and s.meta["subcategories"] == ["math"]


def test_header_double_space_and_layout():
    s = {x.id: x for x in _samples()}["mmlu/astronomy/2"]
    assert s.prompt.startswith("The following are multiple choice questions (with answers) about  astronomy.\n\n"
                               "Which planet is closest to the Sun?\nA. Venus\nB. Mercury\nC. Earth\nD. Mars\n"
                               "Answer: B\n\n")
    assert s.prompt.endswith("\n\nWhich is farther from the Sun, Neptune or Mars?\nA. Mars\nB. Neptune\n"
                             "C. they are equally far\nD. neither\nAnswer:")
    assert s.prompt.count("\nAnswer:") == 6
    assert not s.prompt.endswith(" ")


def test_num_fewshot_zero_and_one():
    s0 = {x.id: x for x in _samples(num_fewshot=0)}["mmlu/abstract_algebra/2"]
    assert s0.prompt == HEADER_AA + QUESTION_AA2
    s1 = {x.id: x for x in _samples(num_fewshot=1)}["mmlu/abstract_algebra/2"]
    assert s1.prompt == HEADER_AA + "What is 2 + 2 in Z_3?\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\n" + QUESTION_AA2


def test_all_rows_in_subject_order_when_no_samples():
    ids = [s.id for s in _samples()]
    assert ids == [f"mmlu/abstract_algebra/{i}" for i in range(12)] + [f"mmlu/astronomy/{i}" for i in range(3)]


def _oracle_ids(n, seed, subjects=("abstract_algebra", "astronomy")):
    """The evaluator's selection: np.random.seed once, then test_df.sample(k) per subject if k < rows."""
    np.random.seed(seed)
    k = math.ceil(n / len(subjects))
    ids = []
    for subject in subjects:
        df = pd.read_csv(FIX / "test" / f"{subject}_test.csv", header=None)
        if k < df.shape[0]:
            df = df.sample(k)
        ids += [f"mmlu/{subject}/{i}" for i in df.index]
    return ids


@pytest.mark.parametrize("n,seed", [(8, 0), (8, 1), (2, 0), (3, 5), (30, 0)])
def test_row_selection_matches_evaluator(n, seed):
    assert [s.id for s in _samples(n, seed)] == _oracle_ids(n, seed)


def test_selection_depends_on_seed_and_rng_is_seeded_once():
    a, b = [s.id for s in _samples(8, 0)], [s.id for s in _samples(8, 1)]
    assert a != b
    # n=2 -> 1 per subject; astronomy (3 rows) is sampled from the RNG state the first subject left
    np.random.seed(0)
    pd.read_csv(FIX / "test" / "abstract_algebra_test.csv", header=None).sample(1)
    expected_astro = pd.read_csv(FIX / "test" / "astronomy_test.csv", header=None).sample(1).index[0]
    assert [s.id for s in _samples(2, 0)][1] == f"mmlu/astronomy/{expected_astro}"


def test_sampled_prompt_matches_its_row():
    for s in _samples(8, 0):
        subject, row = s.id.split("/")[1], int(s.id.split("/")[2])
        df = pd.read_csv(FIX / "test" / f"{subject}_test.csv", header=None)
        assert s.prompt.endswith(f"\n\n{df.iloc[row, 0]}\nA. {df.iloc[row, 1]}\nB. {df.iloc[row, 2]}\n"
                                 f"C. {df.iloc[row, 3]}\nD. {df.iloc[row, 4]}\nAnswer:")
        assert s.reference == df.iloc[row, 5]


@pytest.mark.parametrize("text,correct,parsed", [
    (" A", True, "A"),
    ("A", True, "A"),
    ("A.", True, "A"),
    (" A.", True, "A"),
    ("\n A B", True, "A"),
    ("a", False, None),
    (" a", False, None),
    ("", False, None),
    ("   ", False, None),
    (" B", False, "B"),
    ("Answer: A", True, "A"),  # the evaluator's startswith("A") accepts it; so do we
    ("B A", False, "B"),
])
def test_scoring_edge_cases(text, correct, parsed):
    s = score_text("A", text)
    assert (s.correct, s.parsed) == (correct, parsed)


def test_aggregate_per_subject_subcategory_category():
    rows = [{"subject": "abstract_algebra", "correct": c} for c in (True, True, False, False)]
    rows += [{"subject": "astronomy", "correct": c} for c in (True, True)]
    rows += [{"subject": "my_custom", "correct": False}]
    agg = MMLUTask().aggregate(rows)
    assert agg["n"] == 7 and agg["score"] == pytest.approx(400 / 7)
    assert agg["per_subject"]["abstract_algebra"] == {"score": 50.0, "n": 4}
    assert agg["per_subcategory"]["math"] == {"score": 50.0, "n": 4}
    assert agg["per_subcategory"]["physics"] == {"score": 100.0, "n": 2}
    assert agg["per_category"]["STEM"] == {"score": pytest.approx(400 / 6), "n": 6}
    assert agg["per_category"]["(custom)"] == {"score": 0.0, "n": 1}


def test_task_generation_settings():
    t = MMLUTask()
    assert (t.max_tokens, t.max_input_tokens, t.end_id_minus_one) == (2, 4094, True)
    assert t.answer_continuations == [" A", " B", " C", " D"]


def test_chat_template_whole_prompt_one_user_turn():
    model = REPO / "harness" / "assets" / "demo_model"
    if not (model / "config.json").is_file():
        pytest.skip("demo model not built")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model))
    if tok.chat_template is None:
        pytest.skip("demo tokenizer has no chat template")
    plain = {x.id: x for x in _samples()}["mmlu/abstract_algebra/2"].prompt
    chat = {x.id: x for x in _samples(apply_chat_template=True, tokenizer=str(model),
                                       system_prompt="Be brief.")}["mmlu/abstract_algebra/2"].prompt
    expected = tok.apply_chat_template([{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": plain}],
                                       tokenize=False, add_generation_prompt=True)
    assert chat == expected and plain in chat and "Be brief." in chat


# --- real MMLU data: the CLI against an independent copy of the evaluator's loop --------------------

def _evaluator_oracle(dataset_path: str, num_samples: int, random_seed: int = 0, num_fewshot: int = 5):
    """The few lines of NVIDIA/TensorRT-LLM tensorrt_llm/evaluate/mmlu.py (@0c8de69a) that make the
    prompts: Evaluator.__init__ seeding, MMLU.__init__ num_samples_per_subject, format_subject,
    format_example, gen_prompt, generate_samples -- copied here as the test oracle."""
    from harness.tasks.mmlu import SUBJECT_TO_SUBCATEGORIES  # the evaluator's dict, for its key order

    choices = ["A", "B", "C", "D"]
    np.random.seed(random_seed)
    per_subject = math.ceil(num_samples / len(SUBJECT_TO_SUBCATEGORIES))

    def format_subject(subject):
        line = subject.split("_")
        s = ""
        for entry in line:
            s += " " + entry
        return s

    def format_example(df, idx, include_answer=True):
        prompt = df.iloc[idx, 0]
        k = df.shape[1] - 2
        for j in range(k):
            prompt += "\n{}. {}".format(choices[j], df.iloc[idx, j + 1])
        prompt += "\nAnswer:"
        if include_answer:
            prompt += " {}\n\n".format(df.iloc[idx, k + 1])
        return prompt

    def gen_prompt(train_df, subject, k=-1):
        prompt = "The following are multiple choice questions (with answers) about {}.\n\n".format(
            format_subject(subject))
        if k == -1:
            k = train_df.shape[0]
        for i in range(k):
            prompt += format_example(train_df, i)
        return prompt

    for subject in SUBJECT_TO_SUBCATEGORIES.keys():
        dev_df = pd.read_csv(f"{dataset_path}/dev/{subject}_dev.csv", header=None)
        train_prompt = gen_prompt(dev_df, subject, num_fewshot)
        test_df = pd.read_csv(f"{dataset_path}/test/{subject}_test.csv", header=None)
        if per_subject is not None and per_subject < test_df.shape[0]:
            test_df = test_df.sample(per_subject)
        for i in range(test_df.shape[0]):
            prompt = train_prompt + format_example(test_df, i, include_answer=False)
            label = test_df.iloc[i, test_df.shape[1] - 1]
            yield prompt, label, subject


@pytest.mark.realdata
def test_real_mmlu_prompts_match_evaluator_byte_for_byte():
    if not (REAL_MMLU / "dev").is_dir():
        pytest.skip("real MMLU data not present")
    out = subprocess.run([sys.executable, "-m", "harness", "prompts", "--task", "mmlu", "--dataset", str(REAL_MMLU),
                          "--samples", "114"], cwd=REPO, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    lines = [json.loads(line) for line in out.stdout.decode("utf-8").splitlines()]
    oracle = list(_evaluator_oracle(str(REAL_MMLU), 114))
    assert len(lines) == len(oracle) == 114
    for got, (prompt, label, subject) in zip(lines, oracle):
        assert got["prompt"].encode("utf-8") == prompt.encode("utf-8"), got["id"]
        assert (got["reference"], got["subject"]) == (label, subject)
    assert lines[0]["prompt"].startswith(
        "The following are multiple choice questions (with answers) about  abstract algebra.\n\n")
