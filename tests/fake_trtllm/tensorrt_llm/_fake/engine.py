"""The fake engine's numerics: a transformers causal LM run through harness.backends.hf.generate.

``FakeEngine.run`` fills queued RequestOutputs the way TensorRT-LLM does: ``prompt_token_ids``,
``outputs[0]`` with ``text``, ``token_ids``, ``finish_reason`` ('stop' | 'length'), ``stop_reason``
and ``logprobs`` as one ``{token_id: Logprob(logprob, rank)}`` dict per generated token.
``corruption`` (a planted fault) perturbs the weights once at load.
"""
import os

from ..executor.result import CompletionOutput, Logprob


class FakeTokenizer:
    """Like tensorrt_llm.llmapi.tokenizer.TransformersTokenizer: the HF tokenizer is ``.tokenizer``."""

    def __init__(self, hf):
        self.tokenizer = hf

    @property
    def eos_token_id(self):
        return self.tokenizer.eos_token_id

    @property
    def pad_token_id(self):
        return self.tokenizer.pad_token_id

    def encode(self, text, *args, **kwargs):
        return self.tokenizer.encode(text, *args, **kwargs)

    def decode(self, ids, *args, **kwargs):
        return self.tokenizer.decode(ids, *args, **kwargs)


def corrupt(model, spec):
    """Apply a planted fault to the model weights (deterministic)."""
    import torch

    kind = spec.get("kind", "noise")
    scale = float(spec.get("scale", 1.0))
    gen = torch.Generator().manual_seed(int(spec.get("seed", 1234)))
    layers = model.model.layers
    with torch.no_grad():
        if kind == "noise":  # every linear weight of every decoder layer: + scale * std * N(0, 1)
            for layer in layers:
                for mod in layer.modules():
                    if isinstance(mod, torch.nn.Linear):
                        w = mod.weight
                        w.add_(torch.randn(w.shape, generator=gen) * w.std() * scale)
        elif kind == "zero_last_mlp":
            layers[-1].mlp.down_proj.weight.zero_()
        elif kind == "skip_layer":  # decoder layer ``layer`` (default: last) passes its input through
            idx = int(spec.get("layer", -1))

            def passthrough(module, args, kwargs, output):
                return kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]

            layers[idx].register_forward_hook(passthrough, with_kwargs=True)
        elif kind == "attn_scale":  # attention softmax scale multiplied by ``scale``
            for layer in layers:
                layer.self_attn.scaling = layer.self_attn.scaling * scale
        else:
            raise ValueError(f"unknown fake fault kind {kind!r}")


class FakeEngine:
    def __init__(self, model_path, corruption=None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_path = str(model_path)
        hf_tok = AutoTokenizer.from_pretrained(self.model_path)
        self.tokenizer = FakeTokenizer(hf_tok)
        self.model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch.float32).eval()
        self.corruption = corruption
        if corruption:
            corrupt(self.model, corruption)

    def run(self, requests):
        from harness.backends.base import SamplingSpec
        from harness.backends.hf.generate import generate

        sp = requests[0].sampling_params
        stops = [sp.stop] if isinstance(sp.stop, str) else list(sp.stop or [])
        spec = SamplingSpec(
            max_tokens=sp.max_tokens,
            stop=stops or None,
            truncate_prompt_tokens=sp.truncate_prompt_tokens,
            ignore_eos=bool(sp.ignore_eos or sp.end_id == -1),
            top_logprobs=int(sp.logprobs or 0),
            answer_continuations=None,
            batch_size=64,
        )
        hf = self.tokenizer.tokenizer
        comps = generate(self.model, hf, [r.prompt for r in requests], spec)
        for req, comp in zip(requests, comps):
            logprobs = []
            if sp.logprobs:
                for row in comp.top_logprobs or []:
                    ranked = sorted(row.items(), key=lambda kv: -kv[1])
                    logprobs.append({int(hf.convert_tokens_to_ids(tok)): Logprob(lp, rank + 1)
                                     for rank, (tok, lp) in enumerate(ranked)})
            if comp.finish_reason == "stop":
                finish, stop_reason = "stop", next((s for s in stops), None)
            elif comp.finish_reason == "eos":
                finish, stop_reason = "stop", sp.end_id
            else:
                finish, stop_reason = "length", None
            req.prompt_token_ids = list(comp.prompt_token_ids or [])
            req.outputs = [CompletionOutput(index=0, text=comp.text, token_ids=list(comp.token_ids),
                                            logprobs=logprobs, finish_reason=finish, stop_reason=stop_reason)]
            req._done = True
