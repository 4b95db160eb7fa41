"""Config operations on AD-style YAML: resolve, strip, knobs, apply, validation errors."""
import textwrap

import pytest

from harness.config import Catalogue, apply_knobs, config_diff, config_hash, knobs_of, load_yaml, resolve, strip_config
from harness.config.ops import validate_transform_names
from harness.errors import HarnessError

DEFAULT = {
    "transforms": {
        "build_model": {"stage": "factory"},
        "detect_sharding": {"stage": "sharding", "allreduce_strategy": "NCCL"},
        "sharding_transform_executor": {"stage": "sharding"},
        "quantize_fp8_linear_from_config": {"stage": "pattern_matcher"},
        "fuse_fp8_linear": {"stage": "post_load_fusion", "backend": "trtllm"},
        "fuse_rmsnorm": {"stage": "post_load_fusion"},
        "fuse_gemms": {"stage": "post_load_fusion", "enabled": False},
        "insert_cached_attention": {"stage": "cache_init", "backend": "trtllm"},
        "multi_stream_gemm": {"stage": "compile", "enabled": False},
        "compile_model": {"stage": "compile", "backend": "torch-cudagraph"},
    }
}


@pytest.fixture
def cat():
    return Catalogue(DEFAULT, "default.yaml")


def test_categories_follow_rules(cat):
    assert cat.category_of("fuse_fp8_linear") == "quant_fusion"
    assert cat.category_of("fuse_rmsnorm") == "fusion"
    assert cat.category_of("detect_sharding") == "sharding"
    assert cat.category_of("multi_stream_gemm") == "multi_stream"
    assert cat.category_of("compile_model") == "compile"
    assert cat.category_of("quantize_fp8_linear_from_config") == "keep"
    assert cat.category_of("build_model") == "keep"


def test_shortcut_wins_over_transform_option(cat):
    full = resolve(cat, {"compile_backend": "torch-simple", "transforms": {"compile_model": {"backend": "torch-opt"}}})
    assert full["transforms"]["compile_model"]["backend"] == "torch-simple"
    assert full["compile_backend"] == "torch-simple"
    # without the shortcut, the transform option is synced back into the shortcut
    full = resolve(cat, {"transforms": {"compile_model": {"backend": "torch-opt"}}})
    assert full["compile_backend"] == "torch-opt"
    assert full["world_size"] == 1


def test_knobs_and_strip(cat):
    user = {"world_size": 2, "transforms": {"multi_stream_gemm": {"enabled": True}}}
    knobs = knobs_of(cat, user)
    names = [k.name for k in knobs]
    assert names == ["world_size", "detect_sharding", "sharding_transform_executor", "fuse_fp8_linear",
                     "fuse_rmsnorm", "multi_stream_gemm", "compile_backend"]
    minimal = resolve(cat, strip_config(user, cat))
    assert minimal["world_size"] == 1 and minimal["compile_backend"] == "torch-simple"
    for n in ("fuse_fp8_linear", "fuse_rmsnorm", "multi_stream_gemm", "detect_sharding"):
        assert minimal["transforms"][n]["enabled"] is False
    assert minimal["transforms"]["quantize_fp8_linear_from_config"].get("enabled", True) is True
    # re-enabling one knob changes exactly that knob
    one = resolve(cat, apply_knobs(user, knobs, {"fuse_rmsnorm"}))
    diff = config_diff(minimal, one)
    assert diff == ["transforms.fuse_rmsnorm.enabled: False -> True"]
    assert config_hash(one) != config_hash(minimal)


def test_sharding_transforms_are_not_knobs_at_world_size_1(cat):
    assert "detect_sharding" not in [k.name for k in knobs_of(cat, {})]


def test_unknown_transform_lists_valid_names(cat):
    with pytest.raises(HarnessError) as e:
        validate_transform_names({"transforms": {"fuse_rmsnrom": {"enabled": False}}}, cat)
    msg = str(e.value)
    assert "fuse_rmsnrom" in msg and "Did you mean fuse_rmsnorm" in msg and "fuse_fp8_linear" in msg


def test_malformed_yaml_names_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(textwrap.dedent("""\
        transforms:
          fuse_rmsnorm:
            enabled: [false
        """))
    with pytest.raises(HarnessError) as e:
        load_yaml(p)
    assert "bad.yaml" in str(e.value) and "line" in str(e.value)
    with pytest.raises(HarnessError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
