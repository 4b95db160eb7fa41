"""Fake of tensorrt_llm._torch.auto_deploy: re-exports LLM and LlmArgs like the real package."""
from .llm import *  # noqa: F401,F403
from .llm_args import *  # noqa: F401,F403
