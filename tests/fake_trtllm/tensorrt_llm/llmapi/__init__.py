from ..sampling_params import SamplingParams  # noqa: F401
from .llm import LLM, RequestOutput  # noqa: F401
from .llm_args import CudaGraphConfig, KvCacheConfig, TorchLlmArgs  # noqa: F401
