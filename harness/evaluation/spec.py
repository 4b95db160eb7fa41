"""What one evaluation is (``EvalSpec``: backend, model, resolved config, task, samples, sampling)
and what it returns (``EvalResult``: per-sample records, engine info, task metrics), plus the exact
samples and sampling a spec stands for. ``harness/evaluation/run.py`` runs a spec."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from harness.backends.base import SamplingSpec
from harness.tasks.base import PromptOptions


@dataclass
class EvalSpec:
    backend: str
    model: str
    task: str = "mmlu"
    config: dict = field(default_factory=dict)  # resolved AD-style config (empty for hf / trtllm-pt)
    dataset: str | None = None
    samples: int | None = 100
    seed: int = 0
    prompt_options: dict = field(default_factory=dict)  # PromptOptions fields
    sampling: dict = field(default_factory=dict)  # SamplingSpec overrides
    plugins: list[str] = field(default_factory=list)
    label: str = ""  # human-readable name; not part of the cache key
    # an ordered pool of sample ids: the spec's samples are the first ``samples`` of them (all when
    # None), taken from the whole data set instead of the task's own draw (a fresh, disjoint prompt set)
    sample_ids: list[str] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EvalSpec":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class EvalResult:
    status: str  # "ok" | "unresolved"
    records: list[dict] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # versions, device, timings, applied knobs
    metrics: dict[str, Any] = field(default_factory=dict)  # task aggregate (score, n, ...)
    error: str | None = None
    log_tail: str | None = None

    def to_dict(self) -> dict:
        # shallow: records are already plain JSON-shaped dicts, and dataclasses.asdict's recursive
        # copy of every record cost ~0.05 s per call in bisect; callers that mutate deep-copy
        return {f: getattr(self, f) for f in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict) -> "EvalResult":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


_SAMPLES_MEMO: dict = {}  # (sample-determining spec fields, data set file stamps) -> [Sample]


def _dataset_stamp(dataset: str | None):
    """(path, mtime, size) of every file under the data set, so an edited data set is re-read."""
    from pathlib import Path

    if not dataset:
        return None
    p = Path(dataset)
    try:
        files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())
        return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    except OSError:
        return None


def build_samples(spec: EvalSpec):
    """The task and its exact samples for this spec (prompt building only, no model).

    Memoised per process on the fields that determine the samples (task, data set and its file
    stamps, samples, seed, prompt options, sample ids, and the model when a chat template is
    applied): bisect computes the cache key of every configuration from the same samples.
    """
    import json

    from harness.tasks import get_task

    task = get_task(spec.task)
    opts = PromptOptions(**spec.prompt_options)
    if opts.apply_chat_template and not opts.tokenizer:
        opts.tokenizer = spec.model
    memo_key = json.dumps([spec.task, spec.dataset, spec.samples, spec.seed, opts.to_dict(), spec.sample_ids,
                           _dataset_stamp(spec.dataset)], sort_keys=True, default=str)
    samples = _SAMPLES_MEMO.get(memo_key)
    if samples is None:
        if spec.sample_ids is None:
            samples = task.samples(spec.dataset, spec.samples, spec.seed, opts)
        else:  # a pool of ids: the first `samples` of them that the data set holds
            by_id = {s.id: s for s in task.samples(spec.dataset, None, spec.seed, opts)}
            samples = [by_id[i] for i in spec.sample_ids if i in by_id][:spec.samples]
        if len(_SAMPLES_MEMO) > 64:
            _SAMPLES_MEMO.clear()
        _SAMPLES_MEMO[memo_key] = samples
    return task, list(samples)


def prompt_token_limit(task, model: str) -> int | None:
    """``truncate_prompt_tokens`` for every backend alike: the task's MAX_INPUT_LEN, capped at what the model
    holds (its positions minus the answer's ``max_tokens``) so a longer prompt is truncated the same way
    everywhere, as TensorRT-LLM's input processor truncates (harness/backends/hf/generate.py), instead of
    running past the model's positions (an IndexError in the emulator, silent garbage elsewhere)."""
    from harness.backends.model_files import max_positions

    limit = task.max_input_tokens
    positions = max_positions(model)
    if positions is not None and limit is not None and positions - task.max_tokens < limit:
        limit = max(1, positions - task.max_tokens)
    return limit


def sampling_for(task, spec: EvalSpec) -> SamplingSpec:
    sampling = SamplingSpec(
        max_tokens=task.max_tokens,
        stop=task.stop,
        truncate_prompt_tokens=prompt_token_limit(task, spec.model),
        ignore_eos=task.end_id_minus_one,
        answer_continuations=task.answer_continuations,
    )
    for k, v in spec.sampling.items():
        setattr(sampling, k, v)
    return sampling
