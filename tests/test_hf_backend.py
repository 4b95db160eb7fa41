"""hf backend and harness.backends.hf.generate: greedy, batched, truncation, stops, EOS, log-probs, NaN."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.backends.base import SamplingSpec
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "harness" / "assets" / "demo_model"
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    if (DEMO / "config.json").is_file():
        return DEMO
    from fixtures.tiny_llama import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="module")
def engine(model_dir):
    from harness.backends import get_backend

    with get_backend("hf").open(str(model_dir), {}) as eng:
        yield eng


def _prompts():
    from harness.tasks.base import PromptOptions
    from harness.tasks.mmlu import MMLUTask

    fix = Path(__file__).resolve().parent / "fixtures" / "mmlu_small"
    s = MMLUTask().samples(str(fix), None, 0, PromptOptions())
    # different lengths: 5-shot prompts of two subjects plus short ones
    return [s[0].prompt, s[-1].prompt, "Answer:", "Which is the word red?\nA. red\nB. blue\nAnswer:", s[5].prompt]


def _reference_greedy(eng, prompt, n):
    """Token-by-token greedy without KV cache or padding: the batched generator must agree."""
    import torch

    ids = eng.tokenizer.encode(prompt, add_special_tokens=True)
    out, first_lp = [], None
    for step in range(n):
        with torch.inference_mode():
            logits = eng.model(torch.tensor([ids + out])).logits[0, -1].float()
        if step == 0:
            first_lp = torch.log_softmax(logits, -1)
        out.append(int(logits.argmax()))
    return ids, out, first_lp


def test_batched_cached_generation_matches_uncached_reference(engine):
    prompts = _prompts()
    comps = engine.generate(prompts, SamplingSpec(max_tokens=3, batch_size=3, answer_continuations=[" A", " B"]))
    from harness.backends.hf.generate import continuation_token_id

    a_id = continuation_token_id(engine.tokenizer, " A")
    for p, c in zip(prompts, comps):
        ids, ref, first_lp = _reference_greedy(engine, p, 3)
        assert c.prompt_token_ids == ids
        assert c.token_ids == ref
        assert c.finish_reason == "length"
        assert c.text == engine.tokenizer.decode(ref, skip_special_tokens=True)
        assert c.answer_logprobs[" A"] == pytest.approx(float(first_lp[a_id]), abs=1e-4)
        assert len(c.top_logprobs) == 3 and len(c.top_logprobs[0]) == 10
        top_token = max(c.top_logprobs[0], key=c.top_logprobs[0].get)
        assert top_token == engine.tokenizer.convert_ids_to_tokens(ref[0])


def test_batch_vs_single_consistency(engine):
    prompts = _prompts()
    sampling = SamplingSpec(max_tokens=2, answer_continuations=[" A", " B", " C", " D"])
    batched = engine.generate(prompts, sampling)
    for p, b in zip(prompts, batched):
        (single,) = engine.generate([p], sampling)
        assert single.token_ids == b.token_ids and single.text == b.text
        for k in single.answer_logprobs:
            assert single.answer_logprobs[k] == pytest.approx(b.answer_logprobs[k], abs=1e-4)


def test_truncation_as_trtllm_input_processor(engine):
    p = _prompts()[0]
    tok = engine.tokenizer
    full = tok.encode(p, add_special_tokens=True)
    assert len(full) > 12
    (c,) = engine.generate([p], SamplingSpec(max_tokens=1, truncate_prompt_tokens=12))
    assert c.prompt_token_ids == tok.encode(p, add_special_tokens=True, truncation=True, max_length=12)
    assert len(c.prompt_token_ids) == 12
    (c2,) = engine.generate([p], SamplingSpec(max_tokens=1, truncate_prompt_tokens=None))
    assert c2.prompt_token_ids == full


def test_info_and_missing_model_dir(engine, model_dir):
    info = engine.info()
    assert info["device"] in ("cpu", "cuda") and info["dtype"] == "float32"
    assert info["torch"] and info["transformers"] and info["model"] == str(Path(model_dir).resolve())
    from harness.backends import get_backend

    with pytest.raises(HarnessError, match="does not exist"):
        get_backend("hf").open("/nonexistent/model_dir", {})


# --- a scripted fake model: exact control over what is generated ------------------------------------

class ScriptedLM:
    """Emits ``script[step]`` at generation step ``step`` (one-hot logits; NaN rows when the script says so)."""

    def __init__(self, vocab: int, script: list):
        self.vocab, self.script, self.calls = vocab, script, 0

    def __call__(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=True):
        import torch

        step = 0 if past_key_values is None else past_key_values + 1
        assert attention_mask.shape[1] == (input_ids.shape[1] if past_key_values is None else attention_mask.shape[1])
        logits = torch.full((input_ids.shape[0], input_ids.shape[1], self.vocab), -10.0)
        want = self.script[min(step, len(self.script) - 1)]
        if want == "nan":
            logits[:, -1, :] = float("nan")
        elif want == "inf":
            logits[:, -1, 0] = float("inf")
        else:
            logits[:, -1, want] = 10.0
        return SimpleNamespace(logits=logits, past_key_values=step)

    forward = __call__


def _gen(tok, script, **kw):
    from harness.backends.hf.generate import generate

    model = ScriptedLM(len(tok), script)
    return generate(model, tok, kw.pop("prompts", ["Answer:", "Question: 1 + 1?\nAnswer:"]), SamplingSpec(**kw))


def test_stop_string_cuts_text(engine):
    tok = engine.tokenizer
    script = tok.encode(" 12\n\nQuestion: 5", add_special_tokens=False)
    comps = _gen(tok, script, max_tokens=len(script) + 3, stop=["Question:"], ignore_eos=False, top_logprobs=2)
    for c in comps:
        assert c.finish_reason == "stop"
        assert c.text == " 12\n\n"
        assert tok.decode(c.token_ids).startswith(" 12\n\nQuestion:")
        assert len(c.top_logprobs) == len(c.token_ids)


def test_eos_and_ignore_eos(engine):
    tok = engine.tokenizer
    a, b = tok.encode(" A", add_special_tokens=False)[0], tok.encode(" B", add_special_tokens=False)[0]
    script = [a, tok.eos_token_id, b]
    (stopped, _) = _gen(tok, script, max_tokens=3, ignore_eos=False)
    assert stopped.finish_reason == "eos" and stopped.token_ids == [a, tok.eos_token_id]
    assert stopped.text == " A"
    (full, _) = _gen(tok, script, max_tokens=3, ignore_eos=True)
    assert full.finish_reason == "length" and full.token_ids == [a, tok.eos_token_id, b]
    assert full.text == " A B"  # EOS is a special token: skipped in the text


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_nonfinite_logits_never_raise(engine, bad):
    from harness.evaluation.records import make_record
    from harness.tasks.base import Sample, Score

    tok = engine.tokenizer
    comps = _gen(tok, [bad, bad], max_tokens=2, answer_continuations=[" A", " B", " C", " D"])
    for c in comps:
        assert len(c.token_ids) == 2 and all(0 <= t < len(tok) for t in c.token_ids)
        assert any(not math.isfinite(v) for v in c.answer_logprobs.values())
        rec = make_record(Sample(id="x", subject="s", prompt="p", reference="A"), c, Score(False, None))
        assert rec["nonfinite"] is True


def test_results_in_input_order_across_batches(engine):
    tok = engine.tokenizer
    prompts = ["a", "a b c d e f g", "a b", "a b c d", "a b c"]
    comps = _gen(tok, [tok.encode(" A", add_special_tokens=False)[0]], prompts=prompts, max_tokens=1, batch_size=2)
    assert [c.prompt_token_ids for c in comps] == [tok.encode(p) for p in prompts]


# --- end to end: diagnose on the shipped demo model -----------------------------------------------

def test_diagnose_on_demo_model(tmp_path):
    if not (DEMO / "config.json").is_file():
        pytest.skip("demo model not built")
    out = subprocess.run([sys.executable, "-m", "harness", "diagnose", "--samples", "60", "--out", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "=== first prompt (mmlu/" in text and "\nAnswer:\n=== end of first prompt ===" in text
    assert "id" in text and "gold" in text and "correct" in text
    assert "accuracy:" in text and "95% Wilson interval" in text
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert f"run directory: {run_dir}" in text
    from harness.evaluation.rundir import read_run

    run, records = read_run(run_dir)
    assert run["status"] == "ok" and run["backend"] == "hf" and run["task"] == "mmlu"
    assert run["versions"]["torch"] and run["timings"]["generate_s"] > 0
    assert len(records) == run["metrics"]["n"] == 60
    r = records[0]
    for key in ("id", "subject", "prompt_hash", "prompt_token_hash", "output", "token_ids", "finish_reason",
                "parsed", "correct", "answer_logprobs", "top_logprobs"):
        assert key in r
    assert set(r["answer_logprobs"]) == {"A", "B", "C", "D"} and len(r["token_ids"]) == 2
    # the demo model answers far above chance (25%) on its own data set
    assert run["metrics"]["score"] > 40
    json.dumps(run)


class CrashingBackend:
    """A backend whose engine dies while loading: diagnose must report it as unresolved, not crash."""

    name = "crashing"
    takes_ad_config = False

    def open(self, model, config, context=None):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_diagnose_unresolved_writes_run_json_and_exits_1(tmp_path, monkeypatch, capsys):
    import os

    from harness import backends
    from harness.cli import main

    # registered here and, through the testing hook, in diagnose's worker process
    monkeypatch.setitem(backends.BACKENDS, "crashing", "test_hf_backend:CrashingBackend")
    monkeypatch.setenv("HARNESS_EXTRA_BACKENDS", "crashing=test_hf_backend:CrashingBackend")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "tests"), str(REPO)]))
    rc = main(["diagnose", "--backend", "crashing", "--samples", "6", "--quiet", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert rc == 1
    assert "illegal memory access" in captured.err
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    from harness.evaluation.rundir import read_run

    run, records = read_run(run_dir)
    assert run["status"] == "unresolved" and "illegal memory access" in run["error"] and records == []
