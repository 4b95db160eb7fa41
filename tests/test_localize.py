"""Phase 4's layer-wise localization on the ad-emulator against the hf reference, with the cross-engine
noise on (the emulator's default): a fault planted in one module is named at that module (the first
module whose isolated error leaves the noise band measured on the reference-like minimal config), and a
clean config is named at none, although every decoder layer differs from hf by the engine noise."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from harness.paths import CONFIGS, DEMO_MMLU, DEMO_MODEL

PLUGIN = str(Path(__file__).resolve().parent / "plugins" / "perturb_module_plugin.py")
FP8_MODEL = DEMO_MODEL.parent / "demo_model_fp8"
pytestmark = pytest.mark.skipif(not (DEMO_MODEL / "config.json").is_file() or not DEMO_MMLU.is_dir(),
                                reason="demo model/data not built (scripts/build_demo.py)")


def minimal_config(user: dict | None = None, plugins=()) -> dict:
    """The emulator config stripped to minimal, as bisect strips it."""
    from harness.backends import get_backend
    from harness.bisect.plan import build_plan

    emu = get_backend("ad-emulator")
    user = user or {}
    return build_plan(emu.catalogue(emu.default_yaml(), user, list(plugins)), user).config(user, ())


@pytest.fixture(scope="module")
def prompts():
    from harness.evaluation.spec import EvalSpec, build_samples

    _, samples = build_samples(EvalSpec(backend="hf", model=str(DEMO_MODEL), task="mmlu", dataset=str(DEMO_MMLU),
                                        samples=4, seed=0))
    return [{"id": s.id, "text": s.prompt} for s in samples[:4]]


def side(backend: str, config: dict, label: str, plugins=()) -> dict:
    return {"backend": backend, "model": str(DEMO_MODEL), "config": config, "plugins": list(plugins), "label": label}


def localize(prompts, config: dict, plugins=(), plot=None) -> dict:
    from harness.analysis.localize.job import run_request

    return run_request({"reference": side("hf", {}, "hf"), "candidate": side("ad-emulator", config, "candidate", plugins),
                        "control": side("ad-emulator", minimal_config(), "minimal"), "prompts": prompts,
                        "truncate_prompt_tokens": 4094, "plot": plot})


def demo(name: str) -> dict:
    return yaml.safe_load((CONFIGS / "demo" / name).read_text())


def perturb(target: str, scale: float) -> dict:
    return {"transforms": {"perturb_module": {"enabled": True, "target": target, "scale": scale}}}


FAULTS = {  # planted fault: (config, plugins, the module that introduces it)
    "attention softmax scale": ({"transforms": {"match_attention_layout": {"fault": "wrong_softmax_scale"}}}, (),
                                "model.layers.0.self_attn"),
    "RoPE table in a narrow float": ({"transforms": {"optimize_rope": {"enabled": True, "fault": "low_precision_rope",
                                                                        "fault_strength": 5}}}, (), "model.rotary_emb"),
    "one MLP projection": (perturb("model.layers.1.mlp.down_proj", 1.05), (PLUGIN,), "model.layers.1.mlp.down_proj"),
    "one norm": (perturb("model.layers.1.post_attention_layernorm", 1.1), (PLUGIN,),
                 "model.layers.1.post_attention_layernorm"),
    "sharded head reshape (ws2 demo)": (demo("ad_demo_ws2.yaml"), (), "model.layers.0.self_attn"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_names_the_module_that_introduces_the_fault(prompts, fault):
    config, plugins, module = FAULTS[fault]
    out = localize(prompts, config, plugins)
    first = out["first_divergence"]
    assert first is not None, out["finding"]
    assert (first["module"], first["kind"]) == (module, "isolated"), out["finding"]
    rows = {r["module"]: r for r in out["modules"]}
    assert first["layer"] == rows[module]["layer"]
    assert first["metric"]["rel_err"] > first["band"]
    # no module that completes before it introduces an error; those outside it match the reference end to end too
    # (its own submodules complete first and may carry what it computed before calling them)
    before = [r for r in out["modules"] if r["order"] < rows[module]["order"]]
    assert before and not any(r["exceeds_isolated"] for r in before)
    assert not any(r["exceeds_propagated"] for r in before if not r["module"].startswith(module + "."))


def test_a_clean_config_under_engine_noise_names_no_module(prompts, tmp_path):
    config = demo("ad_demo_clean.yaml")
    out = localize(prompts, config, plot=str(tmp_path / "p.png"))
    assert out["first_divergence"] is None, out["finding"]
    assert "no module leaves the noise band" in out["finding"]
    rows = {r["module"]: r for r in out["modules"]}
    # the noise is there: every decoder layer differs from hf, and the LM head's tail is larger still; the band is
    # measured per module on the minimal config, not assumed zero
    for layer in ("model.layers.0", "model.layers.1"):
        assert rows[layer]["isolated"]["rel_err"] > 1e-3
        assert rows[layer]["band_isolated"] > rows[layer]["isolated"]["rel_err"]
    assert rows["lm_head"]["band_isolated"] > 10 * rows["model.layers.0"]["band_isolated"]
    assert rows["model.layers.0.self_attn.q_proj"]["band_isolated"] < 1e-3  # no noise inside a layer: the floor
    assert Path(out["plot"]).stat().st_size > 10_000


def test_an_untouched_module_carries_but_does_not_introduce_the_error(prompts):
    out = localize(prompts, FAULTS["one MLP projection"][0], (PLUGIN,))
    rows = {r["module"]: r for r in out["modules"]}
    after = rows["model.norm"]
    assert after["exceeds_propagated"] and not after["exceeds_isolated"]
    assert rows["model.layers.1.mlp"]["exceeds_isolated"]  # the parent of the faulty projection, later in order


def test_without_a_control_the_band_is_the_default_and_says_so(prompts):
    from harness.analysis.localize.job import run_request

    out = run_request({"reference": side("hf", {}, "hf"), "candidate": side("ad-emulator", minimal_config(), "minimal"),
                       "control": None, "prompts": prompts[:1], "truncate_prompt_tokens": 4094})
    assert out["control"] is None and out["band"]["measured_on"] is None
    assert {r["band_source"] for r in out["modules"]} == {"default"}
    assert "no reference-like control" in out["finding"]


# -- Phase 4a step 2: the quantized candidate's weights -------------------------------------------------------
needs_fp8 = pytest.mark.skipif(not (FP8_MODEL / "config.json").is_file(), reason="demo_model_fp8 not built")


def _weights(config: dict, plugins=()) -> dict:
    from harness.analysis.localize.weights import compare_weights
    from harness.backends import get_backend

    ref = get_backend("hf").activations(str(FP8_MODEL), {})
    cand = get_backend("ad-emulator").activations(str(FP8_MODEL), config, {"plugins": list(plugins)})
    return compare_weights(ref.linear_weights(), cand.linear_weights())


@needs_fp8
@pytest.mark.parametrize("fault,words", [("missing_dequant_scale", "scale missing"), ("inverted_scale", "scale inverted"),
                                         ("to_instead_of_view", ".to()")])
def test_weight_check_names_the_kernel_scale_fault(fault, words):
    out = _weights({"transforms": {"fuse_fp8_linear": {"enabled": True, "fault": fault}}})
    assert out["quantized_layers"] == 14
    assert len(out["flagged"]) == 14  # every linear but the (excluded) LM head
    assert all(words in r["suspect"] for r in out["layers"] if r["flagged"])


@needs_fp8
def test_weight_check_passes_a_correct_fp8_kernel_and_names_one_bad_layer():
    assert _weights({"transforms": {"fuse_fp8_linear": {"enabled": True}}})["flagged"] == []
    one = {"transforms": {"fuse_fp8_linear": {"enabled": True},
                          "perturb_module": {"enabled": True, "target": "model.layers.1.mlp.down_proj", "attr": "dequant",
                                             "value": "none"}}}
    out = _weights(one, (PLUGIN,))
    assert out["flagged"] == ["model.layers.1.mlp.down_proj"]
    bad = next(r for r in out["layers"] if r["flagged"])
    assert "scale missing" in bad["suspect"] and bad["rel_err"] > 10 * (out["median_rel_err"] or 0)


# -- the band logic ------------------------------------------------------------------------------------------
def _row(name, order, iso, prop):
    return {"module": name, "layer": None, "role": "module", "order": order,
            "isolated": None if iso is None else {"rel_err": iso, "cosine": 1.0, "max_abs": iso, "nonfinite": 0},
            "propagated": {"rel_err": prop, "cosine": 1.0, "max_abs": prop, "nonfinite": 0}}


def test_an_error_no_module_introduces_is_reported_where_it_first_shows_propagated():
    from harness.analysis.localize import band

    control = [_row("a", 0, 0.0, 0.0), _row("b", 1, 0.001, 0.001), _row("c", 2, 0.0, 0.001)]
    rows = band.annotate([_row("a", 0, 0.0, 0.0), _row("b", 1, 0.002, 0.5), _row("c", 2, 0.0, 0.6)],
                         band.bands(control))
    first = band.first_divergence(rows)
    assert (first["module"], first["kind"]) == ("b", "propagated")
    rows = band.annotate([_row("a", 0, 0.0, 0.0), _row("b", 1, 0.002, 0.002), _row("c", 2, math.inf, 0.6)],
                         band.bands(control))
    assert band.first_divergence(rows)["module"] == "c"  # non-finite always leaves the band


def test_weight_check_names_a_wrong_block_scale_among_correct_layers():
    """A block of one layer dequantized with the wrong scale (x4): far outside the other layers' quantization
    error, named as a block-scale error (the tensor is still mostly right, so the cosine stays well above 0)."""
    import torch

    from harness.analysis.localize.weights import compare_weights

    gen = torch.Generator().manual_seed(0)
    ref = {f"model.layers.{i}.mlp.down_proj": {"weight": torch.randn(64, 64, generator=gen), "kind": "dense",
                                                "scale": None} for i in range(6)}
    cand = {}
    for name, entry in ref.items():  # a correct quantization: about 1 % relative error per element
        w = entry["weight"] * (1 + 0.01 * torch.randn(64, 64, generator=gen))
        cand[name] = {"weight": w, "kind": "fp8 kernel", "scale": 0.02}
    bad = "model.layers.3.mlp.down_proj"
    cand[bad]["weight"] = cand[bad]["weight"].clone()
    cand[bad]["weight"][:16, :16] *= 4.0
    out = compare_weights(ref, cand)
    assert out["flagged"] == [bad] and out["quantized_layers"] == 6
    row = next(r for r in out["layers"] if r["module"] == bad)
    assert "block-scale" in row["suspect"] and 0.3 < row["cosine"] < 0.98
