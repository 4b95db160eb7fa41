"""Property: whatever a config YAML, a data set CSV or a regression-suite file holds, its loader either
succeeds or raises one HarnessError with a one-line message, never another exception (a traceback).

Documents are drawn from the loaders' own vocabulary (keys, transform and fault names, backends) mixed
with arbitrary keys and values of every YAML type, plus raw text and bytes; derandomized so CI sees
the same examples every run (hypothesis then shrinks any failure to a minimal document)."""
from __future__ import annotations

import csv
import io
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import HarnessError
from harness.paths import DEMO_MMLU

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

CONFIG_WORDS = ["transforms", "world_size", "compile_backend", "attn_backend", "engine_noise", "plugins",
                "fuse_rmsnorm", "optimize_rope", "insert_cached_attention", "detect_sharding", "enabled", "stage",
                "fault", "fault_strength", "fault_backend", "skip_on_error", "hardcoded_eps", "rope_applied_twice",
                "post_load_fusion", "pattern_matcher", "torch-simple", "trtllm", "flashinfer", "sigma"]
SUITE_WORDS = ["name", "description", "references", "defaults", "paired", "models", "tasks", "configs", "samples",
               "seed", "timeout", "max_parallel", "dataset", "prompt_options", "sampling", "id", "path",
               "reference_scores", "spec", "backend", "config", "bisect", "reference_score", "reference",
               "accuracy", "alpha", "sigma", "num_samples", "quant_algo", "demo", "mmlu", "gsm8k", "hf",
               "ad-emulator", "all", "num_fewshot", "max_tokens"]


def documents(words: list[str]):
    keys = st.one_of(st.sampled_from(words), st.text(max_size=6), st.integers(-2, 3), st.booleans())
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**40), st.floats(), st.text(max_size=10),
                        st.sampled_from(words))
    values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                          st.dictionaries(keys, kids, max_size=4)), max_leaves=16)
    as_yaml = st.one_of(st.dictionaries(keys, values, max_size=6), values).map(
        lambda d: yaml.safe_dump(d, allow_unicode=True).encode("utf-8"))
    return st.one_of(as_yaml, as_yaml, st.text(max_size=80).map(lambda t: t.encode("utf-8")), st.binary(max_size=80))


def one_line_or_success(fn, *args):
    try:
        fn(*args)
    except HarnessError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)


@pytest.fixture(scope="module")
def scratch():
    d = Path(tempfile.mkdtemp(prefix="harness-property-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _load_bisect_config(path: Path):
    """What bisect does with --config before anything runs (harness/bisect/inputs.py load_config), then what the
    emulator's worker does with it (harness/backends/emulator/pipeline.py build_plan)."""
    from harness.backends import get_backend
    from harness.backends.emulator.pipeline import build_plan
    from harness.bisect.inputs import load_config

    cfg = load_config(SimpleNamespace(default_yaml=None, config=str(path), plugin=[]), get_backend("ad-emulator"),
                      "ad-emulator")
    build_plan(cfg.user)


@SETTINGS
@given(documents(CONFIG_WORDS))
def test_any_config_file_loads_or_is_one_line(scratch, data):
    path = scratch / "config.yaml"
    path.write_bytes(data)
    one_line_or_success(_load_bisect_config, path)


@SETTINGS
@given(documents(SUITE_WORDS))
def test_any_suite_file_loads_or_is_one_line(scratch, data):
    from harness.regress.suite import load_suite

    path = scratch / "suite.yaml"
    path.write_bytes(data)
    one_line_or_success(load_suite, path)


FIELDS = st.one_of(st.text(max_size=12), st.sampled_from(["A", "B", "C", "D", "", "42", "1.5", "nan", "NA", "\"",
                                                          "a,b", "x\ny", "#c", "True"]))
ROWS = st.lists(st.lists(FIELDS, min_size=0, max_size=8), min_size=0, max_size=6)


def _csv_bytes(rows, raw: bytes | None) -> bytes:
    if raw is not None:
        return raw
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode("utf-8")


@pytest.fixture(scope="module")
def dataset(scratch):
    d = scratch / "mmlu"
    shutil.copytree(DEMO_MMLU, d)
    return d


@SETTINGS
@given(st.sampled_from(["dev", "test"]), ROWS, st.one_of(st.none(), st.binary(max_size=60)))
def test_any_mmlu_csv_loads_or_is_one_line(dataset, split, rows, raw):
    from harness.tasks.base import PromptOptions
    from harness.tasks.mmlu import MMLUTask

    target = dataset / split / f"word_match_{split}.csv"
    original = (DEMO_MMLU / split / target.name).read_bytes()
    target.write_bytes(_csv_bytes(rows, raw))
    try:
        one_line_or_success(MMLUTask().samples, str(dataset), 12, 0, PromptOptions(num_fewshot=1))
    finally:
        target.write_bytes(original)
