"""MMLU prompt text, byte for byte as TensorRT-LLM's evaluator builds it.

Mirrors ``tensorrt_llm/evaluate/mmlu.py`` (NVIDIA/TensorRT-LLM @0c8de69a, identical logic @c9bd23fd):
``format_subject`` joins the underscore-split words each prefixed by a space, so the header
has two spaces after "about"; choices are ``"\\n{letter}. {text}"``; the question ends in
``"\\nAnswer:"``; few-shot answers append ``" {label}\\n\\n"``.  The frames come from
``pandas.read_csv(path, header=None)`` exactly as the evaluator reads them, so pandas' own
value parsing (numbers, NaN) is reproduced too.
"""
from __future__ import annotations

import pandas as pd

CHOICES = ["A", "B", "C", "D"]
HEADER = "The following are multiple choice questions (with answers) about {}.\n\n"


def format_subject(subject: str) -> str:
    return "".join(" " + part for part in subject.split("_"))


def format_example(df: pd.DataFrame, idx: int, include_answer: bool = True) -> str:
    return format_row(frame_rows(df.iloc[[idx]])[0], include_answer)


def frame_rows(df: pd.DataFrame):
    """The frame's cells as Python objects, column by column (``df.iloc[i, j]``'s value: no upcasting across
    columns), so a whole subject is formatted without a pandas scalar lookup per cell."""
    return df.to_numpy(dtype=object)


def format_row(row, include_answer: bool = True) -> str:
    """``format_example`` of one row of ``frame_rows``."""
    prompt = row[0]
    k = len(row) - 2
    for j in range(k):
        prompt += "\n{}. {}".format(CHOICES[j], row[j + 1])
    prompt += "\nAnswer:"
    if include_answer:
        prompt += " {}\n\n".format(row[k + 1])
    return prompt


def gen_prompt(train_df: pd.DataFrame, subject: str, k: int = -1) -> str:
    prompt = HEADER.format(format_subject(subject))
    if k == -1:
        k = train_df.shape[0]
    rows = frame_rows(train_df)
    for i in range(k):
        prompt += format_row(rows[i])
    return prompt
