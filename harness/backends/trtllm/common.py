"""What the AutoDeploy and PyTorch adapters share: SamplingParams, submission, output conversion, environment.

Both backends decode with the same ``SamplingParams`` semantics (NVIDIA/TensorRT-LLM sources read via
the search tools; commits in brackets):

* greedy: every sampling knob left None (tensorrt_llm/sampling_params.py ``params_imply_greedy_decoding``:
  temperature, top_p, top_k all None -> greedy) and ``n=1, use_beam_search=False`` as the AD accuracy
  tests pass them (tests/integration/defs/accuracy/test_llm_api_autodeploy.py@4e711b93);
* ``max_tokens`` and ``truncate_prompt_tokens`` from the task (MMLU: 2 and 4094, accuracy_core.py);
* ``SamplingSpec.ignore_eos`` without stop strings -> ``end_id=-1, pad_id=-1`` (the AD MMLU tests:
  never stop on EOS, exactly max_tokens tokens);
* stop strings (GSM8K) -> ``end_id`` left None: ``BaseLLM._prepare_sampling_params`` only calls
  ``SamplingParams._setup`` -- which tokenizes ``stop`` into ``_stop_word_ids`` -- when ``end_id is None``
  (tensorrt_llm/llmapi/llm.py, newest stored version), and ``_get_stop_words`` raises "stop ... is not
  processed by tokenizer" otherwise (sampling_params.py@000a01de).  With stop strings *and*
  ignore_eos the ``ignore_eos=True`` field is used instead of end_id=-1;
* ``logprobs=k`` (top-k log-probabilities per generated token) when the engine accepts it; a
  request that fails because of logprobs is resubmitted with fewer / none and the info says so.

All prompts are submitted before the first result is awaited, exactly like
``Evaluator.evaluate`` (tensorrt_llm/evaluate/interface.py@036a60f7: ``generate_async`` per prompt,
then ``.result()`` on each), so the runtime batches them in flight.

Output (tensorrt_llm/executor/result.py@005bc848): ``RequestOutput.outputs[0]`` is a
``CompletionOutput`` with ``text``, ``token_ids``, ``finish_reason`` ('stop' | 'length' | 'timeout'
| 'cancelled'), ``stop_reason`` (the stop string or token id), and ``logprobs``: a list with one
``{token_id: Logprob(logprob, rank)}`` dict per generated token (top-k plus the sampled token); very
old versions return a plain list of floats (the sampled token's log-probability only).
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
import time
from pathlib import Path

from harness.backends.base import Backend, Completion, Engine, SamplingSpec, package_versions
from harness.backends.trtllm import version as tv
from harness.errors import HarnessError

ANSWER_TOP_K = 20  # logprobs requested when answer letters must be found at the first position
MODELS_ROOT_ENV = "LLM_MODELS_ROOT"
DUMP_ENV = "AD_DUMP_GRAPHS_DIR"
# AD's graph dump files: NNN_<stage>_<transform>.txt (auto_deploy/utils/graph_writer.py)
_DUMP_FILE_RE = re.compile(r"^\d+_.*\.txt$")


# ----------------------------------------------------------------------------------------------
# SamplingParams
# ----------------------------------------------------------------------------------------------

def logprobs_to_request(spec: SamplingSpec) -> int | None:
    """How many log-probabilities to ask for per generated token (None: none)."""
    k = max(0, int(spec.top_logprobs or 0))
    if spec.answer_continuations:
        k = max(k, ANSWER_TOP_K)
    return k or None


def sampling_kwargs(spec: SamplingSpec, logprobs: int | None) -> dict:
    """Keyword arguments for ``tensorrt_llm.SamplingParams`` (see the module docstring for each rule)."""
    kw: dict = {"max_tokens": int(spec.max_tokens), "n": 1, "use_beam_search": False}
    if spec.truncate_prompt_tokens is not None:
        kw["truncate_prompt_tokens"] = int(spec.truncate_prompt_tokens)
    stops = [s for s in (spec.stop or []) if s]
    if stops:
        kw["stop"] = stops
        if spec.ignore_eos:
            kw["ignore_eos"] = True
    elif spec.ignore_eos:
        kw["end_id"] = -1
        kw["pad_id"] = -1
    if logprobs:
        kw["logprobs"] = int(logprobs)
    return kw


def accepted_fields(cls) -> set[str] | None:
    """Constructor arguments of a SamplingParams class (dataclass fields or signature)."""
    if dataclasses.is_dataclass(cls):
        return {f.name for f in dataclasses.fields(cls) if f.init}
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return None
    return set(params)


def make_sampling_params(cls, kwargs: dict) -> tuple[object, list[str]]:
    """``cls(**kwargs)`` with arguments the installed version does not have dropped (and reported)."""
    fields = accepted_fields(cls)
    notes = []
    if fields is not None:
        for k in [k for k in kwargs if k not in fields]:
            notes.append(f"SamplingParams has no {k!r} in this version; not set")
            kwargs = {kk: v for kk, v in kwargs.items() if kk != k}
    return cls(**kwargs), notes


def describe_sampling_params(sp) -> dict:
    """The fields of a SamplingParams that decide the outputs (for info / the report)."""
    out = {}
    for k in ("max_tokens", "end_id", "pad_id", "stop", "ignore_eos", "truncate_prompt_tokens", "logprobs", "n",
              "use_beam_search", "temperature", "top_k", "top_p", "add_special_tokens", "skip_special_tokens"):
        if hasattr(sp, k):
            v = getattr(sp, k)
            out[k] = v if isinstance(v, (int, float, str, bool, type(None), list)) else repr(v)
    return out


# ----------------------------------------------------------------------------------------------
# Submission
# ----------------------------------------------------------------------------------------------

def submit_all(llm, prompts: list[str], sampling_params) -> list:
    """Every prompt submitted first (in-flight batching), then every result awaited, in order."""
    from harness.backends.progress import report_samples

    futures = [llm.generate_async(p, sampling_params=sampling_params) for p in prompts]
    out = []
    for f in futures:  # awaited in order: progress is the prefix done, a lower bound
        out.append(f.result())
        report_samples(len(out), len(futures))
    return out


def _is_logprob_error(exc: BaseException) -> bool:
    return "logprob" in f"{type(exc).__name__}: {exc}".lower()


def generate_all(llm, prompts: list[str], spec: SamplingSpec, sp_cls) -> tuple[list, dict]:
    """Submit all prompts; on a logprobs-related failure retry with 1 log-probability, then none.

    Returns (request outputs, details: {"logprobs": k used, "sampling_params": ..., "warnings": [...]}).
    """
    k = logprobs_to_request(spec)
    tries = [k] + ([1] if k and k > 1 else []) + ([None] if k else [])
    warnings: list[str] = []
    last: BaseException | None = None
    for k_try in tries:
        sp, notes = make_sampling_params(sp_cls, sampling_kwargs(spec, k_try))
        try:
            outs = submit_all(llm, prompts, sp)
        except Exception as exc:  # noqa: BLE001 - only logprob failures are retried
            if k_try and _is_logprob_error(exc):
                warnings.append(f"logprobs={k_try} rejected by the engine ({type(exc).__name__}: {str(exc)[:200]}); "
                                "retrying with fewer")
                last = exc
                continue
            raise
        return outs, {"logprobs": k_try, "sampling_params": describe_sampling_params(sp), "warnings": warnings + notes}
    assert last is not None
    raise last


# ----------------------------------------------------------------------------------------------
# Output conversion
# ----------------------------------------------------------------------------------------------

def hf_tokenizer(tok):
    """The transformers tokenizer inside TensorRT-LLM's ``TransformersTokenizer`` (``.tokenizer``)."""
    inner = getattr(tok, "tokenizer", None)
    return inner if inner is not None and hasattr(inner, "convert_ids_to_tokens") else tok


def _lp(v) -> float:
    v = getattr(v, "logprob", v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def logprob_rows(logprobs, token_ids: list[int]) -> tuple[list[dict[int, float]], str]:
    """Per generated position {token_id: logprob}, and the format seen ("topk" | "sampled-only" | "none")."""
    if not logprobs:
        return [], "none"
    rows: list[dict[int, float]] = []
    if isinstance(logprobs[0], dict):
        for row in logprobs:
            rows.append({int(t): _lp(v) for t, v in row.items()})
        return rows, "topk"
    for tid, v in zip(token_ids, logprobs):  # old format: one float per generated token
        rows.append({int(tid): _lp(v)})
    return rows, "sampled-only"


def finish_reason(co, ignore_eos: bool) -> str:
    """Harness finish reason: 'length' | 'stop' (stop string) | 'eos' | the engine's own word."""
    fr = getattr(co, "finish_reason", None)
    if fr == "stop":
        return "stop" if isinstance(getattr(co, "stop_reason", None), str) or ignore_eos else "eos"
    return str(fr) if fr else "length"


def to_completion(out, tok, spec: SamplingSpec, cont_ids: dict[str, int]) -> Completion:
    """A harness Completion from one RequestOutput.

    ``tok`` is the transformers tokenizer (token ids -> the same token strings the hf backend uses);
    ``cont_ids`` maps each answer continuation (" A") to its token id.  Continuations absent from the
    first position's top-k are left out of ``answer_logprobs`` and listed in
    ``extra["answer_logprobs_missing"]``.
    """
    from harness.backends.hf.generate import token_key

    co = out.outputs[0]
    token_ids = [int(t) for t in (getattr(co, "token_ids", None) or [])]
    rows, fmt = logprob_rows(getattr(co, "logprobs", None), token_ids)
    # top-k rows are keyed by token text; a tokenizer that cannot name ids drops them (convert_outputs warns)
    k_keep = max(0, int(spec.top_logprobs or 0)) if hasattr(tok, "convert_ids_to_tokens") else 0
    top = None
    if rows and k_keep:
        top = []
        for row in rows:
            best = sorted(row.items(), key=lambda kv: (-kv[1] if math.isfinite(kv[1]) else math.inf))[:k_keep]
            top.append({token_key(tok, t): lp for t, lp in best})
    answer = None
    missing: list[str] = []
    if cont_ids and rows:
        first = rows[0]
        answer = {c: first[tid] for c, tid in cont_ids.items() if tid in first} or None
        missing = [c for c, tid in cont_ids.items() if tid not in first]
    prompt_ids = getattr(out, "prompt_token_ids", None)
    extra = {"logprobs_format": fmt}
    if missing:
        extra["answer_logprobs_missing"] = missing
    sr = getattr(co, "stop_reason", None)
    if sr is not None:
        extra["stop_reason"] = sr if isinstance(sr, (str, int)) else repr(sr)
    return Completion(
        text=getattr(co, "text", "") or "",
        token_ids=token_ids,
        finish_reason=finish_reason(co, spec.ignore_eos),
        prompt_token_ids=None if prompt_ids is None else [int(t) for t in prompt_ids],
        top_logprobs=top,
        answer_logprobs=answer,
        extra=extra,
    )


def continuation_ids(tok, continuations: list[str] | None) -> dict[str, int]:
    from harness.backends.hf.generate import continuation_token_id

    out = {}
    for c in continuations or []:
        try:
            out[c] = continuation_token_id(tok, c)
        except Exception:  # noqa: BLE001 - a tokenizer that cannot encode it: no answer logprob
            continue
    return out


def convert_outputs(outs: list, tok, spec: SamplingSpec) -> tuple[list[Completion], dict]:
    """Completions plus a summary of log-probability coverage for info."""
    cont = continuation_ids(tok, spec.answer_continuations)
    comps = [to_completion(o, tok, spec, cont) for o in outs]
    n_missing = sum(1 for c in comps if c.extra.get("answer_logprobs_missing"))
    fmts = sorted({c.extra.get("logprobs_format") for c in comps})
    longest = max((len(c.prompt_token_ids or []) for c in comps), default=0)
    limit = spec.truncate_prompt_tokens
    truncated = sum(1 for c in comps if limit and c.prompt_token_ids is not None and len(c.prompt_token_ids) >= limit)
    out = {"answer_logprobs_incomplete": n_missing, "logprobs_format": fmts, "longest_prompt_tokens": longest,
           "truncated_prompts": truncated, "warnings": []}
    if truncated:
        # both input processors encode with truncation=True, max_length=N (auto_deploy/llm.py@01d93fe0
        # ADInputProcessor "to reflect DefaultInputProcessor"): the tokenizer's truncation_side decides the end cut
        out["warnings"].append(f"{truncated} prompts reached truncate_prompt_tokens={limit} and were truncated "
                               "(tokenizer truncation_side decides which end)")
    if spec.top_logprobs and not hasattr(tok, "convert_ids_to_tokens"):
        out["warnings"].append(f"the tokenizer ({type(tok).__name__}) has no convert_ids_to_tokens: top-k "
                               "log-probabilities dropped from the records (answer-letter log-probabilities kept)")
    return comps, out


def seq_len_warning(max_seq_len, longest_prompt: int, max_tokens: int) -> str | None:
    """AD's own max_seq_len default (512 in the AutoDeployConfig era, llm_args.py@3e906a0e; also 512 in
    examples/auto_deploy/model_registry/configs/dashboard_default.yaml) is easily shorter than a
    5-shot MMLU prompt: say so instead of letting outputs silently degrade."""
    try:
        msl = int(max_seq_len)
    except (TypeError, ValueError):
        return None
    need = int(longest_prompt) + int(max_tokens)
    if longest_prompt and msl < need:
        return (f"engine max_seq_len={msl} < longest prompt ({longest_prompt} tokens) + max_tokens ({max_tokens}); "
                f"set max_seq_len >= {need} in the config")
    return None


# ----------------------------------------------------------------------------------------------
# Environment: models root, torchrun, graph dumps, device
# ----------------------------------------------------------------------------------------------

def resolve_model(model: str) -> tuple[str, str | None]:
    """(path or hub id to load, note).  Honours $LLM_MODELS_ROOT (never sets or changes it):
    a relative name that is not a local path but exists under the root is taken from there."""
    p = Path(model).expanduser()
    if p.exists():
        return str(p.resolve()), None
    root = os.environ.get(MODELS_ROOT_ENV)
    if root and not p.is_absolute():
        cand = Path(root) / model
        if cand.exists():
            return str(cand.resolve()), f"model {model!r} found under ${MODELS_ROOT_ENV}={root}"
    return model, None


TORCHRUN_VARS = ("TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT", "GROUP_RANK", "ROLE_RANK")


def check_not_torchrun(env=None) -> None:
    """AD spawns its own MPI workers; launched under torchrun it deadlocks (docs/method.md, Anti-patterns)."""
    env = os.environ if env is None else env
    hits = [v for v in TORCHRUN_VARS if v in env]
    if hits:
        raise HarnessError(f"running under torchrun ({', '.join(hits)} set): AutoDeploy spawns its own workers "
                           "(world_size) and deadlocks under torchrun. Run `python -m harness ...` directly.")


def check_dump_dir(path: str | Path) -> None:
    """AD deletes AD_DUMP_GRAPHS_DIR before its first dump: refuse a directory holding anything else."""
    p = Path(path)
    if p.is_file():
        raise HarnessError(f"AD_DUMP_GRAPHS_DIR {str(p)!r} is a file. Pass --dump-graphs a directory.")
    if p.is_dir():
        foreign = [c.name for c in p.iterdir() if not (c.is_file() and _DUMP_FILE_RE.match(c.name))]
        if foreign:
            raise HarnessError(f"AD_DUMP_GRAPHS_DIR {str(p)!r} holds files that are not AD graph dumps "
                               f"({', '.join(sorted(foreign)[:3])}); AD deletes this directory. Point --dump-graphs "
                               "at a directory of its own.")


def prepare_dump_dir(base: str | Path, label: str = "eval") -> Path:
    """A fresh, empty subdirectory of ``base`` for one evaluation's dumps (never an existing one)."""
    base = Path(base).expanduser()
    if base.is_file():
        raise HarnessError(f"--dump-graphs {str(base)!r} is a file. Pass a directory.")
    base.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_")[:40] or "eval"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        sub = base / f"{safe}-{stamp}-{os.getpid()}-{i}"
        try:
            sub.mkdir()
        except FileExistsError:
            continue
        return sub.resolve()
    raise HarnessError(f"could not create a fresh subdirectory under {base}")


def setup_dump_graphs(context: dict) -> str | None:
    """The graph-dump directory for this evaluation, with AD_DUMP_GRAPHS_DIR set (before AD is imported).

    The runner sets AD_DUMP_GRAPHS_DIR per evaluation (``--dump-graphs DIR`` -> DIR/<key>); an
    in-process caller may instead pass ``context["dump_graphs_dir"]`` and gets a fresh subdirectory.
    """
    if context.get("dump_graphs_dir"):
        sub = prepare_dump_dir(context["dump_graphs_dir"], str(context.get("label") or "eval"))
        os.environ[DUMP_ENV] = str(sub)
        return str(sub)
    cur = os.environ.get(DUMP_ENV)
    if cur:
        check_dump_dir(cur)
        return str(Path(cur).resolve())
    return None


def device_info() -> dict:
    try:
        import torch

        if torch.cuda.is_available():
            return {"device": "cuda", "device_name": torch.cuda.get_device_name(0),
                    "device_count": torch.cuda.device_count()}
    except Exception:  # noqa: BLE001
        pass
    return {"device": "cpu", "device_name": None, "device_count": 0}


def versions(engine_version: str | None) -> dict:
    """Versions for info (the report's environment table): tensorrt_llm, torch, transformers."""
    return {"tensorrt_llm": engine_version, **package_versions("torch", "transformers")}


class TrtllmBackend(Backend):
    """What the TensorRT-LLM backends (``trtllm-ad``, ``trtllm-pt``) have in common."""

    takes_world_size = True
    fork_safe = False  # MPI workers and CUDA state must not be forked
    # in-flight batching schedules requests by arrival and memory, and GPU kernels may pick reduction
    # orders per batch shape: the same prompt need not give the same logits twice
    deterministic = False
    default_yaml_env = tv.DEFAULT_YAML_ENV

    @classmethod
    def gpus_required(cls, config: dict | None) -> int:
        """One GPU per rank: the config's world_size (AD and PT start one MPI rank per GPU)."""
        return max(1, int((config or {}).get("world_size") or 1))

    def use_default_yaml(self, path: str) -> None:
        tv.set_default_yaml_override(path)


def engine_version_key(base: dict, default_yaml: str | None = None) -> dict:
    """Backend.version_key for TensorRT-LLM backends: + tensorrt_llm version and default.yaml content hash."""
    import hashlib

    installed_version = tv.installed_version

    out = dict(base)
    out["tensorrt_llm"] = installed_version()
    if default_yaml and Path(default_yaml).is_file():
        out["ad_default_yaml_sha"] = hashlib.sha256(Path(default_yaml).read_bytes()).hexdigest()[:16]
    return out


class TrtllmEngine(Engine):
    """What the AD and PT engines share: tokenizer lookup, batched generation, common info, shutdown."""

    backend_name = ""

    def __init__(self, llm, install, model_path: str):
        self.llm = llm
        self.install = install
        self.model_path = model_path
        self._gen: dict = {}
        self._closed = False
        self._tok = None

    def _tokenizer(self):
        if self._tok is None:
            tok = hf_tokenizer(getattr(self.llm, "tokenizer", None))
            if tok is None:
                from transformers import AutoTokenizer

                tok = AutoTokenizer.from_pretrained(self.model_path)
            self._tok = tok
        return self._tok

    def generate(self, prompts: list[str], sampling: SamplingSpec):
        from tensorrt_llm import SamplingParams

        outs, details = generate_all(self.llm, prompts, sampling, SamplingParams)
        comps, cov = convert_outputs(outs, self._tokenizer(), sampling)
        self._gen = {**details, **cov,
                     "warnings": list(details.get("warnings") or []) + list(cov.get("warnings") or [])}
        w = seq_len_warning(getattr(getattr(self.llm, "args", None), "max_seq_len", None),
                            cov["longest_prompt_tokens"], sampling.max_tokens)
        if w:
            self._gen["warnings"] = list(self._gen.get("warnings") or []) + [w]
        return comps

    def _generation_warnings(self) -> list[str]:
        warnings = list(self._gen.get("warnings") or [])
        if self._gen.get("answer_logprobs_incomplete"):
            warnings.append(f"{self._gen['answer_logprobs_incomplete']} completions lack some answer-letter "
                            f"log-probabilities (not in the top {self._gen.get('logprobs')})")
        return warnings

    def _common_info(self) -> dict:
        from harness.backends.checkpoint import read_quant_meta

        return {
            "engine": "tensorrt_llm",
            "backend": self.backend_name,
            "engine_version": self.install.version,
            "tensorrt_llm": self.install.version,
            "versions": versions(self.install.version),
            "install": self.install.to_dict(),
            **device_info(),
            "model_path": self.model_path,
            "models_root": os.environ.get(MODELS_ROOT_ENV),
            "generation": self._gen,
            "quant": read_quant_meta(self.model_path).to_dict(),
        }

    def _shutdown_llm(self) -> None:
        if hasattr(self.llm, "__exit__"):
            self.llm.__exit__(None, None, None)  # LLM.__exit__ -> shutdown()
        else:
            self.llm.shutdown()
