"""Greedy batched generation for a transformers causal LM, behaving as TensorRT-LLM's LLM API does.

Used by the ``hf`` backend and by the AD emulator on its transformed model.  The model only needs
the transformers causal-LM call convention: ``model(input_ids=, attention_mask=, position_ids=,
past_key_values=, use_cache=True)`` returning ``.logits`` and ``.past_key_values``.

Engine behaviour reproduced (NVIDIA/TensorRT-LLM sources):

* Tokenization: ``tokenizer.encode(prompt, add_special_tokens=True)``; when
  ``truncate_prompt_tokens`` is set the call is
  ``tokenizer.encode(prompt, add_special_tokens=True, truncation=True, max_length=N)``
  -- ``tensorrt_llm/inputs/registry.py@3a5845e2`` ``DefaultInputProcessor.__call__`` and
  ``tensorrt_llm/_torch/auto_deploy/llm.py@b35ac1b6`` ``ADInputProcessor``.  ``add_special_tokens`` is
  SamplingParams' default (True), so BOS is added when the tokenizer adds one and counts towards
  ``max_length``; the tokenizer's ``truncation_side`` (normally "right") decides which end is cut.
  (``tensorrt_llm/sampling_params.py``@000a01de documents "the last k tokens", left truncation; the
  input processor's call cuts the tokenizer's side, and that is what the engine does.) The harness
  caps ``truncate_prompt_tokens`` at the model's positions minus ``max_tokens`` for every backend
  alike (``harness/evaluation/spec.py`` ``prompt_token_limit``), so a prompt longer than the model
  holds is truncated the same way here, in the emulator and in TensorRT-LLM, and each completion
  says whether its prompt was (``extra["prompt_truncated"]``).
* Greedy decoding (all sampling knobs None in SamplingParams = greedy).
* ``ignore_eos=True`` is the AD tests' ``end_id=-1``: exactly ``max_tokens`` tokens.
  ``ignore_eos=False``: stop at the tokenizer's EOS (or generation_config's eos ids);
  finish_reason "eos"; the EOS token is kept in ``token_ids`` (and its top-k row) but not in the text.
* Stop strings: checked on the decoded text after every token; the text is cut before the
  earliest stop string (TRT-LLM's default ``include_stop_str_in_output=False``), finish_reason
  "stop".  ``token_ids`` keep every generated token (TRT-LLM matches stop words on token ids
  and trims them; text-level matching also catches a stop string split across tokens differently).
* Text is decoded with ``skip_special_tokens=True``.

Log-probabilities: ``top_logprobs`` holds, per generated position, the top-k tokens as
``{tokenizer.convert_ids_to_tokens(id): logprob}`` (token strings, e.g. "ĠA" for byte-level BPE;
unique per id so no two entries collide).  ``answer_logprobs`` holds, for each continuation
(e.g. " A"), the log-probability at the first generated position of the continuation's first
token *as tokenized after "Answer:"* (see ``continuation_token_id``).  Non-finite logits never
raise: argmax of a NaN row still picks a token, the log-probabilities come out NaN/inf.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

from harness.backends.base import Completion, SamplingSpec
from harness.backends.progress import report_samples

_ANSWER_CONTEXT = "Answer:"


def continuation_token_id(tokenizer, continuation: str, context: str = _ANSWER_CONTEXT) -> int:
    """First token of ``continuation`` when it follows ``context`` (how the prompt ends).

    Tokenizing " A" alone can differ from how it is tokenized after "Answer:" (SentencePiece
    prefix spaces), so the id is taken from the difference between ``context`` and
    ``context + continuation``.
    """
    ctx = tokenizer.encode(context, add_special_tokens=False)
    full = tokenizer.encode(context + continuation, add_special_tokens=False)
    i = 0
    while i < min(len(ctx), len(full)) and ctx[i] == full[i]:
        i += 1
    if i < len(full):
        return int(full[i])
    alone = tokenizer.encode(continuation, add_special_tokens=False)
    if not alone:
        raise ValueError(f"continuation {continuation!r} tokenizes to nothing")
    return int(alone[0])


def token_key(tokenizer, token_id: int) -> str:
    """The key used in ``top_logprobs`` for one token id."""
    tok = tokenizer.convert_ids_to_tokens(int(token_id))
    return str(tok) if tok is not None else f"<id:{int(token_id)}>"


def encode_prompts(tokenizer, prompts: list[str], truncate_prompt_tokens: int | None) -> list[list[int]]:
    """Prompt token ids exactly as TRT-LLM's input processor makes them (see module doc)."""
    return encode_with_truncation(tokenizer, prompts, truncate_prompt_tokens)[0]


def encode_with_truncation(tokenizer, prompts: list[str], limit: int | None) -> tuple[list[list[int]], set[int]]:
    """(prompt token ids as TRT-LLM's input processor makes them, indices of the prompts it truncated).

    A prompt is encoded whole; one longer than ``limit`` is encoded again with ``truncation=True,
    max_length=limit``, the call ``DefaultInputProcessor`` makes (tensorrt_llm/inputs/registry.py@3a5845e2),
    so the same ids come out and the tokenizer's ``truncation_side`` cuts the same end as in the engine."""
    ids, cut = [], set()
    for i, p in enumerate(prompts):
        whole = list(tokenizer.encode(p, add_special_tokens=True))
        if limit is not None and len(whole) > int(limit):
            whole = list(tokenizer.encode(p, add_special_tokens=True, truncation=True, max_length=int(limit)))
            cut.add(i)
        ids.append(whole)
    return ids, cut


def _eos_ids(model, tokenizer) -> set[int]:
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = getattr(model, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None) if gen is not None else None
    if isinstance(eos, int):
        ids.add(eos)
    elif isinstance(eos, (list, tuple)):
        ids.update(int(e) for e in eos)
    return ids


def _pad_id(tokenizer) -> int:
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id):
        if tid is not None:
            return int(tid)
    return 0


def _accepts(model, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    best = -1
    for s in stops:
        if not s:
            continue
        i = text.find(s)
        if i >= 0 and (best < 0 or i < best):
            best = i
    return (text, False) if best < 0 else (text[:best], True)


@dataclass
class _Decoding:
    """What every batch of one ``generate`` call decodes with."""
    pad_id: int
    eos_ids: set[int]
    stops: list[str]
    conts: list[str]  # answer continuations (" A", ...)
    cont_ids: list[int]  # their first token after "Answer:"
    k: int  # top_logprobs per position (0: none)
    max_tokens: int
    keep_kw: dict  # {"logits_to_keep": 1} when the model takes it
    cache_kw: str  # name of the KV-cache argument / output


def _decoding(model, tokenizer, sampling: SamplingSpec, pad_id: int) -> _Decoding:
    conts = list(sampling.answer_continuations or [])
    return _Decoding(
        pad_id=pad_id,
        eos_ids=set() if sampling.ignore_eos else _eos_ids(model, tokenizer),
        stops=[s for s in (sampling.stop or []) if s],
        conts=conts,
        cont_ids=[continuation_token_id(tokenizer, c) for c in conts],
        k=max(0, int(sampling.top_logprobs or 0)),
        max_tokens=max(0, int(sampling.max_tokens)),
        keep_kw={"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {},
        # transformers >= 5.2x renamed the KV-cache argument/output ``past_key_values`` -> ``cache``
        cache_kw="cache" if _accepts(model, "cache") else "past_key_values",
    )


def generate(model, tokenizer, prompts: list[str], sampling: SamplingSpec, device="cpu") -> list[Completion]:
    """Greedy completions for ``prompts`` (returned in input order). See the module docstring."""
    import torch

    if not prompts:
        return []
    prompt_ids, truncated = encode_with_truncation(tokenizer, prompts, sampling.truncate_prompt_tokens)
    pad_id = _pad_id(tokenizer)
    for ids in prompt_ids:  # an empty prompt still needs one position to predict from
        if not ids:
            ids.append(int(tokenizer.bos_token_id if tokenizer.bos_token_id is not None else pad_id))
    dec = _decoding(model, tokenizer, sampling, pad_id)
    bs = max(1, int(sampling.batch_size or 1))

    order = sorted(range(len(prompts)), key=lambda i: -len(prompt_ids[i]))
    results: list[Completion | None] = [None] * len(prompts)
    report_samples(0, len(prompts))
    with torch.inference_mode():
        for start in range(0, len(order), bs):
            idx = order[start:start + bs]
            for i, comp in zip(idx, _generate_batch(model, tokenizer, [prompt_ids[i] for i in idx], device, dec)):
                comp.extra["prompt_truncated"] = i in truncated
                results[i] = comp
            report_samples(min(start + bs, len(order)), len(prompts))  # harness/backends/progress.py
    return results  # type: ignore[return-value]


@dataclass
class _Rows:
    """Per-row decoding state of one batch."""
    gen: list[list[int]]  # generated token ids
    tops: list[list[dict]]  # top-k log-probabilities per generated position
    answer: list[dict | None]  # continuation log-probabilities at the first position
    finish: list[str]
    done: list[bool]
    texts: list[str | None]  # text cut at a stop string (None: decode gen at the end)

    @classmethod
    def empty(cls, batch: int) -> "_Rows":
        return cls([[] for _ in range(batch)], [[] for _ in range(batch)], [None] * batch, ["length"] * batch,
                   [False] * batch, [None] * batch)


def _generate_batch(model, tokenizer, batch_ids, device, dec: _Decoding) -> list[Completion]:
    import torch

    B = len(batch_ids)
    input_ids, attn = _left_padded(batch_ids, dec.pad_id, device)
    rows = _Rows.empty(B)
    past = None
    step_ids, step_pos = input_ids, (attn.cumsum(-1) - 1).clamp(min=0)
    for step in range(dec.max_tokens):
        out = model(input_ids=step_ids, attention_mask=attn, position_ids=step_pos,
                    use_cache=True, **{dec.cache_kw: past}, **dec.keep_kw)
        past = getattr(out, dec.cache_kw, None)
        if past is None:
            past = getattr(out, "past_key_values", None)
        _take_step(rows, out.logits[:, -1, :].float(), step, tokenizer, dec)
        if all(rows.done) or step == dec.max_tokens - 1:
            break
        feed = torch.tensor([g[-1] if not d else dec.pad_id for g, d in zip(rows.gen, rows.done)], dtype=torch.long)
        step_ids = feed.to(device).unsqueeze(1)
        step_pos = step_pos[:, -1:] + 1
        attn = torch.cat([attn, torch.ones((B, 1), dtype=attn.dtype, device=attn.device)], dim=1)
    return _completions(rows, batch_ids, tokenizer, dec.k)


def _left_padded(batch_ids, pad_id: int, device):
    """(input_ids, attention_mask) of the batch, left-padded to its longest prompt."""
    import torch

    B = len(batch_ids)
    L = max(len(x) for x in batch_ids)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    attn = torch.zeros((B, L), dtype=torch.long)
    for b, ids in enumerate(batch_ids):
        input_ids[b, L - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attn[b, L - len(ids):] = 1
    return input_ids.to(device), attn.to(device)


def _take_step(rows: _Rows, logits, step: int, tokenizer, dec: _Decoding) -> None:
    """Greedy next token of every unfinished row; top-k / answer log-probabilities; EOS and stop strings."""
    import torch

    logprobs = torch.log_softmax(logits, dim=-1)
    nxt = torch.argmax(logits, dim=-1)  # NaN rows: argmax still returns an index
    if dec.k:
        top_v, top_i = torch.topk(logprobs, min(dec.k, logprobs.shape[-1]), dim=-1)
        top_v, top_i = top_v.tolist(), top_i.tolist()
    if step == 0 and dec.conts:
        ans = logprobs[:, dec.cont_ids].tolist()
        for b in range(len(rows.gen)):
            rows.answer[b] = {c: float(v) for c, v in zip(dec.conts, ans[b])}
    for b, tid in enumerate(nxt.tolist()):
        if rows.done[b]:
            continue
        tid = int(tid)
        rows.gen[b].append(tid)
        if dec.k:
            row = {}
            for v, t in zip(top_v[b], top_i[b]):
                row.setdefault(token_key(tokenizer, t), float(v))
            rows.tops[b].append(row)
        if tid in dec.eos_ids:
            rows.done[b], rows.finish[b] = True, "eos"
            continue
        if dec.stops:
            text, hit = _cut_at_stop(tokenizer.decode(rows.gen[b], skip_special_tokens=True), dec.stops)
            if hit:
                rows.done[b], rows.finish[b], rows.texts[b] = True, "stop", text


def _completions(rows: _Rows, batch_ids, tokenizer, k: int) -> list[Completion]:
    comps = []
    for b in range(len(batch_ids)):
        text = rows.texts[b] if rows.texts[b] is not None else tokenizer.decode(rows.gen[b], skip_special_tokens=True)
        comps.append(Completion(
            text=text,
            token_ids=rows.gen[b],
            finish_reason=rows.finish[b],
            prompt_token_ids=list(batch_ids[b]),
            top_logprobs=rows.tops[b] if k else None,
            answer_logprobs=rows.answer[b],
        ))
    return comps
