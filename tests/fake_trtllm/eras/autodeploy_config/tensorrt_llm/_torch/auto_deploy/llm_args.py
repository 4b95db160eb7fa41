"""Fake of auto_deploy/llm_args.py, AutoDeployConfig era: shortcut fields free_mem_ratio and
cuda_graph_batch_sizes, compile default torch-compile, attn default flashinfer, AD-own sequence fields;
LlmArgs(AutoDeployConfig, BaseLlmArgs) -- no cuda_graph_config."""
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

from pydantic import Field, model_validator

from ...llmapi.llm_args import BaseLlmArgs, KvCacheConfig
from .utils._config import DynamicYamlMixInForSettings

_SHORTCUTS = {
    "attn_backend": ("insert_cached_attention.backend", "transformers_replace_cached_attn.backend"),
    "free_mem_ratio": ("resize_kv_cache.free_mem_ratio",),
    "compile_backend": ("compile_model.backend",),
    "cuda_graph_batch_sizes": ("compile_model.cuda_graph_batch_sizes",),
}

__all__ = ["AutoDeployConfig", "LlmArgs"]


class AutoDeployConfig(DynamicYamlMixInForSettings):
    model: str = Field(description="model path or hub id")
    model_factory: str = Field(default="AutoModelForCausalLM")
    model_kwargs: Dict[str, Any] = Field(default_factory=dict)
    skip_loading_weights: bool = Field(default=False)
    tokenizer: Optional[str] = Field(default=None)
    tokenizer_kwargs: Dict[str, Any] = Field(default_factory=dict)
    skip_tokenizer_init: bool = Field(default=False)
    disable_overlap_scheduler: bool = Field(default=False)
    world_size: int = Field(default=1, ge=0)
    runtime: Literal["demollm", "trtllm"] = Field(default="trtllm")
    device: str = Field(default="cuda", frozen=True)
    kv_cache_dtype: str = Field(default="auto")
    kv_cache_config: KvCacheConfig = Field(default_factory=KvCacheConfig)
    max_beam_width: int = Field(default=1)
    enable_chunked_prefill: bool = Field(default=False)
    mode: Literal["graph", "transformers"] = Field(default="graph")
    transforms: Dict[str, Dict[str, Any]] = Field(default_factory=dict)
    attn_backend: str = Field(default="flashinfer")
    free_mem_ratio: float = Field(default=0.0)
    compile_backend: str = Field(default="torch-compile")
    cuda_graph_batch_sizes: Optional[List[int]] = Field(default=None)
    max_input_len: int = Field(default=1024)
    max_num_tokens: Optional[int] = Field(default=None)
    max_seq_len: int = Field(default=512, ge=1)
    max_batch_size: int = Field(default=8, ge=1)
    attn_page_size: int = Field(default=64, ge=1)

    @classmethod
    def _get_yaml_default_from_mode(cls, mode):
        return {"graph": str(Path(__file__).resolve().parent / "config" / "default.yaml")}.get(mode)

    @model_validator(mode="after")
    def _sync_shortcuts(self):
        for shortcut, targets in _SHORTCUTS.items():
            for target in targets:
                t_name, key = target.split(".")
                if t_name not in self.transforms:
                    continue
                if shortcut in self.model_fields_set:
                    self.transforms[t_name][key] = getattr(self, shortcut)
                setattr(self, shortcut, self.transforms[t_name][key])
        return self


class LlmArgs(AutoDeployConfig, BaseLlmArgs):
    backend: Literal["_autodeploy"] = Field(default="_autodeploy", frozen=True)
    gpus_per_node: int = Field(default=0, frozen=True)
    garbage_collection_gen0_threshold: int = Field(default=20000)
