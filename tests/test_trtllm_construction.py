"""How trtllm-ad / trtllm-pt construct the engine, for each AutoDeploy API era (fake tensorrt_llm)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from trtllm_fake import fake_logger_handlers_reset, purge_tensorrt_llm, use_fake  # noqa: E402

from harness.backends import get_backend  # noqa: E402
from harness.backends.trtllm import version as tv  # noqa: E402
from harness.backends.trtllm.ad import plan_ad  # noqa: E402
from harness.backends.trtllm.pt import plan_pt  # noqa: E402
from harness.config import Catalogue, load_yaml, resolve  # noqa: E402
from harness.errors import HarnessError  # noqa: E402


@pytest.fixture
def fake(monkeypatch, tmp_path):
    yield lambda era="merged", fault=None: use_fake(monkeypatch, tmp_path, era, fault)
    purge_tensorrt_llm()
    fake_logger_handlers_reset()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fixtures.tiny_llama import build_tiny_llama

    return str(build_tiny_llama(tmp_path_factory.mktemp("tiny")))


def _install(fake, era):
    fake(era)
    inst = tv.discover()
    return inst, load_yaml(inst.default_yaml)


USER = {"compile_backend": "torch-simple", "transforms": {"fuse_moe": {"enabled": False}}}


def test_plan_merged_era(fake):
    inst, default = _install(fake, "merged")
    plan = plan_ad("/m", {**USER, "free_mem_ratio": 0.8}, default, valid_fields=inst.ad_fields,
                   backends=inst.backends, version=inst.version, yaml_extra_path="/w/x.yaml")
    assert plan.kwargs == {"model": "/m", "world_size": 1, "compile_backend": "torch-simple", "attn_backend": "trtllm",
                           "yaml_extra": ["/w/x.yaml"]}
    assert plan.yaml_extra_content == {
        "transforms": {"fuse_moe": {"enabled": False}, "compile_model": {"backend": "torch-simple"}},
        "kv_cache_config": {"free_gpu_memory_fraction": 0.8}}
    assert any("free_mem_ratio -> kv_cache_config.free_gpu_memory_fraction" in n for n in plan.notes)


def test_plan_autodeploy_config_era(fake):
    inst, default = _install(fake, "autodeploy_config")
    plan = plan_ad("/m", {**USER, "kv_cache_config": {"free_gpu_memory_fraction": 0.7}}, default,
                   valid_fields=inst.ad_fields, backends=inst.backends, version=inst.version, yaml_extra_path="/w/x.yaml")
    assert plan.kwargs == {"model": "/m", "world_size": 1, "compile_backend": "torch-simple", "attn_backend": "flashinfer",
                           "yaml_extra": ["/w/x.yaml"]}
    assert plan.yaml_extra_content == {
        "transforms": {"fuse_moe": {"enabled": False}, "compile_model": {"backend": "torch-simple"}},
        "free_mem_ratio": 0.7}


def test_plan_is_the_same_for_an_overlay_and_its_resolved_config(fake):
    inst, default = _install(fake, "merged")
    kw = dict(valid_fields=inst.ad_fields, backends=inst.backends, version=inst.version, yaml_extra_path="/x.yaml")
    a = plan_ad("/m", {**USER, "world_size": 2}, default, **kw)
    b = plan_ad("/m", resolve(Catalogue(default), {**USER, "world_size": 2}), default, **kw)
    assert a.kwargs == b.kwargs and a.yaml_extra_content == b.yaml_extra_content
    assert a.kwargs["world_size"] == 2 and "world_size" not in a.yaml_extra_content


def test_plan_defaults_only_passes_world_size_and_no_yaml(fake):
    inst, default = _install(fake, "merged")
    plan = plan_ad("/m", {}, default, valid_fields=inst.ad_fields, backends=inst.backends, version=inst.version)
    assert plan.kwargs == {"model": "/m", "world_size": 1, "compile_backend": "torch-cudagraph", "attn_backend": "trtllm"}
    assert plan.yaml_extra_content == {} and plan.requested == {}


@pytest.mark.parametrize("config,match", [
    ({"transforms": {"fuse_rmsnrom": {"enabled": False}}}, r"fuse_rmsnrom.*Did you mean fuse_rmsnorm"),
    ({"free_mem_ratoi": 0.5}, r"free_mem_ratoi.*Valid keys: .*kv_cache_config"),
    ({"compile_backend": "inductor"}, r"valid: torch-compile, torch-cudagraph, torch-opt, torch-simple"),
])
def test_bad_config_refused_before_loading(fake, tiny_model, config, match):
    fake("merged")
    with pytest.raises(HarnessError, match=match):
        get_backend("trtllm-ad").open(tiny_model, config, {})


@pytest.mark.parametrize("era,user,expect_compile,expect_attn", [
    ("merged", {**USER, "free_mem_ratio": 0.8}, "torch-simple", "trtllm"),
    ("autodeploy_config", {**USER, "attn_backend": "triton_paged",
                           "kv_cache_config": {"free_gpu_memory_fraction": 0.7}}, "torch-simple", "triton"),
])
def test_open_constructs_the_engine_as_requested(fake, tiny_model, era, user, expect_compile, expect_attn):
    fake(era)
    with get_backend("trtllm-ad").open(tiny_model, user, {}) as eng:
        info = eng.info()
        args = eng.llm.args
        yaml_file = Path(info["ad_kwargs"]["yaml_extra"][0])
        assert yaml.safe_load(yaml_file.read_text()) == info["ad_yaml_extra"]
    assert args.compile_backend == expect_compile and args.transforms["compile_model"]["backend"] == expect_compile
    assert args.attn_backend == expect_attn and args.transforms["insert_cached_attention"]["backend"] == expect_attn
    assert args.transforms["fuse_moe"]["enabled"] is False
    if era == "merged":
        assert args.kv_cache_config.free_gpu_memory_fraction == 0.8
    else:
        assert args.free_mem_ratio == 0.7 and args.transforms["resize_kv_cache"]["free_mem_ratio"] == 0.7
        assert any("triton_paged -> triton" in w for w in info["warnings"])
    assert args.world_size == 1 and info["ad_kwargs"]["world_size"] == 1
    rec = {r["transform"]: r for r in info["transforms"]}
    assert rec["fuse_moe"]["enabled"] is False and rec["fuse_moe"]["skipped"] is True
    assert info["engine_version"] == ("1.2.0rc2" if era == "merged" else "1.0.0rc4")
    assert not yaml_file.exists()  # temporary work dir removed on close


def test_default_yaml_override_is_passed_as_yaml_default(fake, tiny_model, tmp_path):
    site = fake("merged")
    default = load_yaml(site / "tensorrt_llm/_torch/auto_deploy/config/default.yaml")
    del default["transforms"]["optimize_rope"]
    checkout = tmp_path / "checkout_default.yaml"
    checkout.write_text(yaml.safe_dump(default))
    tv.set_default_yaml_override(checkout)
    try:
        with get_backend("trtllm-ad").open(tiny_model, {}, {}) as eng:
            info = eng.info()
    finally:
        tv.set_default_yaml_override(None)
    assert info["ad_kwargs"]["yaml_default"] == str(checkout.resolve())
    assert "optimize_rope" not in {r["transform"] for r in info["transforms"]}  # AD loaded the checkout's pipeline


def test_plan_pt():
    kw, notes = plan_pt("/m", {"world_size": 2, "max_batch_size": 64}, ["tensor_parallel_size", "max_batch_size"])
    assert kw == {"model": "/m", "tensor_parallel_size": 2, "max_batch_size": 64} and notes
    assert plan_pt("/m", {}, ["tensor_parallel_size"]) == ({"model": "/m"}, [])
    with pytest.raises(HarnessError, match="AutoDeploy-only config keys transforms"):
        plan_pt("/m", {"transforms": {}}, None)
    with pytest.raises(HarnessError, match="max_batch_sise.*Valid keys: max_batch_size"):
        plan_pt("/m", {"max_batch_sise": 3}, ["max_batch_size"])


def test_pt_open_through_fake(fake, tiny_model):
    fake("merged")
    with get_backend("trtllm-pt").open(tiny_model, {"max_batch_size": 16}, {}) as eng:
        info = eng.info()
        assert eng.llm.args.max_batch_size == 16
    assert info["pt_kwargs"] == {"model": tiny_model, "max_batch_size": 16}
    assert info["backend"] == "trtllm-pt" and info["engine_version"] == "1.2.0rc2"
    assert eng.llm._shutdown  # shut down on close


@pytest.mark.parametrize("era, mha", [("merged", ["flashinfer", "torch", "triton_paged"]),
                                      ("autodeploy_config", ["flashinfer", "torch", "triton"])])
def test_core_path_ladder_rungs_from_the_installed_registries(fake, era, mha):
    """Attention rungs: the installed version's registered multi-head attention kernels other than the current
    one (never its MLA / conv / residual cache backends); a KV-cache rung only for a non-auto dtype; compile rungs:
    the other registered compile backends."""
    fake(era)
    backend = get_backend("trtllm-ad")
    current = "trtllm" if era == "merged" else "triton"
    rungs = backend.core_alternatives({"attn_backend": current, "compile_backend": "torch-simple"})
    assert [r["value"] for r in rungs if r["axis"] == "attn_backend"] == [n for n in mha if n != current]
    assert all(r["config"] == {"attn_backend": r["value"]} and r["from"] == current
               for r in rungs if r["axis"] == "attn_backend")
    assert [r["value"] for r in rungs if r["axis"] == "compile_backend"] == ["torch-compile", "torch-cudagraph",
                                                                             "torch-opt"]
    assert not [r for r in rungs if r["axis"] == "kv_cache_dtype"]
    kv = backend.core_alternatives({"attn_backend": current, "kv_cache_config": {"dtype": "fp8"}})
    assert [r for r in kv if r["axis"] == "kv_cache_dtype"] == [
        {"axis": "kv_cache_dtype", "from": "fp8", "value": "auto", "config": {"kv_cache_config": {"dtype": "auto"}}}]
