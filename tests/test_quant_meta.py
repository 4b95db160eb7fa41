"""quant_algo / kv_cache_quant_algo from a checkpoint directory (AD does not detect them itself)."""
from __future__ import annotations

import json

import pytest

from harness.backends.checkpoint import read_quant_meta


def _ckpt(tmp_path, config=None, hf_quant=None):
    (tmp_path / "config.json").write_text(json.dumps(config or {"model_type": "llama"}))
    if hf_quant is not None:
        (tmp_path / "hf_quant_config.json").write_text(json.dumps(hf_quant))
    return tmp_path


def test_modelopt_hf_quant_config(tmp_path):
    m = read_quant_meta(_ckpt(tmp_path, hf_quant={"producer": {"name": "modelopt"}, "quantization": {
        "quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}}))
    assert (m.quant_algo, m.kv_cache_quant_algo, m.source) == ("FP8", "FP8", "hf_quant_config.json")
    assert m.spec() == {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"} and m.quantized


def test_none_strings_mean_unquantized(tmp_path):
    m = read_quant_meta(_ckpt(tmp_path, hf_quant={"quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "none"}}))
    assert m.quant_algo == "NVFP4" and m.kv_cache_quant_algo is None


@pytest.mark.parametrize("qc,algo", [
    ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "FP8_BLOCK_SCALES"),
    ({"quant_method": "fp8"}, "FP8"),
    ({"quant_method": "nvfp4", "group_size": 16}, "NVFP4"),
    ({"quant_method": "mxfp8"}, "MXFP8"),
    ({"quant_method": "mxfp4"}, "MXFP4"),
    ({"quant_method": "modelopt", "quantization": {"quant_algo": "W4A16_AWQ"}}, "W4A16_AWQ"),
    ({"quant_method": "modelopt", "quant_algo": "fp8", "kv_cache_quant_algo": "FP8"}, "FP8"),
    ({"quant_method": "compressed-tensors"}, None),
])
def test_config_json_quantization_config(tmp_path, qc, algo):
    m = read_quant_meta(_ckpt(tmp_path, {"model_type": "llama", "quantization_config": qc}))
    assert m.quant_algo == algo and m.source == "config.json" and m.quant_method == qc["quant_method"]
    if algo is None:
        assert m.notes and not m.quantized


def test_plain_checkpoint_and_hub_id(tmp_path):
    assert not read_quant_meta(_ckpt(tmp_path)).quantized
    m = read_quant_meta("meta-llama/Llama-3.1-8B-Instruct")
    assert not m.quantized and m.notes
