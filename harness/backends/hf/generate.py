"""Greedy batched generation for a transformers causal LM, behaving as TensorRT-LLM's LLM API does.

Used by the ``hf`` backend and by the AD emulator on its transformed model.  The model only needs
the transformers causal-LM call convention: ``model(input_ids=, attention_mask=, position_ids=,
past_key_values=, use_cache=True)`` returning ``.logits`` and ``.past_key_values``.

Engine behaviour reproduced (TensorRT-LLM sources, read through the search tools):

* Tokenization: ``tokenizer.encode(prompt, add_special_tokens=True)``; when
  ``truncate_prompt_tokens`` is set the call is
  ``tokenizer.encode(prompt, add_special_tokens=True, truncation=True, max_length=N)``
  -- ``tensorrt_llm/inputs/registry.py`` ``DefaultInputProcessor.__call__`` and
  ``tensorrt_llm/_torch/auto_deploy/llm.py`` ``ADInputProcessor``.  ``add_special_tokens`` is
  SamplingParams' default (True), so BOS is added when the tokenizer adds one and counts towards
  ``max_length``; the tokenizer's ``truncation_side`` (normally "right") decides which end is cut.
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

from harness.backends.base import Completion, SamplingSpec

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
    kwargs = {}
    if truncate_prompt_tokens is not None:
        kwargs = dict(truncation=True, max_length=int(truncate_prompt_tokens))
    return [list(tokenizer.encode(p, add_special_tokens=True, **kwargs)) for p in prompts]


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


def generate(model, tokenizer, prompts: list[str], sampling: SamplingSpec, device="cpu") -> list[Completion]:
    """Greedy completions for ``prompts`` (returned in input order). See the module docstring."""
    import torch

    if not prompts:
        return []
    prompt_ids = encode_prompts(tokenizer, prompts, sampling.truncate_prompt_tokens)
    pad_id = _pad_id(tokenizer)
    for ids in prompt_ids:  # an empty prompt still needs one position to predict from
        if not ids:
            ids.append(int(tokenizer.bos_token_id if tokenizer.bos_token_id is not None else pad_id))
    eos_ids = set() if sampling.ignore_eos else _eos_ids(model, tokenizer)
    stops = [s for s in (sampling.stop or []) if s]
    conts = list(sampling.answer_continuations or [])
    cont_ids = [continuation_token_id(tokenizer, c) for c in conts]
    k = max(0, int(sampling.top_logprobs or 0))
    max_tokens = max(0, int(sampling.max_tokens))
    bs = max(1, int(sampling.batch_size or 1))
    keep_kw = {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}
    # transformers >= 5.2x renamed the KV-cache argument/output ``past_key_values`` -> ``cache``
    cache_kw = "cache" if _accepts(model, "cache") else "past_key_values"

    order = sorted(range(len(prompts)), key=lambda i: -len(prompt_ids[i]))
    results: list[Completion | None] = [None] * len(prompts)
    with torch.inference_mode():
        for start in range(0, len(order), bs):
            idx = order[start:start + bs]
            for i, comp in zip(idx, _generate_batch(
                    model, tokenizer, [prompt_ids[i] for i in idx], device, pad_id, eos_ids, stops,
                    conts, cont_ids, k, max_tokens, keep_kw, cache_kw)):
                results[i] = comp
    return results  # type: ignore[return-value]


def _generate_batch(model, tokenizer, batch_ids, device, pad_id, eos_ids, stops, conts, cont_ids, k,
                    max_tokens, keep_kw, cache_kw) -> list[Completion]:
    import torch

    B = len(batch_ids)
    L = max(len(x) for x in batch_ids)
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    attn = torch.zeros((B, L), dtype=torch.long)
    for b, ids in enumerate(batch_ids):  # left padding
        input_ids[b, L - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attn[b, L - len(ids):] = 1
    input_ids, attn = input_ids.to(device), attn.to(device)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)

    gen: list[list[int]] = [[] for _ in range(B)]
    tops: list[list[dict]] = [[] for _ in range(B)]
    answer: list[dict | None] = [None] * B
    finish = ["length"] * B
    done = [False] * B
    texts: list[str | None] = [None] * B

    past = None
    step_ids, step_pos = input_ids, pos
    for step in range(max_tokens):
        out = model(input_ids=step_ids, attention_mask=attn, position_ids=step_pos,
                    use_cache=True, **{cache_kw: past}, **keep_kw)
        past = getattr(out, cache_kw, None)
        if past is None:
            past = getattr(out, "past_key_values", None)
        logits = out.logits[:, -1, :].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        nxt = torch.argmax(logits, dim=-1)  # NaN rows: argmax still returns an index
        if k:
            top_v, top_i = torch.topk(logprobs, min(k, logprobs.shape[-1]), dim=-1)
            top_v, top_i = top_v.tolist(), top_i.tolist()
        if step == 0 and conts:
            ans = logprobs[:, cont_ids].tolist()
            for b in range(B):
                answer[b] = {c: float(v) for c, v in zip(conts, ans[b])}
        nxt_list = nxt.tolist()
        for b in range(B):
            if done[b]:
                continue
            tid = int(nxt_list[b])
            gen[b].append(tid)
            if k:
                row = {}
                for v, t in zip(top_v[b], top_i[b]):
                    row.setdefault(token_key(tokenizer, t), float(v))
                tops[b].append(row)
            if tid in eos_ids:
                done[b], finish[b] = True, "eos"
                continue
            if stops:
                text, hit = _cut_at_stop(tokenizer.decode(gen[b], skip_special_tokens=True), stops)
                if hit:
                    done[b], finish[b], texts[b] = True, "stop", text
        if all(done) or step == max_tokens - 1:
            break
        feed = torch.tensor([g[-1] if not d else pad_id for g, d in zip(gen, done)], dtype=torch.long)
        step_ids = feed.to(device).unsqueeze(1)
        step_pos = step_pos[:, -1:] + 1
        attn = torch.cat([attn, torch.ones((B, 1), dtype=attn.dtype, device=attn.device)], dim=1)

    comps = []
    for b in range(B):
        text = texts[b] if texts[b] is not None else tokenizer.decode(gen[b], skip_special_tokens=True)
        comps.append(Completion(
            text=text,
            token_ids=gen[b],
            finish_reason=finish[b],
            prompt_token_ids=list(batch_ids[b]),
            top_logprobs=tops[b] if k else None,
            answer_logprobs=answer[b],
        ))
    return comps
