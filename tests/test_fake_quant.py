"""fake-quant YAML: only keys that exist, MoE keys only for MoE models, a comment per key, usable as a config."""
import json
import textwrap

import pytest
import yaml

from harness.cli import main
from harness.config import Catalogue, resolve
from harness.analysis.fake_quant import fake_quant_overlay, is_moe, quant_info, render_fake_quant_yaml

DEFAULT = textwrap.dedent("""\
    transforms:
      build_model: {stage: factory}
      quantize_fp8_linear_from_config: {stage: pattern_matcher}
      match_nvfp4_swiglu_pattern: {stage: pattern_matcher}
      fuse_fp8_gemms: {stage: post_load_fusion, enabled: false}
      fuse_fp8_linear: {stage: post_load_fusion, backend: trtllm}
      fuse_nvfp4_linear: {stage: post_load_fusion, backend: trtllm}
      fuse_fp8_moe: {stage: post_load_fusion, backend: trtllm}
      fuse_nvfp4_moe: {stage: post_load_fusion, backend: cutlass}
      fuse_rmsnorm: {stage: post_load_fusion}
      compile_model: {stage: compile, backend: torch-cudagraph}
    """)


@pytest.fixture
def default_yaml(tmp_path):
    p = tmp_path / "default.yaml"
    p.write_text(DEFAULT)
    return p


def _model(tmp_path, name, **cfg):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama", **cfg}))
    return d


def test_dense_model_gets_linear_keys_only_with_comments(tmp_path, default_yaml):
    cat = Catalogue.from_yaml(default_yaml)
    dense = _model(tmp_path, "dense", hidden_size=64)
    text = render_fake_quant_yaml(cat, {"compile_backend": "torch-simple"}, is_moe(dense), "base.yaml", str(dense))
    data = yaml.safe_load(text)
    off = {n for n, c in data["transforms"].items() if c == {"enabled": False}}
    assert off == {"match_nvfp4_swiglu_pattern", "fuse_fp8_linear", "fuse_nvfp4_linear"}
    assert data["compile_backend"] == "torch-simple"  # the base config is kept
    for name in off:  # one comment line right above each key, saying why
        lines = text.splitlines()
        i = lines.index(f"  {name}:")
        assert lines[i - 1].startswith(f"  # {name}: ") and len(lines[i - 1]) > 40
    assert "fuse_fp8_moe" in text and "not an MoE model" in text  # said, not set
    assert "fuse_fp8_gemms" not in data["transforms"]  # already off in the default: not emitted


def test_moe_model_adds_moe_keys(tmp_path, default_yaml):
    cat = Catalogue.from_yaml(default_yaml)
    moe = _model(tmp_path, "moe", num_local_experts=8)
    assert is_moe(moe) is True
    over = fake_quant_overlay(cat, {}, is_moe(moe))
    assert over["transforms"]["fuse_fp8_moe"] == {"enabled": False}
    assert over["transforms"]["fuse_nvfp4_moe"] == {"enabled": False}
    full = resolve(cat, over)
    assert full["transforms"]["fuse_fp8_linear"]["enabled"] is False
    assert full["transforms"]["fuse_rmsnorm"]["enabled"] is True  # non-quant fusions untouched


def test_only_existing_keys(tmp_path):
    p = tmp_path / "old_default.yaml"  # an older default.yaml without the NVFP4 fusions
    p.write_text("transforms:\n  fuse_fp8_linear: {stage: post_load_fusion, backend: torch}\n"
                 "  fuse_fp8_moe: {stage: post_load_fusion}\n")
    over = fake_quant_overlay(Catalogue.from_yaml(p), {}, True)
    assert set(over["transforms"]) == {"fuse_fp8_linear", "fuse_fp8_moe"}


def test_quant_info_reads_checkpoint(tmp_path):
    q = _model(tmp_path, "q", quantization_config={"quant_method": "fp8"})
    info = quant_info(q)
    assert info["quantized"] is True and info["algo"].lower() == "fp8" and "config.json" in info["source"]
    d = _model(tmp_path, "d")
    assert quant_info(d)["quantized"] is False
    (d / "hf_quant_config.json").write_text(json.dumps({"quantization": {"quant_algo": "NVFP4"}}))
    assert quant_info(d)["algo"] == "NVFP4"


def test_cli_writes_file(tmp_path, default_yaml, capsys):
    base = tmp_path / "base.yaml"
    base.write_text("transforms:\n  fuse_rmsnorm: {enabled: false}\n")
    out = tmp_path / "out" / "fake_quant_debug.yaml"
    rc = main(["fake-quant", "--config", str(base), "-o", str(out), "--default-yaml", str(default_yaml),
               "--model", str(_model(tmp_path, "m", n_routed_experts=64))])
    assert rc == 0
    data = yaml.safe_load(out.read_text())
    assert data["transforms"]["fuse_rmsnorm"] == {"enabled": False}
    assert data["transforms"]["fuse_nvfp4_moe"] == {"enabled": False}


def test_cli_bad_inputs_one_line(tmp_path, default_yaml, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("transforms:\n  fuse_fp8_lineer: {enabled: false}\n")
    rc = main(["fake-quant", "--config", str(bad), "-o", str(tmp_path / "x.yaml"), "--default-yaml", str(default_yaml)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error:") and "fuse_fp8_lineer" in err and "fuse_fp8_linear" in err
    assert len(err.splitlines()) == 1
    rc = main(["fake-quant", "-o", str(tmp_path / "x.yaml"), "--default-yaml", str(default_yaml),
               "--model", str(tmp_path / "nope")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "nope" in err and len(err.splitlines()) == 1


def test_cli_for_tensorrt_llm_drops_emulator_keys_warns_and_says_what_next(tmp_path, default_yaml, capsys):
    base = tmp_path / "base.yaml"
    base.write_text("engine_noise: {strength: 1}\ntransforms:\n  fuse_fp8_linear: {fault: missing_dequant_scale}\n"
                    "  fuse_rmsnorm: {enabled: true, fault: hardcoded_eps, fault_strength: 0.1}\n")
    out = tmp_path / "fq.yaml"
    rc = main(["fake-quant", "--extra_llm_api_options", str(base), "-o", str(out), "--default-yaml", str(default_yaml),
               "--backend", "trtllm-ad", "--model", str(_model(tmp_path, "dense"))])
    assert rc == 0
    text = out.read_text()
    data = yaml.safe_load(text)
    assert "engine_noise" not in data and data["transforms"]["fuse_rmsnorm"] == {"enabled": True}
    assert data["transforms"]["fuse_fp8_linear"] == {"enabled": False}
    assert "transforms.fuse_rmsnorm.fault_strength" in text  # the header says what was left out
    captured = capsys.readouterr()
    assert "is not quantized" in captured.err
    assert f"next: python -m harness diagnose --backend trtllm-ad" in captured.out and str(out) in captured.out
