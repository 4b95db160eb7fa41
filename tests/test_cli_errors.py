"""Each bad input prints one `error: ...` line naming the value and the fix, exits 2, no traceback
(the CLI's error contract: harness/errors.py, README "Exit status")."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_assert import assert_one_line_error

REPO = Path(__file__).resolve().parent.parent
FIX = Path(__file__).resolve().parent / "fixtures" / "mmlu_small"


def harness(*args, env=None):
    e = dict(os.environ)
    e.pop("LLM_MODELS_ROOT", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=e)


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "mmlu"
    shutil.copytree(FIX, d)
    return d


def test_missing_dataset_dir():
    assert_one_line_error(harness("prompts", "--task", "mmlu", "--dataset", "/nonexistent/mmlu"),
                          "/nonexistent/mmlu", "--dataset", "LLM_MODELS_ROOT")


def test_missing_dataset_under_llm_models_root(tmp_path):
    out = harness("prompts", "--task", "mmlu", env={"LLM_MODELS_ROOT": str(tmp_path)})
    assert_one_line_error(out, str(tmp_path / "datasets" / "mmlu"), "$LLM_MODELS_ROOT")


def test_missing_gsm8k_dataset_dir():
    assert_one_line_error(harness("prompts", "--task", "gsm8k", "--dataset", "/nonexistent/gsm8k"),
                          "/nonexistent/gsm8k", "--dataset")


def test_subject_without_test_file(data):
    (data / "test" / "astronomy_test.csv").unlink()
    assert_one_line_error(harness("prompts", "--dataset", str(data)), "astronomy", "no test file",
                          "astronomy_test.csv")


def test_malformed_row_wrong_field_count_reports_file_and_line(data):
    path = data / "test" / "astronomy_test.csv"
    # row 1 spans two lines (quoted newline), so the bad third row starts on line 4
    path.write_text('"Which planet\nis largest?",Jupiter,Earth,Mars,Venus,A\n'
                    "What color is Mars?,blue,green,red,white,C\n"
                    "Which is bigger?,Mars,Neptune,same,C\n")
    assert_one_line_error(harness("prompts", "--dataset", str(data)), f"{path}:4", "5 fields", "expected 6")


def test_malformed_row_bad_answer_letter(data):
    path = data / "dev" / "abstract_algebra_dev.csv"
    lines = path.read_text().splitlines()
    lines[2] = "Find the order of 3 in Z_4.,1,2,3,4,E"
    path.write_text("\n".join(lines) + "\n")
    assert_one_line_error(harness("prompts", "--dataset", str(data)), f"{path}:3", "'E'", "A, B, C, D")


def test_unknown_task():
    assert_one_line_error(harness("prompts", "--task", "mmlu_pro"), "'mmlu_pro'", "mmlu", "gsm8k", "--task")


def test_unknown_backend():
    assert_one_line_error(harness("diagnose", "--backend", "vllm", "--samples", "5"),
                          "'vllm'", "hf", "ad-emulator", "trtllm-ad", "trtllm-pt", "--backend")


def test_model_dir_does_not_exist():
    assert_one_line_error(harness("diagnose", "--model", "/nonexistent/model", "--samples", "5"),
                          "/nonexistent/model", "--model")


@pytest.mark.parametrize("cmd", ["prompts", "diagnose"])
@pytest.mark.parametrize("n", ["0", "-3"])
def test_samples_zero_or_negative(cmd, n):
    assert_one_line_error(harness(cmd, "--samples", n), f"got {n}", "--samples")


def test_bad_chat_template_kwargs():
    assert_one_line_error(harness("prompts", "--chat-template-kwargs", "{not json"), "--chat-template-kwargs",
                          "JSON")
