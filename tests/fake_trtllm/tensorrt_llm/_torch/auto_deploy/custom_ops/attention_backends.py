"""Fake AD attention registrations (names registered by the real custom_ops/ via AttentionRegistry.register:
MHA backends flashinfer, trtllm, torch, triton_paged; the registry also holds the cache backends of the
other insert_cached_* transforms, e.g. trtllm_mla, cuda_causal_conv, torch_causal_conv, cached_residual_add)."""
from . import AttentionRegistry


@AttentionRegistry.register("flashinfer")
class FlashInferAttention:
    pass


@AttentionRegistry.register("trtllm")
class TrtllmAttention:
    pass


@AttentionRegistry.register("torch")
class TorchBackendAttention:
    pass


@AttentionRegistry.register("triton_paged")
class TritonPagedAttention:
    pass


@AttentionRegistry.register("trtllm_mla")
class TrtllmMLAAttention:
    pass


@AttentionRegistry.register("cuda_causal_conv")
class CudaBackendCausalConv:
    pass


@AttentionRegistry.register("cached_residual_add")
class CachedResidualAdd:
    pass
