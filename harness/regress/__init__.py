"""Nightly accuracy regression: suite parsing, TensorRT-LLM references, jobs, JUnit, history."""
