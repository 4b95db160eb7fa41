"""Task contract: exact prompts in, scored answers out."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.errors import HarnessError


SEED_MAX = 2**32 - 1  # numpy's legacy seeding range (np.random.seed), which the evaluators seed with


def check_seed(seed) -> None:
    """The evaluator's random seed: an integer numpy accepts (else a HarnessError, not numpy's ValueError)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise HarnessError(f"--seed must be an integer from 0 to {SEED_MAX} (numpy's seed range), got {seed!r}; "
                           f"pass e.g. --seed 0")


@dataclass
class PromptOptions:
    """Prompt options, as TensorRT-LLM's evaluators take them (tensorrt_llm/evaluate/interface.py)."""

    num_fewshot: int | None = None  # None: the task's default (MMLU 5, GSM8K 5)
    apply_chat_template: bool = False
    fewshot_as_multiturn: bool = False
    system_prompt: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    tokenizer: str | None = None  # model dir whose tokenizer renders chat templates

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_args(cls, args, tokenizer: str | None = None) -> "PromptOptions":
        """From the command line's prompt flags (``--num-fewshot``, ``--apply-chat-template``,
        ``--fewshot-as-multiturn``, ``--system-prompt``, ``--chat-template-kwargs JSON``)."""
        kwargs = None
        if args.chat_template_kwargs:
            try:
                kwargs = json.loads(args.chat_template_kwargs)
            except json.JSONDecodeError as exc:
                raise HarnessError(f"--chat-template-kwargs {args.chat_template_kwargs!r} is not valid JSON "
                                   f"({exc.msg}); pass a JSON object, e.g. '{{\"enable_thinking\": false}}'") from None
            if not isinstance(kwargs, dict):
                raise HarnessError(f"--chat-template-kwargs must be a JSON object, got {args.chat_template_kwargs!r}; "
                                   f"pass e.g. '{{\"enable_thinking\": false}}'")
        if args.fewshot_as_multiturn and not args.apply_chat_template:
            raise HarnessError("--fewshot-as-multiturn needs --apply-chat-template; add --apply-chat-template "
                               "--model <model dir>")
        return cls(num_fewshot=args.num_fewshot, apply_chat_template=args.apply_chat_template,
                   fewshot_as_multiturn=args.fewshot_as_multiturn, system_prompt=args.system_prompt,
                   chat_template_kwargs=kwargs, tokenizer=tokenizer)


@dataclass
class Sample:
    """One prompt the real evaluator would send."""

    id: str  # stable across runs: e.g. "mmlu/abstract_algebra/17" (row index in the test CSV)
    subject: str
    prompt: str  # the exact text sent to the engine (chat template already applied)
    reference: str  # answer letter (MMLU) or the gold answer string (GSM8K)
    choices: list[str] | None = None  # MMLU: the 4 choice texts
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Score:
    correct: bool
    parsed: str | None  # the answer the scorer extracted ("A", "18", ...) or None
    detail: dict[str, Any] = field(default_factory=dict)  # e.g. per-filter results for GSM8K


class Task:
    """Base class. Subclasses set the class attributes and implement samples() and score()."""

    name: str = ""
    max_tokens: int = 2  # default generation budget (TensorRT-LLM accuracy_core MAX_OUTPUT_LEN)
    max_input_tokens: int = 4094  # truncate_prompt_tokens (MAX_INPUT_LEN)
    stop: list[str] | None = None
    # continuations whose log-probabilities at the first generated position are recorded
    # (MMLU: [" A", " B", " C", " D"]); None for free-generation tasks
    answer_continuations: list[str] | None = None
    end_id_minus_one: bool = True  # MMLU runs as the AD tests do: end_id=-1, never stop on EOS

    def samples(self, dataset: str | None, n: int | None, seed: int, options: PromptOptions) -> list[Sample]:
        raise NotImplementedError

    def score(self, sample: Sample, text: str) -> Score:
        raise NotImplementedError

    def aggregate(self, rows: list[dict]) -> dict:
        """Task score from per-sample records ({'subject','correct',...}); default: mean*100."""
        if not rows:
            return {"score": float("nan"), "n": 0}
        return {"score": 100.0 * sum(bool(r["correct"]) for r in rows) / len(rows), "n": len(rows)}
