"""Which sampling protocol each reference run follows (``--reference-protocol``).

Two protocols exist upstream, and they stop differently:

* **AD test protocol** (NVIDIA/TensorRT-LLM tests/integration/defs/accuracy/test_llm_api_autodeploy.py@002e4a67):
  ``SamplingParams(end_id=-1, pad_id=-1, ...)``: never stop on EOS, exactly ``max_tokens`` tokens. The
  harness's paired AD-vs-PT runs use it on both backends, so only the backend differs.
* **accuracy_core protocol** (tests/integration/defs/accuracy/accuracy_core.py@00c11460):
  ``SamplingParams(max_tokens=MAX_OUTPUT_LEN, truncate_prompt_tokens=MAX_INPUT_LEN)``, ``end_id`` left to
  the tokenizer: generation stops at EOS. The scores in ``references/*.yaml`` were produced this way, so
  comparing a reference run with them (Phase 0's reference-score check) needs this protocol.

``--reference-protocol``: ``auto`` (default) pairs with the AD test protocol and, when a reference score is
given, scores the reference with an extra accuracy_core run; ``ad-test`` uses the AD test protocol for both
(no extra run); ``accuracy-core`` uses accuracy_core for the paired runs too. A task that already stops at
EOS (GSM8K) runs the same either way, and no extra run is made. Both protocols are recorded in Phase 0.
"""
from __future__ import annotations

from dataclasses import replace

PROTOCOLS = ("auto", "ad-test", "accuracy-core")
AD_TEST = {"name": "ad-test", "end_id": -1, "stops_at_eos": False,
           "source": "tests/integration/defs/accuracy/test_llm_api_autodeploy.py@002e4a67 (end_id=-1, pad_id=-1)"}
ACCURACY_CORE = {"name": "accuracy-core", "end_id": None, "stops_at_eos": True,
                 "source": "tests/integration/defs/accuracy/accuracy_core.py@00c11460 (stops at EOS)"}


def _ignores_eos(task: str) -> bool:
    from harness.tasks import get_task

    return bool(get_task(task).end_id_minus_one)


def paired_sampling(protocol: str, task: str) -> dict:
    """EvalSpec.sampling overrides for the paired runs (reference and candidate alike)."""
    return {"ignore_eos": False} if protocol == "accuracy-core" and _ignores_eos(task) else {}


def describe(protocol: str, task: str, scored_separately: bool) -> dict:
    """The protocols of this run, for Phase 0 / the report."""
    if not _ignores_eos(task):
        same = dict(ACCURACY_CORE, note=f"{task} stops at EOS (and its stop strings) under both protocols")
        return {"flag": protocol, "paired": same, "reference_score": same}
    paired = ACCURACY_CORE if protocol == "accuracy-core" else AD_TEST
    score = ACCURACY_CORE if scored_separately or protocol == "accuracy-core" else AD_TEST
    return {"flag": protocol, "paired": paired, "reference_score": score}


def reference_for_score(ctx, ref):
    """The reference result the reference-score check reads: ``ref`` itself, or (``auto`` on a task
    that ignores EOS) an extra reference run under the accuracy_core protocol, as a trail step."""
    protocol = getattr(ctx.inp, "reference_protocol", "auto")
    separate = protocol == "auto" and _ignores_eos(ctx.inp.task)
    ctx.protocols = describe(protocol, ctx.inp.task, separate)
    if not separate:
        return ref
    spec = replace(ctx.ref_spec, sampling={**ctx.ref_spec.sampling, "ignore_eos": False},
                   label="reference, accuracy_core protocol (stops at EOS)")
    _, res = ctx.reference_step(spec, "0", "reference run for the score check (accuracy_core protocol: stops at EOS)")
    if res.status != "ok":
        ctx.protocols["reference_score"] = dict(AD_TEST, note="the accuracy_core run failed; scored the paired run")
        return ref
    return res
