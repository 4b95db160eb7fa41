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
