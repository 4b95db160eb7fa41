"""Chat-template application, as TensorRT-LLM's evaluators do it.

``tensorrt_llm/evaluate/interface.py`` ``Evaluator.evaluate`` (NVIDIA/TensorRT-LLM @f80d2d11): when
``apply_chat_template`` is set, a string prompt becomes ``[{"role": "user", "content": prompt}]``,
``{"role": "system", "content": system_prompt}`` is put first when a system prompt is given, and
the text sent is ``llm.tokenizer.apply_chat_template(messages, tokenize=False,
add_generation_prompt=True, **chat_template_kwargs)``.  MMLU uses this (the whole few-shot prompt
is one user turn).  GSM8K goes through lm-eval's own chat path (``harness.tasks.gsm8k``).

The tokenizer is the model's (``PromptOptions.tokenizer``, i.e. ``--model``), loaded locally.
"""
from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError
from harness.tasks.base import PromptOptions


def load_tokenizer(path: str | None):
    if not path:
        raise HarnessError("--apply-chat-template needs the model's tokenizer; pass --model <model dir>")
    if not Path(path).expanduser().is_dir():
        raise HarnessError(f"tokenizer directory {path!r} does not exist; pass --model with a local model "
                           f"directory whose tokenizer has a chat template")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(Path(path).expanduser()), local_files_only=True)


def build_messages(prompt: str, system_prompt: str | None = None) -> list[dict]:
    messages = [{"role": "user", "content": prompt}]
    if system_prompt is not None:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


class ChatFormatter:
    def __init__(self, tokenizer, system_prompt: str | None = None, chat_template_kwargs: dict | None = None,
                 name: str = ""):
        if getattr(tokenizer, "chat_template", None) is None:
            raise HarnessError(f"the tokenizer of {name or 'the model'!r} has no chat template; drop "
                               f"--apply-chat-template or pass --model with a chat model")
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.kwargs = dict(chat_template_kwargs or {})

    @classmethod
    def from_options(cls, options: PromptOptions) -> "ChatFormatter":
        return cls(load_tokenizer(options.tokenizer), options.system_prompt, options.chat_template_kwargs,
                   name=options.tokenizer or "")

    def render(self, prompt: str) -> str:
        return self.tokenizer.apply_chat_template(
            build_messages(prompt, self.system_prompt), tokenize=False, add_generation_prompt=True,
            **self.kwargs)
