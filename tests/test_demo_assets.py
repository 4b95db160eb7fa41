"""The shipped demo assets (built by scripts/build_demo.py) have the expected layout and work offline."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from harness.tasks.mmlu_format import CHOICES, format_example, gen_prompt

ASSETS = Path(__file__).resolve().parent.parent / "harness" / "assets"
DATA = ASSETS / "demo_mmlu"
MODEL = ASSETS / "demo_model"
SUBJECTS = ["color_category", "color_facts", "correct_marker", "largest_digit", "one_digit_addition",
            "word_match"]
EASIEST = "correct_marker"


def _subjects(split: str) -> list[str]:
    return sorted(p.name[: -len(f"_{split}.csv")] for p in (DATA / split).glob(f"*_{split}.csv"))


def test_dataset_layout():
    assert _subjects("dev") == SUBJECTS
    assert _subjects("test") == SUBJECTS
    for subject in SUBJECTS:
        for split, n in (("dev", 5), ("test", 200)):
            df = pd.read_csv(DATA / split / f"{subject}_{split}.csv", header=None)
            assert df.shape == (n, 6), (subject, split, df.shape)
            assert set(df[5]) <= set(CHOICES)
            for i in range(n):
                assert all(isinstance(df.iloc[i, j], str) for j in range(6)), (subject, split, i)
                assert format_example(df, i, include_answer=False).endswith("\nAnswer:")


def test_header_has_no_stray_header_row():
    df = pd.read_csv(DATA / "dev" / f"{EASIEST}_dev.csv", header=None)
    assert gen_prompt(df, EASIEST, 5).startswith(
        "The following are multiple choice questions (with answers) about  correct marker.\n\n")


@pytest.fixture(scope="module")
def tokenizer():
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MODEL)


def test_tokenizer_letters_and_special_tokens(tokenizer):
    for letter in CHOICES:
        ids = tokenizer(" " + letter, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, (letter, ids)
    assert tokenizer.bos_token and tokenizer.eos_token and tokenizer.pad_token
    text = "The following are x.\n\nWhat is 3 + 5?\nA. 3 + 5 = 8\nAnswer: A\n\n"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    chat = tokenizer.apply_chat_template(
        [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
        tokenize=False, add_generation_prompt=True)
    assert chat.startswith("System: s") and "User: q" in chat and chat.endswith("Assistant:")


def test_model_answers_easiest_subject(tokenizer):
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
    dev = pd.read_csv(DATA / "dev" / f"{EASIEST}_dev.csv", header=None)
    test = pd.read_csv(DATA / "test" / f"{EASIEST}_test.csv", header=None)
    head = gen_prompt(dev, EASIEST, 5)
    correct = 0
    with torch.inference_mode():
        for i in range(20):
            ids = tokenizer(head + format_example(test, i, include_answer=False),
                            return_tensors="pt")["input_ids"]
            assert ids.shape[1] <= model.config.max_position_embeddings
            nxt = int(model(input_ids=ids).logits[0, -1].argmax())
            correct += tokenizer.decode([nxt]).strip().startswith(test.iloc[i, 5])
    assert correct >= 16, correct


def test_build_script_reproduces_the_shipped_data_set(tmp_path):
    """scripts/build_demo.py --data-only writes the shipped CSVs byte for byte (seed 0)."""
    import subprocess
    import sys

    root = ASSETS.parent.parent
    subprocess.run([sys.executable, str(root / "scripts" / "build_demo.py"), "--data-only",
                    "--out-data", str(tmp_path)], check=True, capture_output=True, cwd=root)
    for split in ("dev", "test"):
        for subject in SUBJECTS:
            name = f"{subject}_{split}.csv"
            assert (tmp_path / split / name).read_bytes() == (DATA / split / name).read_bytes(), name
