"""`python -m harness prompts`: print the exact prompts a task would send, one JSON object per line.

Each line is ``{"id", "subject", "prompt", "reference"}``; compare the ``prompt`` field byte for
byte with what TensorRT-LLM's evaluator sends. The prompt-option flags here are shared with
``diagnose`` (``add_prompt_arguments``; the options are read by ``PromptOptions.from_args``).
"""
from __future__ import annotations

import json
import sys


def add_task_arguments(parser, default_samples=None) -> None:
    """--task, --dataset, --samples, --seed (also spelled as TensorRT-LLM's evaluators do: --dataset_path,
    --num_samples, --random_seed; tensorrt_llm/evaluate/mmlu.py ``MMLU.command``)."""
    parser.add_argument("--task", default="mmlu", help="Task name: mmlu or gsm8k (default mmlu).")
    parser.add_argument("--dataset", "--dataset_path", dest="dataset", default=None, metavar="DIR",
                        help="Data set directory (default $LLM_MODELS_ROOT/datasets/mmlu or "
                             "$LLM_MODELS_ROOT/datasets/openai/gsm8k; MMLU falls back to the shipped demo).")
    parser.add_argument("--samples", "--num_samples", dest="samples", type=int, default=default_samples, metavar="N",
                        help="Number of samples as the evaluator's num_samples (MMLU: ceil(n / subjects) per "
                             f"subject). Default: {'every test row' if default_samples is None else default_samples}.")
    parser.add_argument("--seed", "--random_seed", dest="seed", type=int, default=0, metavar="N",
                        help="Evaluator random_seed (default 0).")


def add_prompt_arguments(parser) -> None:
    """Prompt options as TensorRT-LLM's evaluators take them (their underscore spellings accepted too)."""
    parser.add_argument("--num-fewshot", "--num_fewshot", dest="num_fewshot", type=int, default=None, metavar="N",
                        help="Few-shot examples (default: the task's, 5 for MMLU and GSM8K).")
    parser.add_argument("--apply-chat-template", "--apply_chat_template", dest="apply_chat_template",
                        action="store_true", help="Render each prompt with the model's chat template (needs --model).")
    parser.add_argument("--fewshot-as-multiturn", "--fewshot_as_multiturn", dest="fewshot_as_multiturn",
                        action="store_true", help="GSM8K: few-shot examples as chat turns (needs --apply-chat-template).")
    parser.add_argument("--system-prompt", "--system_prompt", dest="system_prompt", default=None,
                        help="System prompt (chat template only).")
    parser.add_argument("--chat-template-kwargs", "--chat_template_kwargs", dest="chat_template_kwargs", default=None,
                        metavar="JSON", help='Extra chat-template arguments as JSON, e.g. \'{"enable_thinking": false}\'.')


def add_arguments(parser) -> None:
    add_task_arguments(parser)
    add_prompt_arguments(parser)
    parser.add_argument("--model", default=None,
                        help="Model directory whose tokenizer renders the chat template (with --apply-chat-template).")


def run(args) -> int:
    from harness.tasks import get_task
    from harness.tasks.base import PromptOptions

    task = get_task(args.task)
    options = PromptOptions.from_args(args, tokenizer=args.model)
    samples = task.samples(args.dataset, args.samples, args.seed, options)
    try:
        for s in samples:
            sys.stdout.write(json.dumps({"id": s.id, "subject": s.subject, "prompt": s.prompt,
                                         "reference": s.reference}, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `prompts ... | head`
        try:
            sys.stdout = None  # type: ignore[assignment]
        finally:
            return 0
    return 0
