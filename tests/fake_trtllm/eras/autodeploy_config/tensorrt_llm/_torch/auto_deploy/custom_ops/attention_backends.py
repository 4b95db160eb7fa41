from . import AttentionRegistry


@AttentionRegistry.register("flashinfer")
class FlashInferAttention:
    pass


@AttentionRegistry.register("triton")
class TritonAttention:
    pass


@AttentionRegistry.register("torch")
class TorchBackendAttention:
    pass
