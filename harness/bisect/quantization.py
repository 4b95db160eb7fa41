"""Phase 4a: a quantized model or config (docs/method.md, Phase 4a).

Fake-quant mode (the quantization fusions off, fake_quant_debug.yaml written for the user) tells
the quantized kernel from the scales; the unquantized model (--unquantized-model), run on both
backends, tells whether the gap comes from quantization at all. Each run's verdict becomes a
finding (``interpret_fake_quant``, ``interpret_unquantized``).
"""
from __future__ import annotations

from dataclasses import replace

from harness.bisect.context import BisectContext
from harness.bisect.state import BisectState


def check_quantization(ctx: BisectContext, state: BisectState) -> None:
    ctx.phase("phase 4a: quantization")
    out: dict = {"quant": ctx.inp.quant, "moe": ctx.inp.moe}
    out.update(_fake_quant(ctx))
    out["unquantized"] = _unquantized_baseline(ctx) if ctx.inp.unquantized_model else {
        "kind": "not_run", "finding": "no --unquantized-model given: ask for a BF16/FP16 "
        "version of the model and rerun with --unquantized-model DIR (method 4a step 1)"}
    state.phases["4a"] = out


def _fake_quant(ctx: BisectContext) -> dict:
    """Write fake_quant_debug.yaml and, when it switches a fusion off, judge the config in that mode."""
    from harness.analysis.fake_quant import fake_quant_entries, fake_quant_overlay, render_fake_quant_yaml

    inp = ctx.inp
    entries, extra = fake_quant_entries(ctx.cat, ctx.user, inp.moe)
    text = render_fake_quant_yaml(ctx.cat, ctx.user, inp.moe, inp.config_path, inp.model)
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    (ctx.run_dir / "fake_quant_debug.yaml").write_text(text, encoding="utf-8")
    out: dict = {"fake_quant_yaml": "fake_quant_debug.yaml", "fake_quant_disabled": [n for n, _ in entries],
                 "fake_quant_skipped": extra}
    if entries:
        s = ctx.judge(fake_quant_overlay(ctx.cat, ctx.user, inp.moe), "4a",
                      "fake-quant mode (quantization fusions off)", base="full")
        out["fake_quant"] = {"step": s.index, **interpret_fake_quant(s.verdict, len(entries))}
    else:
        out["fake_quant"] = interpret_fake_quant(None, 0)
    return out


def _unquantized_baseline(ctx: BisectContext) -> dict:
    """Reference and full candidate config on the unquantized model, judged against each other."""
    uq_ref = replace(ctx.ref_spec, model=ctx.inp.unquantized_model, label="reference, unquantized model")
    o = ctx.make_oracle(uq_ref)
    o.steps = ctx.oracle.steps  # one trail
    rstep, rres = ctx.reference_step(uq_ref, "4a", "reference run on the unquantized model", oracle=o)
    o._refs[uq_ref.samples] = rres
    s = ctx.judge(ctx.user, "4a", "full candidate config on the unquantized model", base="full",
                  model=ctx.inp.unquantized_model, oracle=o)
    return {"step": s.index, "reference_step": rstep.index, **interpret_unquantized(s.verdict)}


def interpret_unquantized(verdict: str | None) -> dict:
    if verdict == "regressed":
        return {"kind": "not_quantization", "verdict": verdict, "finding": "the unquantized model also regresses: "
                "the bug is not quantization-related (a transform, attention or weight loading); continue Phase 3 "
                "isolation on the unquantized model"}
    if verdict in ("same", "improved"):
        return {"kind": "quantization", "verdict": verdict, "finding": "the unquantized model is fine: the gap comes "
                "from quantization or the quantized kernel path (Phase 4a step 2)"}
    return {"kind": "unclear", "verdict": verdict, "finding": f"unquantized baseline {verdict}: no conclusion"}


def interpret_fake_quant(verdict: str | None, n_disabled: int) -> dict:
    if n_disabled == 0:
        return {"kind": "not_applicable", "verdict": None, "finding": "no quantization fusion is on in this config: "
                "fake-quant mode is the config itself"}
    if verdict in ("same", "improved"):
        return {"kind": "kernel", "verdict": verdict, "finding": "accuracy recovers in fake-quant mode: the quantized "
                "kernel (not the scales) is the bug"}
    if verdict == "regressed":
        return {"kind": "scales", "verdict": verdict, "finding": "still wrong in fake-quant mode: the scales or weight "
                "data are the likely culprit (missing/inverted scale, block-scale computation, .to() vs .view())"}
    return {"kind": "unclear", "verdict": verdict, "finding": f"fake-quant run {verdict}: no conclusion"}
