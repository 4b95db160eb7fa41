"""Installed-engine discovery without importing tensorrt_llm, field renames, key/backend validation."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trtllm_fake import fake_logger_handlers_reset, purge_tensorrt_llm, use_fake  # noqa: E402

from harness.backends.trtllm import version as tv  # noqa: E402
from harness.errors import HarnessError  # noqa: E402


@pytest.fixture
def fake(monkeypatch, tmp_path):
    yield lambda era="merged", fault=None: use_fake(monkeypatch, tmp_path, era, fault)
    purge_tensorrt_llm()
    fake_logger_handlers_reset()


@pytest.mark.parametrize("era,version,has,lacks,compile_default", [
    ("merged", "1.2.0rc2", ["cuda_graph_config", "kv_cache_config", "yaml_extra", "world_size", "transforms"],
     ["free_mem_ratio", "cuda_graph_batch_sizes"], "torch-cudagraph"),
    ("autodeploy_config", "1.0.0rc4", ["free_mem_ratio", "cuda_graph_batch_sizes", "kv_cache_config", "yaml_extra"],
     ["cuda_graph_config"], "torch-compile"),
])
def test_discover_reads_files_without_importing(fake, era, version, has, lacks, compile_default):
    from harness.config import load_yaml

    site = fake(era)
    inst = tv.discover()
    assert "tensorrt_llm" not in sys.modules  # nothing was imported
    assert inst.version == version
    assert inst.package_dir == str((site / "tensorrt_llm").resolve())
    assert Path(inst.default_yaml) == (site / "tensorrt_llm/_torch/auto_deploy/config/default.yaml").resolve()
    assert load_yaml(inst.default_yaml)["transforms"]["compile_model"]["backend"] == compile_default
    for f in has:
        assert f in inst.ad_fields, f
    for f in lacks:
        assert f not in inst.ad_fields, f
    assert inst.era == era
    assert "torch-simple" in inst.backends["compile"]
    assert ("triton_paged" in inst.backends["attention"]) == (era == "merged")


def test_fields_match_the_imported_pydantic_model(fake):
    """The ast-parsed field list equals what the worker would get from LlmArgs.model_fields."""
    fake("merged")
    parsed = set(tv.discover().ad_fields)
    from tensorrt_llm._torch.auto_deploy.llm_args import LlmArgs

    assert parsed == set(LlmArgs.model_fields)


def test_no_tensorrt_llm_gives_install_hint(monkeypatch):
    purge_tensorrt_llm()
    monkeypatch.setattr(tv, "package_dir", lambda: None)
    monkeypatch.delenv(tv.DEFAULT_YAML_ENV, raising=False)
    with pytest.raises(HarnessError, match=r'pip install "harness\[trtllm\]".*--default-yaml'):
        tv.default_yaml_path()


def test_default_yaml_override_and_env(fake, tmp_path):
    fake("merged")
    src = tmp_path / "checkout_default.yaml"
    src.write_text("transforms:\n  build_model: {stage: factory}\n")
    assert tv.default_yaml_path(str(src)) == src.resolve()
    with pytest.raises(HarnessError, match="does not exist"):
        tv.default_yaml_path(str(tmp_path / "missing.yaml"))
    tv.set_default_yaml_override(src)
    try:
        assert tv.default_yaml_path() == src.resolve()
        assert tv.discover().default_yaml_overridden
        from harness.backends import get_backend

        assert get_backend("trtllm-ad").default_yaml() == str(src.resolve())
    finally:
        tv.set_default_yaml_override(None)
    assert "checkout_default" not in tv.default_yaml_path().name


MERGED = ["model", "world_size", "transforms", "compile_backend", "attn_backend", "kv_cache_config",
          "cuda_graph_config", "max_seq_len", "yaml_extra"]
OLD = ["model", "world_size", "transforms", "compile_backend", "attn_backend", "kv_cache_config", "free_mem_ratio",
       "cuda_graph_batch_sizes", "max_seq_len", "yaml_extra"]


def test_old_names_mapped_to_merged_era():
    cfg, notes = tv.map_renamed_fields({"free_mem_ratio": 0.8, "cuda_graph_batch_sizes": [1, 8]}, MERGED)
    assert cfg == {"kv_cache_config": {"free_gpu_memory_fraction": 0.8}, "cuda_graph_config": {"batch_sizes": [1, 8]}}
    assert any("free_mem_ratio -> kv_cache_config.free_gpu_memory_fraction" in n for n in notes)


def test_new_names_mapped_to_autodeploy_config_era():
    cfg, notes = tv.map_renamed_fields(
        {"kv_cache_config": {"free_gpu_memory_fraction": 0.7, "enable_block_reuse": False},
         "cuda_graph_config": {"batch_sizes": [1, 2]}}, OLD)
    assert cfg == {"kv_cache_config": {"enable_block_reuse": False}, "free_mem_ratio": 0.7,
                   "cuda_graph_batch_sizes": [1, 2]}  # cuda_graph_config is unknown there: dropped after mapping
    assert len(notes) == 2


def test_old_transform_option_mapped_when_installed_yaml_lacks_it():
    default = {"transforms": {"resize_kv_cache": {"stage": "cache_init"}}}
    cfg, notes = tv.map_renamed_fields({"transforms": {"resize_kv_cache": {"free_mem_ratio": 0.5}}}, MERGED, default)
    assert cfg["kv_cache_config"] == {"free_gpu_memory_fraction": 0.5}
    assert "free_mem_ratio" not in cfg["transforms"]["resize_kv_cache"]
    kept, _ = tv.map_renamed_fields({"transforms": {"resize_kv_cache": {"free_mem_ratio": 0.5}}}, OLD,
                                    {"transforms": {"resize_kv_cache": {"stage": "cache_init", "free_mem_ratio": 0.0}}})
    assert kept == {"transforms": {"resize_kv_cache": {"free_mem_ratio": 0.5}}}


def test_unknown_key_refused_with_valid_list():
    with pytest.raises(HarnessError) as e:
        tv.refuse_unknown_keys({"compile_backnd": "torch-simple", "plugins": []}, MERGED, "AutoDeploy LlmArgs", "1.2.0")
    msg = str(e.value)
    assert "'compile_backnd'" in msg and "also unknown: plugins" in msg
    assert "Did you mean compile_backend" in msg
    assert "Valid keys: " in msg and "cuda_graph_config" in msg and "world_size" in msg
    tv.refuse_unknown_keys({"world_size": 2}, MERGED, "x", None)  # known: no error


def test_backend_names_checked_and_renamed():
    backends = {"compile": ["torch-simple", "torch-cudagraph"], "attention": ["flashinfer", "triton_paged"]}
    cfg, notes = tv.check_backend_names({"attn_backend": "triton", "transforms": {
        "insert_cached_attention": {"backend": "triton"}}}, backends, "1.2")
    assert cfg["attn_backend"] == "triton_paged" and cfg["transforms"]["insert_cached_attention"]["backend"] == "triton_paged"
    assert notes
    with pytest.raises(HarnessError, match="compile_backend='torch-inductor'.*valid: torch-simple, torch-cudagraph"):
        tv.check_backend_names({"compile_backend": "torch-inductor"}, backends, "1.2")
