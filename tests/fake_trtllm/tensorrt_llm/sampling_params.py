"""Fake of tensorrt_llm/sampling_params.py: the fields and the _setup / stop-word behaviour the harness relies on."""
from dataclasses import dataclass, field
from typing import List, Optional, Union


@dataclass(slots=True, kw_only=True)
class SamplingParams:
    end_id: Optional[int] = None
    pad_id: Optional[int] = None
    max_tokens: int = 32
    stop: Optional[Union[str, List[str]]] = None
    stop_token_ids: Optional[List[int]] = None
    include_stop_str_in_output: bool = False
    _stop_word_ids: Optional[List[List[int]]] = field(default=None, init=False, repr=False)
    n: int = 1
    best_of: Optional[int] = None
    use_beam_search: bool = False
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    seed: Optional[int] = None
    temperature: Optional[float] = None
    logprobs: Optional[int] = None
    prompt_logprobs: Optional[int] = None
    return_context_logits: bool = False
    return_generation_logits: bool = False
    ignore_eos: bool = False
    detokenize: bool = True
    add_special_tokens: bool = True
    truncate_prompt_tokens: Optional[int] = None
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True

    def __post_init__(self):
        if self.pad_id is None:
            self.pad_id = self.end_id
        self.best_of = self.best_of or self.n
        if self.truncate_prompt_tokens is not None and self.truncate_prompt_tokens < 1:
            raise ValueError(f"truncate_prompt_tokens must be >= 1, got {self.truncate_prompt_tokens}")
        if self.best_of > 1 and not self.use_beam_search and self.top_k in (None, 1):
            raise ValueError("Greedy decoding in the LLM API does not allow multiple returns.")
        self.logprobs = self.logprobs and int(self.logprobs)

    @property
    def _greedy_decoding(self) -> bool:
        return not self.use_beam_search and (
            (self.temperature is None and self.top_p is None and self.top_k is None)
            or self.top_k == 1 or self.top_p == 0.0 or self.temperature == 0)

    def _setup(self, tokenizer, hf_model_config=None, generation_config=None, add_special_tokens: bool = False):
        if self.end_id is None:
            self.end_id = tokenizer.eos_token_id
            self.pad_id = tokenizer.pad_token_id
            if self.pad_id is None:
                self.pad_id = self.end_id
        if self.stop is not None:
            strs = [self.stop] if isinstance(self.stop, str) else self.stop
            self._stop_word_ids = [tokenizer.encode(s, add_special_tokens=add_special_tokens) for s in strs]
        return self

    def _get_stop_words(self) -> List[List[int]]:
        words = [[i] for i in (self.stop_token_ids or [])]
        if self.stop is None:
            return words
        if self._stop_word_ids is None:
            raise RuntimeError(f"{self.__class__.__name__}.stop ({self.stop}) is not processed by tokenizer, "
                               "please call the setup method.")
        return words + self._stop_word_ids
