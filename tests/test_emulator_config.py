"""ad-emulator configuration: same schema and knob code as AD, clear errors, plugins, ordering.

No model is loaded here except where a transform must actually fail (run through
run_evaluation, which must turn it into an ``unresolved`` result naming the transform)."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.backends import get_backend
from harness.backends.emulator.faults import FAULTS
from harness.backends.emulator.pipeline import build_catalogue, build_plan
from harness.config import Catalogue
from harness.errors import HarnessError
from harness.paths import CONFIGS, DEMO_CONFIG, DEMO_MODEL, EMULATOR_DEFAULT_YAML

PLUGINS = Path(__file__).parent / "plugins"


def test_backend_contract():
    be = get_backend("ad-emulator")
    assert be.name == "ad-emulator" and be.takes_ad_config
    assert Path(be.default_yaml()) == EMULATOR_DEFAULT_YAML


def test_default_yaml_has_ad_stages_in_order_and_every_transform_is_implemented():
    from harness.backends.emulator.transforms import TRANSFORMS
    from harness.config.catalogue import STAGES

    cat = Catalogue.from_yaml(EMULATOR_DEFAULT_YAML)
    stages = [cat.stage_of(n) for n in cat.names()]
    assert stages == sorted(stages, key=STAGES.index), "transforms must be listed in AD stage order"
    assert set(cat.names()) == set(TRANSFORMS)
    # the knob categories the bisection uses
    assert cat.category_of("fuse_rmsnorm") == "fusion"
    assert cat.category_of("optimize_rope") == "fusion"
    assert cat.category_of("fuse_fp8_linear") == "quant_fusion"
    assert cat.category_of("detect_sharding") == "sharding"
    assert cat.category_of("multi_stream_gemm") == "multi_stream"
    assert cat.category_of("compile_model") == "compile"
    assert cat.category_of("quantize_fp8_linear_from_config") == "keep"


def test_every_fault_has_hosts_in_the_pipeline_and_is_documented():
    cat = Catalogue.from_yaml(EMULATOR_DEFAULT_YAML)
    doc = (CONFIGS / "emulator" / "FAULTS.md").read_text()
    for f in FAULTS.values():
        assert f.hosts and all(h in cat.names() for h in f.hosts), f.name
        assert f.symptom and f.phase
        assert f"`{f.name}`" in doc, f"{f.name} missing from FAULTS.md"


def test_plan_runs_in_stage_then_file_order_with_plugins_in_their_stage():
    plan = build_plan({"transforms": {"swap_letters": {"stage": "pattern_matcher", "enabled": True,
                                                      "token_a": 1, "token_b": 2}}},
                      [str(PLUGINS / "swap_letters_plugin.py")])
    names = [s.name for s in plan.steps if s.stage is not None]
    assert names.index("match_rmsnorm_pattern") < names.index("swap_letters") < names.index("detect_sharding")
    assert names[0] == "build_model" and names[-1] == "compile_model"
    unstaged = [s for s in plan.steps if s.stage is None]  # plugin transform nobody configured
    assert [s.name for s in unstaged] == ["record_context"] and not unstaged[0].enabled
    assert plan.compile_backend == "torch-cudagraph" and plan.world_size == 1


def test_shortcuts_sync_like_ad():
    plan = build_plan({"compile_backend": "torch-simple", "attn_backend": "torch", "world_size": 2})
    t = plan.resolved["transforms"]
    assert t["compile_model"]["backend"] == "torch-simple"
    assert t["insert_cached_attention"]["backend"] == "torch"
    assert plan.world_size == 2


def test_resolving_twice_is_idempotent():
    plan = build_plan({"compile_backend": "torch-simple", "transforms": {"fuse_rmsnorm": {"enabled": False}}})
    again = build_plan(plan.resolved)
    assert again.resolved == plan.resolved


def test_unknown_transform_lists_valid_names():
    with pytest.raises(HarnessError) as e:
        build_plan({"transforms": {"fuse_rms_norm": {"enabled": False}}})
    msg = str(e.value)
    assert "fuse_rms_norm" in msg and "fuse_rmsnorm" in msg and "optimize_rope" in msg


def test_unknown_fault_lists_valid_faults():
    with pytest.raises(HarnessError) as e:
        build_plan({"transforms": {"optimize_rope": {"fault": "rope_thrice"}}})
    msg = str(e.value)
    assert "rope_thrice" in msg
    assert all(name in msg for name in FAULTS)


def test_fault_in_a_transform_that_cannot_host_it():
    with pytest.raises(HarnessError) as e:
        build_plan({"transforms": {"fuse_silu_mul": {"fault": "rope_applied_twice"}}})
    assert "optimize_rope" in str(e.value) and "fuse_silu_mul" in str(e.value)


@pytest.mark.parametrize("cfg, needle", [
    ({"compile_backend": "torch-fast"}, "torch-cudagraph"),
    ({"attn_backend": "cutlass"}, "flashinfer"),
    ({"world_size": 0}, "world_size"),
    ({"world_size": "2"}, "world_size"),
    ({"transforms": {"fuse_rmsnorm": {"enabled": "no"}}}, "enabled"),
    ({"transforms": {"fuse_rmsnorm": {"stage": "post_load"}}}, "post_load_fusion"),
    ({"transforms": {"fuse_rmsnorm": {"fault": "hardcoded_eps", "fault_strength": "big"}}}, "fault_strength"),
    ({"plugins": 3}, "plugins"),
])
def test_bad_values_are_harness_errors(cfg, needle):
    with pytest.raises(HarnessError) as e:
        build_plan(cfg)
    assert needle in str(e.value)


def test_plugin_missing_file():
    with pytest.raises(HarnessError) as e:
        build_plan({}, [str(PLUGINS / "does_not_exist.py")])
    assert "does not exist" in str(e.value) and "TRANSFORMS" in str(e.value)


def test_plugin_without_transforms():
    with pytest.raises(HarnessError) as e:
        build_plan({}, [str(PLUGINS / "no_transforms_plugin.py")])
    assert "no TRANSFORMS" in str(e.value)


def test_plugin_colliding_with_a_builtin():
    with pytest.raises(HarnessError) as e:
        build_plan({"plugins": [str(PLUGINS / "colliding_plugin.py")]})
    assert "fuse_rmsnorm" in str(e.value) and "collides" in str(e.value)


def test_plugin_transform_without_its_plugin_is_an_unknown_transform():
    with pytest.raises(HarnessError) as e:
        build_plan({"transforms": {"swap_letters": {"stage": "post_load_fusion"}}})
    assert "swap_letters" in str(e.value)


def test_plugin_transforms_become_knobs_with_their_category():
    from harness.config import knobs_of

    user = {"transforms": {"zero_attention_head": {"enabled": True}}}
    cat, plugins = build_catalogue(user, [str(CONFIGS / "emulator" / "plugins" / "example_plugin.py")])
    assert cat.stage_of("zero_attention_head") == "post_load_fusion"
    assert plugins.names() == ["fp8_lm_head", "zero_attention_head"]
    plan = build_plan(user, [str(CONFIGS / "emulator" / "plugins" / "example_plugin.py")])
    knobs = [k.name for k in knobs_of(cat, plan.resolved)]
    assert "zero_attention_head" in knobs and "fp8_lm_head" not in knobs  # disabled by its DEFAULTS


def test_demo_configs_resolve():
    for path in sorted((CONFIGS / "demo").glob("ad_demo*.yaml")):
        from harness.config import load_yaml

        plan = build_plan(load_yaml(path))
        assert plan.steps, path
    assert DEMO_CONFIG.is_file()


def _run(config, plugins=(), samples=4):
    from harness.evaluation.run import run_evaluation
    from harness.evaluation.spec import EvalSpec

    if not (DEMO_MODEL / "config.json").is_file():
        pytest.skip("demo model not built")
    return run_evaluation(EvalSpec(backend="ad-emulator", model=str(DEMO_MODEL), config=config,
                                   samples=samples, plugins=list(plugins)))


def test_transform_that_raises_is_unresolved_naming_it():
    res = _run({"transforms": {"explode": {"stage": "post_load_fusion", "enabled": True}}},
               [str(PLUGINS / "raising_plugin.py")])
    assert res.status == "unresolved"
    assert "explode" in res.error and "boom: shape mismatch" in res.error


def test_builtin_transform_failure_is_unresolved_naming_it():
    res = _run({"world_size": 3})  # 4 heads cannot be split over 3 ranks
    assert res.status == "unresolved"
    assert "detect_sharding" in res.error and "divisible" in res.error


def test_bad_config_is_a_harness_error_not_unresolved():
    with pytest.raises(HarnessError):
        _run({"transforms": {"optimize_rope": {"fault": "nope"}}})
