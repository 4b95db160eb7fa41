"""Fake of tensorrt_llm/llmapi/llm_args.py: a subset of BaseLlmArgs / TorchLlmArgs fields (pydantic, extra=forbid)."""
from typing import List, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StrictBaseModel(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())


class KvCacheConfig(StrictBaseModel):
    free_gpu_memory_fraction: Optional[float] = None
    enable_block_reuse: bool = True
    max_tokens: Optional[int] = None
    copy_on_partial_reuse: bool = True


class CudaGraphConfig(StrictBaseModel):
    """Like the real CudaGraphConfig (llmapi/llm_args.py): with neither batch_sizes nor max_batch_size given,
    max_batch_size defaults to 128 and batch_sizes is generated -- so the list is filled by default."""

    batch_sizes: Optional[List[int]] = None
    max_batch_size: int = 0
    enable_padding: bool = False

    @model_validator(mode="after")
    def _fill_batch_sizes(self):
        if self.batch_sizes:
            self.batch_sizes = sorted(self.batch_sizes)
            self.max_batch_size = self.max_batch_size or max(self.batch_sizes)
            return self
        top = self.max_batch_size or 128
        sizes = [1, 2, 4] + [8 * i for i in range(1, 17)] if self.enable_padding else list(range(1, 32)) + [32, 64, 128]
        self.batch_sizes = sorted(s for s in set(sizes) if s <= top)
        self.max_batch_size = top
        return self


class BaseLlmArgs(StrictBaseModel):
    model: str
    tokenizer: Optional[str] = None
    tokenizer_mode: str = "auto"
    skip_tokenizer_init: bool = False
    trust_remote_code: bool = False
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    context_parallel_size: int = 1
    moe_expert_parallel_size: Optional[int] = None
    enable_attention_dp: bool = False
    dtype: str = "auto"
    revision: Optional[str] = None
    tokenizer_revision: Optional[str] = None
    max_batch_size: Optional[int] = 2048
    max_num_tokens: Optional[int] = 8192
    max_seq_len: Optional[int] = None
    max_beam_width: int = 1
    kv_cache_config: KvCacheConfig = Field(default_factory=KvCacheConfig)
    enable_chunked_prefill: bool = False
    gpus_per_node: Optional[int] = None
    backend: Optional[str] = None
    enable_iter_perf_stats: bool = False
    return_perf_metrics: bool = False


class TorchLlmArgs(BaseLlmArgs):
    cuda_graph_config: Optional[CudaGraphConfig] = Field(default_factory=CudaGraphConfig)
    disable_overlap_scheduler: bool = False
    attn_backend: str = "TRTLLM"
    sampler_type: str = "auto"
    moe_config: Optional[dict] = None
