"""Fake-only: the demo Llama as AD's exported FX graph, rewritten by the transforms that change it, and dumped
in GraphWriter's text format.

The dump format is tensorrt_llm/_torch/auto_deploy/utils/graph_writer.py@3286e126 (``dump_ssa_with_meta``):
``# Transform:`` / ``# Stage:`` / ``# GraphModules found:`` headers, a ``# GraphModule: (root)`` section,
``%name : shape : dtype`` placeholders, ``%name = target(%arg : shape : dtype, ...) : shape : dtype`` calls and
an ``output`` line. The graph starts at the aten level after export (RMSNorm, RoPE and SiLU*mul as their
torch op chains, attention as SDPA) and the transforms replace matched groups the way their pattern
replacements do: the group's nodes disappear, one new node (fresh name) takes its inputs and its consumers.
Modelled rewrites, with the ops the real transforms insert:

* fuse_rmsnorm: the RMSNorm chain -> ``auto_deploy.<rmsnorm_backend>_rms_norm`` (transform/library/rms_norm.py@004da3c2)
* match_rope_pattern: the HF RoPE chains of q and k -> ``auto_deploy.torch_rope_with_explicit_cos_sin``;
  optimize_rope: that op -> ``auto_deploy.flashinfer_rope`` (transform/library/rope.py@b06727b7)
* fuse_silu_mul: silu(gate) * up -> ``auto_deploy.silu_and_mul`` (transform/library/fuse_silu_mul.py@3bb6026f)
* insert_cached_attention: SDPA -> ``auto_deploy.<backend>_attention_mha_with_cache`` (transform/library/kvcache.py)
* sharding_transform_executor at world_size > 1: ``auto_deploy.torch_dist_all_reduce`` after o_proj and down_proj
  (transform/library/sharding.py@03dd9bb8)

Every other transform leaves the graph as it is (its dump repeats the previous one).
"""
from collections import Counter

LAYERS, HIDDEN, INTER, HEADS, HEAD_DIM, VOCAB = 2, 128, 336, 4, 32, 599
BF16, I64 = "torch.bfloat16", "torch.int64"
GETITEM = "<built-in function getitem>"


class FakeGraph:
    def __init__(self):
        self.nodes = []  # dicts: name, target, inputs, shape, dtype, site
        self.names = Counter()
        self._build()

    # -- construction ------------------------------------------------------------------------------------
    def _name(self, base):
        n = self.names[base]
        self.names[base] += 1
        return base if n == 0 else f"{base}_{n}"

    def _node(self, base, target, inputs, shape, site=None, dtype=BF16, at=None):
        node = {"name": self._name(base), "target": target, "inputs": list(inputs), "shape": shape, "dtype": dtype,
                "site": site}
        if at is None:
            self.nodes.append(node)
        else:
            self.nodes.insert(at, node)
        return node["name"]

    def _ph(self, name, shape, dtype=BF16):
        self.names[name] += 1
        self.nodes.append({"name": name, "target": None, "inputs": [], "shape": shape, "dtype": dtype, "site": None})
        return name

    def _rmsnorm(self, x, weight, site):
        s = f"s0x{HIDDEN}"
        to = self._node("to", "aten._to_copy.default", [x], s, site)
        p = self._node("pow", "aten.pow.Tensor_Scalar", [to], s, site)
        m = self._node("mean", "aten.mean.dim", [p], "s0x1", site)
        a = self._node("add", "aten.add.Tensor", [m], "s0x1", site)
        r = self._node("rsqrt", "aten.rsqrt.default", [a], "s0x1", site)
        mul = self._node("mul", "aten.mul.Tensor", [to, r], s, site)
        to1 = self._node("to", "aten._to_copy.default", [mul], s, site)
        return self._node("mul", "aten.mul.Tensor", [weight, to1], s, site)

    def _rope_one(self, x, cos, sin, site):
        s = f"s0x{HEADS}x{HEAD_DIM}"
        m = self._node("mul", "aten.mul.Tensor", [x, cos], s, site)
        lo = self._node("slice", "aten.slice.Tensor", [x], s, site)
        hi = self._node("slice", "aten.slice.Tensor", [x], s, site)
        neg = self._node("neg", "aten.neg.default", [hi], s, site)
        cat = self._node("cat", "aten.cat.default", [neg, lo], s, site)
        m2 = self._node("mul", "aten.mul.Tensor", [cat, sin], s, site)
        return self._node("add", "aten.add.Tensor", [m, m2], s, site)

    def _layer(self, i, h, cos, sin):
        w = {k: self._ph(f"model_layers_{i}_{k}_weight", "?") for k in (
            "input_layernorm", "self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj", "self_attn_o_proj",
            "post_attention_layernorm", "mlp_gate_proj", "mlp_up_proj", "mlp_down_proj")}
        hn = self._rmsnorm(h, w["input_layernorm"], ("rmsnorm", f"{i}.in"))
        q, k, v = (self._node("linear", "aten.linear.default", [hn, w[f"self_attn_{p}_proj"]], f"s0x{HIDDEN}")
                   for p in "qkv")
        q, k, v = (self._node("view", "aten.view.default", [t], f"s0x{HEADS}x{HEAD_DIM}") for t in (q, k, v))
        q = self._rope_one(q, cos, sin, ("rope", str(i)))
        k = self._rope_one(k, cos, sin, ("rope", str(i)))
        attn = self._node("scaled_dot_product_attention", "aten.scaled_dot_product_attention.default", [q, k, v],
                          f"s0x{HEADS}x{HEAD_DIM}", ("attention", str(i)))
        attn = self._node("view", "aten.view.default", [attn], f"s0x{HIDDEN}")
        o = self._node("linear", "aten.linear.default", [attn, w["self_attn_o_proj"]], f"s0x{HIDDEN}",
                       ("row_parallel", f"{i}.o"))
        h = self._node("add", "aten.add.Tensor", [h, o], f"s0x{HIDDEN}")
        hn = self._rmsnorm(h, w["post_attention_layernorm"], ("rmsnorm", f"{i}.post"))
        gate = self._node("linear", "aten.linear.default", [hn, w["mlp_gate_proj"]], f"s0x{INTER}")
        up = self._node("linear", "aten.linear.default", [hn, w["mlp_up_proj"]], f"s0x{INTER}")
        silu = self._node("silu", "aten.silu.default", [gate], f"s0x{INTER}", ("silu_mul", str(i)))
        act = self._node("mul", "aten.mul.Tensor", [silu, up], f"s0x{INTER}", ("silu_mul", str(i)))
        down = self._node("linear", "aten.linear.default", [act, w["mlp_down_proj"]], f"s0x{HIDDEN}",
                          ("row_parallel", f"{i}.down"))
        return self._node("add", "aten.add.Tensor", [h, down], f"s0x{HIDDEN}")

    def _build(self):
        ids = self._ph("input_ids", "1xs0", I64)
        self._ph("position_ids", "1xs0", I64)
        emb_w = self._ph("model_embed_tokens_weight", f"{VOCAB}x{HIDDEN}")
        cos, sin = self._ph("cos", f"s0x{HEAD_DIM}"), self._ph("sin", f"s0x{HEAD_DIM}")
        h = self._node("embedding", "aten.embedding.default", [emb_w, ids], f"s0x{HIDDEN}")
        for i in range(LAYERS):
            h = self._layer(i, h, cos, sin)
        norm_w = self._ph("model_norm_weight", str(HIDDEN))
        h = self._rmsnorm(h, norm_w, ("rmsnorm", "final"))
        self.output = self._node("linear", "aten.linear.default", [h, emb_w], f"s0x{VOCAB}")

    # -- rewrites ----------------------------------------------------------------------------------------
    def replace(self, kind, make) -> int:
        """Replace every group of ``kind`` with ``make(external inputs, group) -> [(base, target, inputs)]``; an
        input ``"<k>"`` is the k-th new node. The group's outputs' consumers read the last new nodes instead."""
        sites = list(dict.fromkeys(n["site"] for n in self.nodes if n["site"] and n["site"][0] == kind))
        for site in sites:
            group = [n for n in self.nodes if n["site"] == site]
            names = {n["name"] for n in group}
            ext = list(dict.fromkeys(i for n in group for i in n["inputs"] if i not in names))
            outs = [n["name"] for n in group if not any(n["name"] in m["inputs"] for m in group)]
            at = self.nodes.index(group[0])
            self.nodes = [n for n in self.nodes if n["site"] != site]
            new = []
            for base, target, inputs in make(ext, group):
                inputs = [new[int(i[1:-1])] if i.startswith("<") else i for i in inputs]
                new.append(self._node(base, target, inputs, group[-1]["shape"], site, at=at + len(new)))
            rewire = dict(zip(outs, new[-len(outs):])) if len(new) >= len(outs) else {}
            for n in self.nodes:
                n["inputs"] = [rewire.get(i, i) for i in n["inputs"]]
        return len(sites)

    def apply(self, name, conf, world_size):
        """Rewrite the graph as transform ``name`` (which ran and matched) does."""
        if name == "fuse_rmsnorm":
            op = f"auto_deploy.{conf.get('rmsnorm_backend') or conf.get('backend') or 'flashinfer'}_rms_norm.default"
            self.replace("rmsnorm", lambda ext, g: [(op.split(".")[1], op, ext)])
        elif name == "match_rope_pattern":
            op = "auto_deploy.torch_rope_with_explicit_cos_sin.default"
            # the group's inputs in first-use order: q, cos, sin (the q chain), then k
            self.replace("rope", lambda ext, g: [("torch_rope_with_explicit_cos_sin", op, [ext[0], ext[3], ext[1], ext[2]]),
                                                 ("getitem", GETITEM, ["<0>"]), ("getitem", GETITEM, ["<0>"])])
        elif name == "optimize_rope":
            if any(n["target"] == "auto_deploy.torch_rope_with_explicit_cos_sin.default" for n in self.nodes):
                op = "auto_deploy.flashinfer_rope.default"
                self.replace("rope", lambda ext, g: [("flashinfer_rope", op, ext[:2] + ["position_ids"]),
                                                     ("getitem", GETITEM, ["<0>"]), ("getitem", GETITEM, ["<0>"])])
        elif name == "fuse_silu_mul":
            self.replace("silu_mul", lambda ext, g: [("silu_and_mul", "auto_deploy.silu_and_mul.default", ext)])
        elif name == "insert_cached_attention":
            op = f"auto_deploy.{conf.get('backend') or 'flashinfer'}_attention_mha_with_cache.default"
            self.replace("attention", lambda ext, g: [(op.split(".")[1], op, ext)])
        elif name == "sharding_transform_executor" and world_size > 1:
            self.replace("row_parallel", lambda ext, g: [("linear", g[0]["target"], ext),
                                                         ("torch_dist_all_reduce",
                                                          "auto_deploy.torch_dist_all_reduce.default", ["<0>"])])

    # -- the dump ----------------------------------------------------------------------------------------
    def render(self, transform, stage):
        meta = {n["name"]: f"{n['shape']} : {n['dtype']}" for n in self.nodes}
        lines = [f"# Transform: {transform}", f"# Stage: {stage}", "# GraphModules found: 1", "",
                 "", "=" * 80, "# GraphModule: (root)", "=" * 80, ""]
        for n in self.nodes:
            if n["target"] is None:
                lines.append(f"%{n['name']} : {meta[n['name']]}")
            else:
                args = ", ".join(f"%{i} : {meta.get(i, '? : unknown')}" for i in n["inputs"])
                lines.append(f"%{n['name']} = {n['target']}({args}) : {meta[n['name']]}")
        lines.append(f"output %{self.output}")
        return "\n".join(lines) + "\n"
