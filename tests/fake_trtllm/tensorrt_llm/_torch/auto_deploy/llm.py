"""Fake of auto_deploy/llm.py: LLM(_TorchLLM) forcing backend="_autodeploy", plus a fake InferenceOptimizer
that runs the transforms of the resolved config in stage order and logs each one as AD's
``BaseTransform.__call__`` does (tensorrt_llm/_torch/auto_deploy/transform/interface.py), in one of two formats:

* "summary" (default; the newest stored interface.py, with Stages.EXPORT_ONNX):
  ``[PRE-CLEANUP] ...``, ``[APPLY] applying transform...``, messages logged while applying (prefixed
  ``[APPLY]``), ``[POST-CLEANUP] ...``, then ``[SUMMARY] matches=N | time: ...`` / ``[SUMMARY] skipped |
  time: ...``; a disabled transform logs only ``[SUMMARY] disabled``;
* "legacy" (@c57d2c55): ``running graph cleanup (...)``, messages, ``enabled=<bool>, skipped=True`` or
  ``enabled=<bool>, num_matches=N, is_clean=..., has_valid_shapes=...``, then ``elapsed time: total=...``.

What each transform reports on the dense, unquantized demo Llama follows the real transforms: quantization
fusions return ``skipped=(cnt == 0)`` (transform/library/fuse_quant.py), sharding transforms log "Skipping
sharding for single device" and return ``skipped=True`` below world_size 2 (transform/library/sharding.py@03dd9bb8),
``fuse_moe`` returns ``skipped=False, num_matches=0`` without MoE (transform/library/fused_moe.py), a
transform with ``skip_on_error`` that raises logs the warning "Transform T failed: ..." and reports skipped.
The planted fault (tensorrt_llm/_fake) lands when its transform matches, or -- ``{"attn_backend": B}`` --
when insert_cached_attention runs with attention backend B.
"""
import os
import shutil
import time

from ...llmapi.llm import _TorchLLM
from .llm_args import LlmArgs
from .utils.logger import ad_logger

__all__ = ["LLM"]

# the newest Stages enum (transform/interface.py: ... cache_init, visualize, export_onnx, compile)
STAGES = ["factory", "export", "post_export", "pattern_matcher", "sharding", "weight_load", "post_load_fusion",
          "cache_init", "visualize", "export_onnx", "compile"]
_QUANT = ("fp8", "fp4", "mxfp", "finegrained", "int4", "quant")  # skipped=(cnt == 0) on an unquantized model
_NONE_HERE = ("moe", "mla", "ssm", "causal_conv", "delta", "l2norm", "gdn", "allreduce", "bmm", "multi_stream",
              "mrope", "hidden_states", "noop", "transposes", "residual_add", "gemms", "dsv3", "lamport")


def _outcome(name, conf, world_size):
    """(skipped, num_matches, messages) of one enabled transform on the dense demo Llama."""
    if conf["stage"] == "sharding":
        msgs = ["Using allreduce strategy: NCCL, dist backend: auto"] if name == "detect_sharding" else []
        if world_size < 2:
            return True, 0, msgs + ["Skipping sharding for single device"]
        return False, 4, msgs
    if any(tok in name for tok in _QUANT):
        return True, 0, []
    if any(tok in name for tok in _NONE_HERE):
        return False, 0, []
    return False, 2, []


class _Log:
    """One transform's log lines in the chosen format (prefix as with_transform_logging adds it)."""

    def __init__(self, name, stage, fmt):
        self.prefix = f"[stage={stage}, transform={name}]"
        self.fmt = fmt
        self.t0 = time.time()

    def info(self, msg):
        ad_logger.info(self.prefix, msg)

    def message(self, msg, warning=False):
        text = f"[APPLY] {msg}" if self.fmt == "summary" else msg
        (ad_logger.warning if warning else ad_logger.info)(self.prefix, text)

    def cleanup(self, phase):
        if self.fmt == "summary":
            self.info(f"[{phase.upper()}-CLEANUP] graph canonicalization")
        else:
            self.info("running graph cleanup (no shape_prop)")

    def result(self, enabled, skipped, n):
        t = time.time() - self.t0
        if self.fmt == "summary":
            timing = f"{t:.3f}s (pre=0.000s, apply={t:.3f}s, post=0.000s)"
            if not enabled:
                self.info("[SUMMARY] disabled")
            else:
                self.info(f"[SUMMARY] skipped | time: {timing}" if skipped else f"[SUMMARY] matches={n} | time: {timing}")
            return
        outcome = "skipped=True" if skipped else f"num_matches={n}"
        self.info(f"enabled={enabled}, {outcome}, is_clean={skipped or n == 0}, has_valid_shapes=False")
        self.info(f"elapsed time: total={t:.3f}s, pre_cleanup=0.000s, apply={t:.3f}s, post_cleanup=0.000s")


def _run_one(name, conf, args, fault, fmt):
    """Log one transform; (the planted fault lands here, the transform ran and matched)."""
    log = _Log(name, conf["stage"], fmt)
    if not conf.get("enabled", True):
        log.result(False, True, 0)
        return False, False
    if fmt == "summary":
        log.cleanup("pre")
        log.message("applying transform...")
    skipped, n, msgs = _outcome(name, conf, args.world_size)
    if fault and fault.get("kind") == "raise" and fault.get("transform") == name:
        if not conf.get("skip_on_error"):
            raise RuntimeError(f"fake transform {name} failed")
        log.message(f"Transform {name} failed: fake failure", warning=True)
        skipped, n, msgs = True, 0, []
    for m in msgs:
        log.message(m)
    if fmt == "summary":
        log.cleanup("post")
    elif not skipped:
        log.cleanup("post")
    log.result(True, skipped, n)
    applied = n > 0 and not skipped
    if not fault or fault.get("kind") == "raise":
        return False, applied
    if fault.get("attn_backend"):
        return name == "insert_cached_attention" and conf.get("backend") == fault["attn_backend"], applied
    return fault.get("transform") == name and applied, applied


def run_optimizer(args):
    """Run the transforms in stage order; return the fault spec if it landed."""
    from ..._fake import fault_spec, log_format
    from .compile import CompileBackendRegistry
    from .custom_ops import AttentionRegistry

    fault, fmt = fault_spec(), log_format()
    ad_logger.set_rank(0)  # AD's worker sets its rank on the logger
    items = list(args.transforms.items())
    for name, conf in items:
        if "stage" not in conf or conf["stage"] not in STAGES:
            raise ValueError(f"transform {name}: invalid or missing stage {conf.get('stage')!r}")
    items.sort(key=lambda kv: STAGES.index(kv[1]["stage"]))
    known = set(_registry_names())
    dumps = _Dumps(os.environ.get("AD_DUMP_GRAPHS_DIR"))
    planted = None
    for name, conf in items:
        if name not in known:
            raise KeyError(name)
        if conf.get("enabled", True) and name == "compile_model":
            CompileBackendRegistry.get(conf.get("backend"))
        if conf.get("enabled", True) and name == "insert_cached_attention":
            AttentionRegistry.get(conf.get("backend"))
        landed, applied = _run_one(name, conf, args, fault, fmt)
        if landed:
            planted = fault
        dumps.after(name, conf, applied, args.world_size)
    return planted


class _Dumps:
    """Like utils/graph_writer.py@3286e126: on the first dump the directory is deleted and recreated; then one
    ``NNN_<stage>_<transform>.txt`` per transform, enabled or not, once the model is a graph (from export on),
    holding the graph after that transform in GraphWriter's SSA text (tensorrt_llm/_fake/graph.py)."""

    def __init__(self, path):
        self.path = path
        self.count = 0
        self.graph = None

    def after(self, name, conf, applied, world_size):
        stage = conf["stage"]
        if not self.path:
            return
        if self.graph is None and stage != "factory":
            from ..._fake.graph import FakeGraph

            self.graph = FakeGraph()
        if self.graph is None:
            return
        if applied:
            self.graph.apply(name, conf, world_size)
        if self.count == 0:
            shutil.rmtree(self.path, ignore_errors=True)
            os.makedirs(self.path)
            ad_logger.info(f"Graph dumping enabled to: {self.path}")
        self.count += 1
        with open(os.path.join(self.path, f"{self.count:03d}_{stage}_{name}.txt"), "w") as f:
            f.write(self.graph.render(name, stage))


def _registry_names():
    import yaml
    from pathlib import Path

    default = Path(__file__).resolve().parent / "config" / "default.yaml"
    return list((yaml.safe_load(default.read_text()) or {}).get("transforms", {}))


class LLM(_TorchLLM):
    """LLM class for running an LLM model using the (fake) AutoDeploy backend."""

    args_cls = LlmArgs

    def __init__(self, *args, **kwargs):
        kwargs["backend"] = "_autodeploy"
        super().__init__(*args, **kwargs)

    def _make_args(self, **kwargs):
        return LlmArgs.from_kwargs(**kwargs)

    def _fault(self):
        return run_optimizer(self.args)
