from .result import CompletionOutput, Logprob  # noqa: F401
