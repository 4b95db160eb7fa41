"""FAKE tensorrt_llm for the harness tests -- not NVIDIA's package.

Mimics the call shapes the harness adapters use (tensorrt_llm.LLM, tensorrt_llm.SamplingParams,
tensorrt_llm._torch.auto_deploy.LLM / LlmArgs, RequestOutput, generate / generate_async().result(),
context manager + shutdown, AD's per-transform log lines, the default.yaml at the real package path).
Numerics come from a transformers model run through the harness's own CPU path
(harness.backends.hf.generate); a transform named as faulty (tensorrt_llm/_fake/fault.json or
$FAKE_TRTLLM_FAULT) corrupts the model when AD runs it enabled.  See tests/fake_trtllm/make_fake.py.
"""
from .version import __version__  # noqa: F401
from .sampling_params import SamplingParams  # noqa: F401
from .llmapi import LLM, RequestOutput  # noqa: F401

__all__ = ["LLM", "SamplingParams", "RequestOutput", "__version__"]
