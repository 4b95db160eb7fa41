"""Search strategies on synthetic knobs (8..64) with planted culprits, pairs and untestable steps."""
import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.bisect.search import FAIL, MAX_WIDTH, PASS, UNTESTABLE, run_search
from harness.errors import HarnessError


def oracle_for(culprits, untestable=(), calls=None):
    def oracle(on, purpose):
        if calls is not None:
            calls.append(tuple(on))
        s = set(on)
        if s & set(untestable):
            return UNTESTABLE
        return FAIL if any(set(c) <= s for c in culprits) else PASS
    return oracle


def knobs(n):
    return [f"k{i:02d}" for i in range(n)]


def groups(res):
    return sorted(sorted(g) for g in res.culprits)


@pytest.mark.parametrize("n", [8, 16, 32, 64])
def test_adaptive_one_culprit_in_log_n(n):
    ks = knobs(n)
    bound = math.ceil(math.log2(n)) + 3
    for c in ks:  # every position
        res = run_search("adaptive", ks, oracle_for([[c]]))
        assert res.culprits == [[c]] and res.explained is True
        # search probes include Phase 6's "full - culprit"; "minimal + culprit" is among them
        probed = {p.on for p in res.probes}
        assert res.evaluations + ((c,) not in probed) <= bound


@pytest.mark.parametrize("n", [8, 16, 32])
def test_adaptive_two_independent_culprits(n):
    ks = knobs(n)
    rng = random.Random(n)
    for a, b in rng.sample(list(itertools.combinations(ks, 2)), 15):
        res = run_search("adaptive", ks, oracle_for([[a], [b]]))
        assert groups(res) == sorted([[a], [b]])
        assert res.explained is True
        assert res.evaluations <= 2 * (math.ceil(math.log2(n)) + 2)


@pytest.mark.parametrize("n", [8, 16, 64])
def test_adaptive_finds_pair_that_fails_only_together(n):
    ks = knobs(n)
    rng = random.Random(n + 1)
    for a, b in rng.sample(list(itertools.combinations(ks, 2)), 15):
        res = run_search("adaptive", ks, oracle_for([[a, b]]))
        assert groups(res) == [sorted([a, b])], (a, b, res.culprits)
        assert res.evaluations <= 4 * math.ceil(math.log2(n)) + 3


def test_adaptive_single_plus_pair():
    ks = knobs(16)
    res = run_search("adaptive", ks, oracle_for([["k03"], ["k07", "k12"]]))
    assert groups(res) == [["k03"], ["k07", "k12"]]


def test_linear_evaluates_every_knob_and_finds_all_singles():
    ks = knobs(12)
    calls = []
    res = run_search("linear", ks, oracle_for([["k02"], ["k09"]], calls=calls))
    assert groups(res) == [["k02"], ["k09"]]
    assert all((k,) in calls for k in ks)  # every knob re-enabled alone, in pipeline order
    assert [c for c in calls if len(c) == 1] == [(k,) for k in ks]
    assert res.evaluations == len(ks) + 1  # + "full - culprits"


def test_linear_finds_pair_with_cumulative_pass():
    ks = knobs(10)
    res = run_search("linear", ks, oracle_for([["k01", "k06"]]))
    assert groups(res) == [["k01", "k06"]]
    assert res.explained is True


def test_untestable_is_never_a_pass():
    ks = knobs(8)
    # k05 is the culprit; any config containing k02 crashes (untestable)
    res = run_search("adaptive", ks, oracle_for([["k05"]], untestable=["k02"]))
    assert "k05" in res.culprit_knobs()
    assert "k02" not in res.culprit_knobs()
    # the culprit itself untestable when alone: reported as a suspect, never cleared
    res = run_search("adaptive", ks, oracle_for([["k05"]], untestable=["k05"]))
    assert "k05" in res.suspects and res.culprits == []


def test_batch_oracle_used_by_linear():
    ks = knobs(6)
    batches = []

    def batch(sets, purposes):
        batches.append(len(sets))
        o = oracle_for([["k04"]])
        return [o(s, p) for s, p in zip(sets, purposes)]

    res = run_search("linear", ks, oracle_for([["k04"]]), batch_oracle=batch)
    assert batches[0] == 6 and res.culprits == [["k04"]]


def test_requires_drops_dependents():
    ks = ["world_size", "k1", "fuse_ar", "k3"]
    req = {"fuse_ar": ["world_size"]}

    def oracle(on, purpose):
        s = set(on)
        if "fuse_ar" in s:
            s.add("world_size")  # what the orchestrator's closure does
        return FAIL if "world_size" in s else PASS

    res = run_search("adaptive", ks, oracle, requires=req)
    assert res.culprits == [["world_size"]] and res.explained is True


@pytest.mark.parametrize("culprit", ["world_size", "fuse_ar"])
@pytest.mark.parametrize("strategy", ["adaptive", "linear"])
def test_a_knob_that_requires_a_culprit_is_not_a_co_culprit(strategy, culprit):
    """fuse_ar's probe switches world_size on with it: when world_size alone fails, fuse_ar is not named
    beside it (both strategies name world_size alone); when only fuse_ar is faulty, it is the culprit."""
    ks = ["world_size", "k1", "fuse_ar", "k3"]
    req = {"fuse_ar": ["world_size"]}

    def oracle(on, purpose):
        s = set(on) | ({"world_size"} if "fuse_ar" in on else set())
        return FAIL if culprit in s else PASS

    res = run_search(strategy, ks, oracle, requires=req)
    assert res.culprits == [[culprit]] and res.explained is True


def test_budget_stops_a_non_monotone_oracle():
    ks = knobs(16)
    flip = itertools.cycle([FAIL, PASS, PASS])
    res = run_search("adaptive", ks, lambda on, p: next(flip), budget=10)
    assert res.evaluations <= 10


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(HarnessError, match="adaptive"):
        run_search("binary", knobs(4), oracle_for([["k00"]]))


# -- parallel group testing: up to MAX_WIDTH probes per round ----------------------------------
def batched(oracle, sizes=None):
    def batch(sets, purposes):
        if sizes is not None:
            sizes.append(len(sets))
        return [oracle(s, p) for s, p in zip(sets, purposes)]
    return batch


def sequential(ks, culprits):
    o = oracle_for(culprits)
    return run_search("adaptive", ks, o, batch_oracle=batched(o))


@pytest.mark.parametrize("n", [16, 64])
@pytest.mark.parametrize("k", [2, 4, 8])
def test_parallel_one_culprit_in_log_k_plus_1_rounds(n, k):
    ks = knobs(n)
    evaluations = {"parallel": 0, "sequential": 0}
    for c in ks:  # every position
        o, sizes = oracle_for([[c]]), []
        res = run_search("adaptive", ks, o, batch_oracle=batched(o, sizes), parallel=k)
        assert res.culprits == [[c]] and res.explained is True
        assert res.rounds <= math.ceil(math.log(n, k + 1)) + 3, (c, [p.to_dict() for p in res.probes])
        assert max(sizes) <= min(k, MAX_WIDTH) and res.width == min(k, MAX_WIDTH)
        evaluations["parallel"] += res.evaluations
        evaluations["sequential"] += sequential(ks, [[c]]).evaluations
    assert evaluations["parallel"] <= 1.5 * evaluations["sequential"]  # on average over the positions


@given(st.integers(4, 40), st.integers(2, 8), st.data())
@settings(max_examples=150, deadline=None)
def test_parallel_search_finds_what_the_sequential_one_finds(n, k, data):
    ks = knobs(n)
    kind = data.draw(st.sampled_from(["one", "two", "pair", "single+pair"]))
    picks = data.draw(st.lists(st.sampled_from(ks), min_size=3, max_size=3, unique=True))
    culprits = {"one": [picks[:1]], "two": [[picks[0]], [picks[1]]], "pair": [picks[:2]],
                "single+pair": [[picks[0]], picks[1:]]}[kind]
    o = oracle_for(culprits)
    par = run_search("adaptive", ks, o, batch_oracle=batched(o), parallel=k)
    seq = sequential(ks, culprits)
    assert groups(par) == groups(seq) == sorted(sorted(g) for g in culprits)
    assert par.explained is True
    members = sum(len(g) for g in culprits)  # one prefix search (+ its check) per culprit knob
    assert par.rounds <= members * (math.ceil(math.log(n, min(k, MAX_WIDTH) + 1)) + 2) + 1


def test_parallel_untestable_is_never_a_pass():
    ks = knobs(16)
    o = oracle_for([["k05"]], untestable=["k02"])  # every prefix from k02 on is untestable
    res = run_search("adaptive", ks, o, batch_oracle=batched(o), parallel=3)
    assert "k05" in res.culprit_knobs() and "k02" not in res.culprit_knobs()
    o = oracle_for([["k05"]], untestable=["k05"])
    res = run_search("adaptive", ks, o, batch_oracle=batched(o), parallel=3)
    assert "k05" in res.suspects and res.culprits == []


def test_parallel_budget_stops_a_non_monotone_oracle():
    flip = itertools.cycle([FAIL, PASS, PASS, UNTESTABLE])
    res = run_search("adaptive", knobs(16), lambda on, p: next(flip), budget=10, parallel=3)
    assert res.evaluations <= 10
