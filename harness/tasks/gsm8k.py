"""GSM8K exactly as TensorRT-LLM's ``GSM8K`` evaluator gets it from the installed lm-eval ``gsm8k`` task.

Nothing of the task is re-typed here: prompts, stop strings (``until``), answer filters and the
metric come from lm-eval's own task objects.  The steps follow NVIDIA/TensorRT-LLM
``tensorrt_llm/evaluate/lm_eval.py`` (``LmEvalEvaluator.__init__``/``evaluate`` @00dc3b46):

1. ``lm_eval.tasks.get_task_dict("gsm8k", task_manager=TaskManager(...))`` while
   ``TaskConfig.__post_init__`` is patched so ``dataset_path`` is the local directory
   (``_patch_lm_eval``).  TaskManager here indexes only lm-eval's ``tasks/gsm8k`` folder (the same
   installed ``gsm8k.yaml``; indexing every task costs ~6 s; TRT-LLM's extra
   ``lm_eval_tasks`` include path has no ``gsm8k`` override).
2. ``task.set_fewshot_seed(seed)`` and every split ``.shuffle(seed)`` (``_adjust_config``).
3. Prompts: ``task.build_all_requests(limit=n, rank=0, world_size=1, system_instruction=,
   apply_chat_template=, fewshot_as_multiturn=, chat_template=)`` as ``lm_eval.evaluate`` calls it;
   the chat template callable is ``LmEvalWrapper.apply_chat_template``
   (``tokenizer.apply_chat_template(history, tokenize=False, add_generation_prompt=...,
   continue_final_message=not add_generation_prompt, **chat_template_kwargs)``).
4. Generation: ``LmEvalWrapper._get_sampling_params`` maps ``until`` -> ``stop`` and
   ``max_gen_toks`` -> ``max_tokens`` (the yaml sets none, so ``--max_output_length`` 256 applies);
   EOS ends generation (GSM8K runs with ``end_id=None``).
5. Score: each of the task's filter ensembles (``strict-match``, ``flexible-extract``) on the
   output, then ``task.process_results`` (``exact_match``).  The evaluator's number is the mean of
   all non-stderr metrics x100 = mean of the two filters' exact-match rates.

Local data layouts: a Hugging Face snapshot of ``openai/gsm8k`` (``main/`` parquet + README
configs; only ``dataset_path`` is redirected, exactly as TRT-LLM does), or a flat directory with
``train.jsonl`` and ``test.jsonl`` (then the patch also sets ``dataset_name=None`` and
``dataset_kwargs={"data_files": {...}}`` -- the json builder has no ``main`` config).

Per-sample ``correct`` is the **flexible-extract** exact match (did the model reach the right
number); ``detail`` holds both filters' extracted answers and exact matches; ``aggregate()``
returns the evaluator's score (mean of both filters, x100) plus each filter's rate.
``reference`` is the gold number (the text after ``#### `` in the answer), for display; scoring
uses lm-eval's own target.  Sample ids are ``gsm8k/{row}`` with ``row`` the 0-based line of the
test split before shuffling.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

from harness.errors import HarnessError
from harness.tasks.base import PromptOptions, Sample, Score, Task

FILTERS = ("strict-match", "flexible-extract")
LM_EVAL_TASK = "gsm8k"


def resolve_dataset(dataset: str | None) -> Path:
    from harness.tasks.mmlu import resolve_dataset as _resolve

    return _resolve(dataset, task="gsm8k")


def _flat_files(root: Path) -> dict | None:
    files = {split: root / f"{split}.jsonl" for split in ("train", "test")}
    if all(p.is_file() for p in files.values()):
        return {k: str(v) for k, v in files.items()}
    return None


@contextlib.contextmanager
def _quiet():
    """lm-eval/datasets write progress bars and info logs to stderr; keep stdout/stderr clean."""
    loggers = [logging.getLogger(n) for n in ("lm_eval", "lm-eval", "datasets", "huggingface_hub")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def build_lm_eval_task(root: Path, seed: int, num_fewshot: int | None = None):
    """The installed lm-eval ``gsm8k`` task on local data, seeded and shuffled as TRT-LLM does."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import lm_eval
    import lm_eval.api.task
    import lm_eval.tasks
    from lm_eval.tasks import TaskManager

    root = root.resolve()  # datasets resolves relative data_files against dataset_path
    flat = _flat_files(root)
    original = lm_eval.api.task.TaskConfig.__post_init__

    def _patched(task_config, *args, **kwargs):  # TRT-LLM LmEvalEvaluator._patch_lm_eval
        task_config.dataset_path = str(root)
        if flat is not None:
            task_config.dataset_name = None
            task_config.dataset_kwargs = {"data_files": flat}
        original(task_config, *args, **kwargs)

    with _quiet():
        try:
            import datasets

            datasets.disable_progress_bars()
        except Exception:  # noqa: BLE001 - cosmetic only
            pass
        tasks_dir = Path(lm_eval.tasks.__file__).parent / LM_EVAL_TASK
        try:
            manager = TaskManager(include_path=str(tasks_dir), include_defaults=False)
            if LM_EVAL_TASK not in manager.all_tasks:
                manager = TaskManager()
        except TypeError:  # older lm-eval without include_defaults
            manager = TaskManager()
        lm_eval.api.task.TaskConfig.__post_init__ = _patched
        try:
            import warnings

            with warnings.catch_warnings():  # get_task_dict is what TRT-LLM calls; newer lm-eval deprecates it
                warnings.simplefilter("ignore", DeprecationWarning)
                task_dict = lm_eval.tasks.get_task_dict(LM_EVAL_TASK, task_manager=manager)
        except Exception as exc:  # noqa: BLE001 - data problems surface here
            raise HarnessError(
                f"lm-eval could not load the gsm8k data from {str(root)!r} ({type(exc).__name__}: "
                f"{(str(exc).splitlines() or [''])[0][:200]}); pass --dataset with a directory holding "
                f"train.jsonl and test.jsonl (fields question, answer) or a snapshot of openai/gsm8k") from None
        finally:
            lm_eval.api.task.TaskConfig.__post_init__ = original
    task = task_dict[LM_EVAL_TASK]
    if num_fewshot is not None:  # as lm_eval.simple_evaluate overrides it
        task.set_config(key="num_fewshot", value=int(num_fewshot))
    # TRT-LLM _adjust_config: few-shot seed, then shuffle every split with the seed
    task.set_fewshot_seed(seed=seed)
    data = task.dataset
    for split in list(data.keys()):
        data[split] = data[split].shuffle(seed)
    return task


def original_rows(dataset) -> list[int] | None:
    """Row numbers before shuffling (from the datasets indices mapping), or None."""
    indices = getattr(dataset, "_indices", None)
    if indices is None:
        return None
    try:
        return [int(x) for x in indices.column(0).to_pylist()]
    except Exception:  # noqa: BLE001
        return None


def gold_number(answer: str) -> str:
    return answer.split("#### ")[-1].strip() if "#### " in answer else answer.strip()


class LmEvalChatTemplate:
    """``LmEvalWrapper.apply_chat_template`` (tensorrt_llm/evaluate/lm_eval.py)."""

    def __init__(self, tokenizer, chat_template_kwargs: dict | None = None):
        self.tokenizer = tokenizer
        self.kwargs = dict(chat_template_kwargs or {})

    def __call__(self, chat_history, add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(
            chat_history, tokenize=False, add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt, **self.kwargs)


class GSM8KTask(Task):
    name = "gsm8k"
    max_tokens = 256  # GSM8K.command --max_output_length / accuracy_core GSM8K.MAX_OUTPUT_LEN
    max_input_tokens = 4096  # --max_input_length / MAX_INPUT_LEN
    stop = None  # set from lm-eval's generation_kwargs["until"] by samples()
    answer_continuations = None
    end_id_minus_one = False  # stop on EOS and on the stop strings

    def __init__(self):
        self._task = None
        self._key = None

    def lm_task(self, dataset: str | None, seed: int = 0, num_fewshot: int | None = None):
        root = resolve_dataset(dataset)
        key = (str(root), seed, num_fewshot)
        if self._task is None or self._key != key:
            self._task = build_lm_eval_task(root, seed, num_fewshot)
            self._key = key
        return self._task

    def samples(self, dataset: str | None, n: int | None, seed: int, options: PromptOptions) -> list[Sample]:
        from harness.tasks.base import check_seed
        from harness.tasks.mmlu import check_samples

        check_samples(n)
        check_seed(seed)
        if options.fewshot_as_multiturn and not options.apply_chat_template:
            raise HarnessError("--fewshot-as-multiturn needs --apply-chat-template (as trtllm-eval gsm8k "
                               "asserts); add --apply-chat-template --model <model dir>")
        chat = None
        if options.apply_chat_template:
            from harness.tasks.chat import load_tokenizer

            tok = load_tokenizer(options.tokenizer)
            if getattr(tok, "chat_template", None) is None:
                raise HarnessError(f"the tokenizer of {options.tokenizer!r} has no chat template; drop "
                                   f"--apply-chat-template or pass --model with a chat model")
            chat = LmEvalChatTemplate(tok, options.chat_template_kwargs)
        task = self.lm_task(dataset, seed, options.num_fewshot)
        root = self._key[0]
        with _quiet():
            task.build_all_requests(
                limit=n, rank=0, world_size=1, system_instruction=options.system_prompt,
                apply_chat_template=chat is not None, fewshot_as_multiturn=options.fewshot_as_multiturn,
                chat_template=chat, tokenizer_name="")
        rows = original_rows(task.eval_docs)
        out = []
        stops = None
        for inst in task.instances:
            prompt, gen_kwargs = inst.args[0], dict(inst.args[1])
            doc_id = inst.doc_id
            until = gen_kwargs.get("until")
            if isinstance(until, str):
                until = [until]
            stops = list(until or [])
            row = rows[doc_id] if rows is not None else doc_id
            out.append(Sample(
                id=f"gsm8k/{row}", subject="gsm8k", prompt=prompt, reference=gold_number(inst.doc["answer"]),
                meta={"doc": dict(inst.doc), "doc_id": doc_id, "row": row, "gen_kwargs": gen_kwargs,
                      "dataset": root}))
        self.stop = stops
        max_gen = next((s.meta["gen_kwargs"].get("max_gen_toks") for s in out
                        if s.meta["gen_kwargs"].get("max_gen_toks")), None)
        if max_gen:  # LmEvalWrapper maps max_gen_toks -> max_tokens
            self.max_tokens = int(max_gen)
        return out

    def _scoring_task(self, sample: Sample):
        if self._task is None:  # score() without samples(): the filters need only the task config
            self.lm_task(sample.meta.get("dataset"))
        return self._task

    def score(self, sample: Sample, text: str) -> Score:
        from lm_eval.api.instance import Instance

        task = self._scoring_task(sample)
        doc = sample.meta["doc"]
        inst = Instance(request_type="generate_until", doc=doc,
                        arguments=(sample.prompt, sample.meta.get("gen_kwargs", {})), idx=0,
                        metadata=(LM_EVAL_TASK, sample.meta.get("doc_id", 0), 1))
        inst.resps = [text]
        detail = {}
        for ensemble in task._filters:  # lm_eval Task.apply_filters, on this one instance
            ensemble.apply([inst])
            filtered = inst.filtered_resps[ensemble.name]
            metrics = task.process_results(doc, [filtered])
            detail[ensemble.name] = {"extracted": filtered, "exact_match": float(metrics["exact_match"])}
        flex = detail.get("flexible-extract", {})
        parsed = flex.get("extracted")
        if parsed == "[invalid]":
            parsed = None
        return Score(correct=bool(flex.get("exact_match", 0.0)), parsed=parsed, detail=detail)

    def aggregate(self, rows: list[dict]) -> dict:
        """Mean of the two filters' exact-match rates x100 (LmEvalEvaluator.evaluate, scores_filter=None)."""
        if not rows:
            return {"score": float("nan"), "n": 0}
        per = {}
        for f in FILTERS:
            vals = [float((r.get("detail") or {}).get(f, {}).get("exact_match", 0.0)) for r in rows]
            per[f] = 100.0 * sum(vals) / len(vals)
        return {"score": sum(per.values()) / len(per), "n": len(rows),
                "per_filter": {f: {"score": v, "n": len(rows)} for f, v in per.items()}}
