"""Fake of tensorrt_llm/executor/result.py: Logprob and CompletionOutput (newer layout)."""
from dataclasses import dataclass, field
from typing import Optional, Union


@dataclass(slots=True)
class Logprob:
    logprob: float
    rank: Optional[int] = None


@dataclass(slots=True)
class CompletionOutput:
    index: int
    text: str = ""
    token_ids: Optional[list] = field(default_factory=list)
    cumulative_logprob: Optional[float] = None
    logprobs: Optional[list] = field(default_factory=list)  # list[dict[int, Logprob]]
    prompt_logprobs: Optional[list] = field(default_factory=list)
    finish_reason: Optional[str] = None  # 'stop' | 'length' | 'timeout' | 'cancelled'
    stop_reason: Optional[Union[int, str]] = None

    @property
    def length(self) -> int:
        return len(self.token_ids)
