"""Fake of auto_deploy/llm_args.py, merged era (AutoDeployConfig removed; LlmArgs extends TorchLlmArgs):
kv_cache_config.free_gpu_memory_fraction, cuda_graph_config.batch_sizes, compile default torch-cudagraph."""
from pathlib import Path
from typing import Any, Dict, Literal

from pydantic import Field, model_validator

from ...llmapi.llm_args import TorchLlmArgs
from .utils._config import DynamicYamlMixInForSettings

_SHORTCUTS = {
    "attn_backend": ("insert_cached_attention.backend", "transformers_replace_cached_attn.backend"),
    "compile_backend": ("compile_model.backend",),
}

__all__ = ["LlmArgs"]


class LlmArgs(DynamicYamlMixInForSettings, TorchLlmArgs):
    backend: Literal["_autodeploy"] = Field(default="_autodeploy", frozen=True)
    model_factory: str = Field(default="AutoModelForCausalLM")
    model_kwargs: Dict[str, Any] = Field(default_factory=dict)
    speculative_model_kwargs: Dict[str, Any] = Field(default_factory=dict)
    skip_loading_weights: bool = Field(default=False)
    tokenizer_kwargs: Dict[str, Any] = Field(default_factory=dict)
    world_size: int = Field(default=1, ge=0)
    runtime: Literal["demollm", "trtllm"] = Field(default="trtllm")
    device: str = Field(default="cuda", frozen=True)
    mode: Literal["graph", "transformers"] = Field(default="graph")
    transforms: Dict[str, Dict[str, Any]] = Field(default_factory=dict)
    compile_backend: str = Field(default="torch-cudagraph")

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

    @model_validator(mode="after")
    def _cuda_graph_sizes_to_compile(self):
        cg = self.cuda_graph_config
        if cg is not None and cg.batch_sizes and "compile_model" in self.transforms:
            self.transforms["compile_model"]["cuda_graph_batch_sizes"] = list(cg.batch_sizes)
        return self
