"""Both search strategies name the same culprits on every shipped demo config.

Each demo is planned exactly as `bisect` plans it (harness/bisect/inputs.py, plan.py: the knobs, what
world_size switches and what requires it) and searched with the search code bisect runs
(harness/bisect/search.py), adaptive and linear. The oracle is the real ad-emulator with its engine
noise off, judged against the hf reference on the same prompts: a configuration fails when its
answer-letter log-probabilities move (the emulator's transforms are exact unless a fault acts, so a
deterministic oracle; the statistical verdict under noise has its own tests and benchmarks). The
knobs the full run reports as having nothing to do are pruned first, as bisect does.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.paths import CONFIGS, DEMO_MMLU, DEMO_MODEL

DEMOS = sorted((CONFIGS / "demo").glob("*.yaml"))
SAMPLES = 12
TOLERANCE_NATS = 1e-3

pytestmark = pytest.mark.skipif(not (DEMO_MODEL / "config.json").is_file(), reason="demo model not built")


def _letters(records) -> list[dict]:
    return [r.get("answer_logprobs") or {} for r in records]


class DemoOracle:
    """One demo's configurations evaluated in this process, memoised on the resolved config."""

    def __init__(self, inp, plan):
        from harness.evaluation.run import run_evaluation
        from harness.evaluation.spec import EvalSpec

        self.inp, self.plan, self.memo = inp, plan, {}
        self.spec = lambda cfg: EvalSpec(backend="ad-emulator", model=str(inp.model), task="mmlu", config=cfg,
                                         dataset=str(DEMO_MMLU), samples=SAMPLES, plugins=list(inp.plugins))
        ref = run_evaluation(EvalSpec(backend="hf", model=str(inp.model), task="mmlu", dataset=str(DEMO_MMLU),
                                      samples=SAMPLES))
        assert ref.status == "ok", ref.error
        self.reference = _letters(ref.records)
        self.run = run_evaluation

    def result(self, on):
        from harness.config import config_hash, deep_merge

        cfg = deep_merge(self.plan.config(self.inp.user_config, self.plan.closure(on)),
                         {"engine_noise": {"strength": 0}})
        key = config_hash(cfg)
        if key not in self.memo:
            res = self.run(self.spec(cfg))
            assert res.status == "ok", res.error
            self.memo[key] = res
        return self.memo[key]

    def outcome(self, on, purpose=""):
        from harness.bisect.search import FAIL, PASS

        got = _letters(self.result(on).records)
        moved = any(abs(a.get(k, -math.inf) - v) > TOLERANCE_NATS or not math.isfinite(a.get(k, math.nan))
                    for ref, a in zip(self.reference, got) for k, v in ref.items())
        return FAIL if moved else PASS


def _plan(config: Path):
    from harness.bisect.inputs import resolve_inputs
    from harness.bisect.plan import build_plan
    from harness.cli import build_parser

    model = DEMO_MODEL.parent / "demo_model_fp8" if "fp8" in config.name else DEMO_MODEL
    args = build_parser().parse_args(["bisect", "--config", str(config), "--model", str(model), "--dry-run",
                                      "--samples", str(SAMPLES)])
    inp = resolve_inputs(args)
    plan = build_plan(inp.catalogue, inp.user_config, "adaptive", None, quantized=bool(inp.quant.get("quantized")))
    return inp, plan


@pytest.mark.slow
@pytest.mark.parametrize("config", DEMOS, ids=[p.stem for p in DEMOS])
def test_both_strategies_name_the_same_culprits(config):
    from harness.bisect.search import FAIL, PASS, run_search

    inp, plan = _plan(config)
    oracle = DemoOracle(inp, plan)
    knobs = plan.knob_names
    if oracle.outcome(knobs) == PASS:  # the clean demo: nothing to search
        assert "clean" in config.name
        return
    plan.prune_no_effect((oracle.result(knobs).info or {}).get("transforms"))
    knobs = plan.knob_names
    if oracle.outcome(()) == FAIL:  # a core-path bug: the ladder's case, not the search's
        assert "core_path" in config.name
        return
    found = {}
    for strategy in ("adaptive", "linear"):
        res = run_search(strategy, knobs, oracle.outcome, requires=plan.requires,
                         known={frozenset(): PASS, frozenset(knobs): FAIL})
        found[strategy] = sorted(sorted(g) for g in res.culprits)
        assert res.explained is True, (strategy, res.to_dict())
    assert found["adaptive"] == found["linear"], found
    assert found["adaptive"], "a planted fault was not found"
