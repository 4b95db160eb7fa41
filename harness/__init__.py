"""harness: tell, with evidence, why AutoDeploy scores lower than the PyTorch backend.

Importing this package is cheap: torch, transformers, lm_eval and tensorrt_llm are only
imported by the backend or feature that needs them.
"""
__version__ = "0.1.0"
