"""Reference lookup in TensorRT-LLM's format: first match wins, missing dtype matches only 'auto'."""
import textwrap

import pytest

from harness.errors import HarnessError
from harness.paths import CONFIGS
from harness.comparison.references import find_reference, load_reference_file, lookup, normalize_spec

# Shape of tests/integration/defs/accuracy/references/mmlu.yaml in NVIDIA/TensorRT-LLM
YAML = textwrap.dedent("""\
    meta-llama/Llama-3.1-8B-Instruct:
      - accuracy: 68.17
      - spec_dec_algo: EAGLE3
        accuracy: 68.20
      - quant_algo: FP8
        accuracy: 67.93
      - quant_algo: FP8
        extra_acc_spec: temperature=0.8,top_p=0.95
        accuracy: 64.62
      - quant_algo: FP8
        kv_cache_quant_algo: FP8
        accuracy: 67.87
      - quant_algo: FP8
        accuracy: 11.11
      - dtype: bfloat16
        accuracy: 68.5
        num_samples: 1000
        sigma: 40
        alpha: 0.01
    mistralai/Mistral-7B-v0.1:
      - accuracy: 66
""")


@pytest.fixture
def refdir(tmp_path):
    (tmp_path / "mmlu.yaml").write_text(YAML)
    return tmp_path


def test_plain_spec_matches_first_entry_with_engine_defaults(refdir):
    r = find_reference(refdir, "meta-llama/Llama-3.1-8B-Instruct", "mmlu", {}, no_reference=False)
    assert (r.accuracy, r.entry_index) == (68.17, 0)
    # MMLU task constants from accuracy_core.py
    assert (r.alpha, r.beta, r.sigma, r.num_samples, r.higher_is_better) == (0.05, 0.2, 50.0, 4096, True)
    assert r.source.endswith("mmlu.yaml")
    assert find_reference(refdir, "mistralai/Mistral-7B-v0.1", "mmlu", no_reference=False).accuracy == 66.0


def test_first_matching_entry_wins(refdir):
    r = find_reference(refdir, "meta-llama/Llama-3.1-8B-Instruct", "mmlu", {"quant_algo": "FP8"}, no_reference=False)
    assert (r.accuracy, r.entry_index) == (67.93, 2)  # not the later duplicate FP8 row (11.11)
    r = find_reference(refdir, "meta-llama/Llama-3.1-8B-Instruct", "mmlu",
                       {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}, no_reference=False)
    assert r.accuracy == 67.87
    r = find_reference(refdir, "meta-llama/Llama-3.1-8B-Instruct", "mmlu",
                       {"quant_algo": "FP8", "extra_acc_spec": "temperature=0.8,top_p=0.95"}, no_reference=False)
    assert r.accuracy == 64.62


def test_missing_dtype_matches_only_auto(refdir):
    table = load_reference_file(refdir / "mmlu.yaml")
    # dtype bfloat16 skips every row without dtype and finds the explicit bfloat16 row with its overrides
    r = lookup(table, "meta-llama/Llama-3.1-8B-Instruct", "mmlu", {"dtype": "bfloat16"}, no_reference=False)
    assert (r.accuracy, r.num_samples, r.sigma, r.alpha) == (68.5, 1000, 40.0, 0.01)
    # on Mistral there is no dtype row, so bfloat16 is not registered even though a row exists
    with pytest.raises(HarnessError, match=r"Not registered specs: .*'dtype': 'bfloat16'.*only dtype 'auto'"):
        lookup(table, "mistralai/Mistral-7B-v0.1", "mmlu", {"dtype": "bfloat16"}, no_reference=False)
    # explicit dtype auto == absent
    assert lookup(table, "mistralai/Mistral-7B-v0.1", "mmlu", {"dtype": "auto"}, no_reference=False).accuracy == 66


def test_unmatched_spec_and_missing_model_are_clear_errors(refdir, monkeypatch):
    monkeypatch.delenv("TRTLLM_ACCURACY_NO_REFERENCE", raising=False)
    with pytest.raises(HarnessError, match=r"Not registered specs: .*'spec_dec_algo': 'MTP'.*registered:"):
        find_reference(refdir, "meta-llama/Llama-3.1-8B-Instruct", "mmlu", {"spec_dec_algo": "MTP"})
    with pytest.raises(HarnessError, match=r"model 'nope/x' has no entries .*models there: meta-llama"):
        find_reference(refdir, "nope/x", "mmlu")
    with pytest.raises(HarnessError, match="no reference file for task 'gsm8k'.*found: mmlu"):
        find_reference(refdir, "nope/x", "gsm8k")
    with pytest.raises(HarnessError, match="unknown reference spec key"):
        normalize_spec({"quant": "FP8"})
    # the engine's escape hatch: TRTLLM_ACCURACY_NO_REFERENCE=1 -> reference 0
    monkeypatch.setenv("TRTLLM_ACCURACY_NO_REFERENCE", "1")
    r = find_reference(refdir, "nope/x", "mmlu")
    assert (r.accuracy, r.registered) == (0.0, False)


def test_gsm8k_constants_and_shipped_demo_references():
    table = {"m": [{"accuracy": 80}]}
    r = lookup(table, "m", "gsm8k", no_reference=False)
    assert (r.num_samples, r.sigma) == (1319, 50.0)
    demo = load_reference_file(CONFIGS / "references" / "mmlu.yaml")
    assert demo, "configs/references/mmlu.yaml must list the demo model"
    for model, entries in demo.items():
        assert all("accuracy" in e for e in entries), model
