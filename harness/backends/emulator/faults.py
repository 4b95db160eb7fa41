"""The registry of faults the emulator can plant: ``transforms: {<host>: {fault: <name>}}``.

A fault is a realistic bug *inside* one transform: the host transform applies a buggy variant of
its rewrite, so disabling the host removes the bug (as in real life). Each entry names the
transforms that can host it, the symptom it produces (what ``diagnose``/``classify`` should see),
the phase of docs/method.md whose procedure finds it, the condition under which it shows, and what
``fault_strength`` means where the fault has a graded severity. ``configs/emulator/FAULTS.md`` is
the same table for humans, with measured accuracies on the demo model.

Pure data; no torch import.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.errors import HarnessError, one_of


@dataclass(frozen=True)
class Fault:
    name: str
    hosts: tuple[str, ...]
    family: str  # quant | attention | rope | sharding | cache | numerics | compile | interaction
    symptom: str
    phase: str  # the docs/method.md phase / table that finds it
    condition: str = "always (when the host transform is enabled and matches)"
    strength: str | None = None  # meaning of fault_strength, with its default, or None

    def to_dict(self) -> dict:
        return {"name": self.name, "hosts": list(self.hosts), "family": self.family, "symptom": self.symptom,
                "phase": self.phase, "condition": self.condition, "strength": self.strength}


FP8_HOSTS = ("quantize_fp8_linear_from_config", "fuse_fp8_linear")
FP8_COND = "only on a checkpoint that declares FP8 (hf_quant_config.json quant_algo FP8, e.g. demo_model_fp8)"

_FAULTS = [
    Fault("missing_dequant_scale", FP8_HOSTS, "quant",
          "FP8 weights used without their per-tensor scale: logits far out of range, accuracy at or "
          "below chance (coherent letters, systematically wrong)",
          "4a Step 2: missing scale during dequantization", FP8_COND),
    Fault("inverted_scale", FP8_HOSTS, "quant",
          "FP8 dequantization divides by the scale instead of multiplying (x 1/s^2): accuracy near "
          "chance, plausible tokens but systematically wrong",
          "4a Step 2: inverted scale", FP8_COND),
    Fault("wrong_block_scale", FP8_HOSTS, "quant",
          "block-wise weight scales taken from the neighbouring block: some blocks saturate at +-448, "
          "others lose precision; major but not catastrophic drop (about 5-20 points)",
          "4a Step 2: incorrect block-scale computation", FP8_COND,
          "block size: elements per side of a square weight block (default 10, about -8 points on the demo; 6 about -13, 4 about -18; not monotone: 12 and 24 are mild)"),
    Fault("to_instead_of_view", ("fuse_fp8_linear",), "quant",
          "the kernel path converts the packed uint8 weight bytes with .to(float8) instead of "
          "reinterpreting them with .view(float8): garbage weights, no error, accuracy near chance",
          "4a Step 2: .to(dtype) used instead of .view(dtype)", FP8_COND),
    Fault("wrong_softmax_scale",
          ("match_attention_layout", "match_sdpa_to_torch_attention", "insert_cached_attention"),
          "attention", "attention softmax scale 1/head_dim instead of 1/sqrt(head_dim): coherent but "
          "wrong answers on the hard subjects, a mid-size drop (about 5-10 points on the demo)",
          "2: correct on easy subjects, wrong on hard ones; 4b: hardcoded kernel-wrapper constant",
          strength="exponent p of the scale head_dim**-p (default 1.0; 0.5 is correct)"),
    Fault("rope_applied_twice", ("optimize_rope", "match_rope_pattern"), "rope",
          "the optimized RoPE op is inserted but the original rotation stays in the graph, so q/k are "
          "rotated twice: accuracy near chance, gibberish-level answers",
          "2: transformation applied twice (anti-pattern: same load hook twice)"),
    Fault("double_allreduce", ("sharding_transform_executor", "fuse_allreduce_residual_rmsnorm"), "sharding",
          "the row-parallel output is all-reduced twice, multiplying it by world_size: correct at "
          "world_size 1, near chance at world_size > 1",
          "4c: double all_reduce", "only at world_size > 1"),
    Fault("shard_gate_projection", ("detect_sharding",), "sharding",
          "detect_sharding shards the MLP gate projection along its input dimension (tp_mode rowwise "
          "instead of colwise), so every rank applies SiLU to a partial sum: wrong answers at "
          "world_size > 1 only",
          "4c: sharding a projection that must not be sharded (check tp_mode)", "only at world_size > 1"),
    Fault("head_reshape_stride", ("sharding_transform_executor",), "sharding",
          "after the TP split the per-rank head reshape uses the wrong stride (head and head_dim axes "
          "swapped): attention output garbage at world_size > 1 (ranks holding > 1 head), correct at 1",
          "4c: head reshape with wrong stride after TP", "only at world_size > 1"),
    Fault("kv_cache_garbage", ("initialize_cache", "insert_cached_attention", "resize_kv_cache"), "cache",
          "the V cache is read back as saturated garbage (an uninitialised / overflowed cache): the "
          "model emits a special token (end-of-sequence) first, so outputs decode to empty strings",
          "2: outputs empty string or EOS immediately (KV cache garbage)"),
    Fault("attention_kernel_bug", ("insert_cached_attention",), "attention",
          "the attention kernel of one backend (fault_backend, default the backend in use) uses the "
          "softmax scale 1/head_dim instead of 1/sqrt(head_dim): coherent but wrong answers that survive "
          "the minimal config (insert_cached_attention is kept), gone with another attn_backend",
          "3: the minimal config still regresses (core path); the core-path ladder recovers with another "
          "attention backend",
          "only while attn_backend is the faulty backend",
          "exponent p of the scale head_dim**-p inside that kernel (default 1.0; 0.5 is correct)"),
    Fault("nan_on_prefill", ("match_repeat_kv", "match_grouped_attention", "match_sdpa_to_torch_attention"), "numerics",
          "the rewritten attention reads an uninitialised key slot holding NaN on prefill (a node "
          "without shape metadata): NaN logits, non-finite log-probabilities on every sample",
          "2: NaN in logits, especially on prefill"),
    Fault("hardcoded_eps", ("fuse_rmsnorm",), "numerics",
          "the fused RMSNorm kernel wrapper uses its own epsilon instead of config.rms_norm_eps: "
          "coherent answers, easy subjects start to fail; graded from KL-only to catastrophic",
          "5: easy subjects correct, hard ones wrong / uniform loss; 4b: config value hardcoded",
          strength="epsilon the kernel uses (default 0.05: about -6 points on the demo; 0.03 KL-only, "
                   "0.1 about -13, 0.2 about -30)"),
    Fault("low_precision_rope", ("optimize_rope",), "numerics",
          "the optimized RoPE cache is built from positions held in a narrow float (bf16 keeps 7 mantissa "
          "bits: positions above 256 round to even numbers): relative positions blur late in long prompts; "
          "the subtle precision loss of about 3 accuracy points at the default",
          "5: a few points below, uniform / prompt-length correlated; 2: easy subjects right, hard wrong",
          strength="mantissa bits of the position, fractional allowed (default 6.5: about -3 points on the "
                   "demo; 7 KL-only, 6.7 about -1.5, 6.3 about -8, 5 about -22, 3 chance; >= 8 exact "
                   "for prompts under 512 tokens)"),
    Fault("low_precision_norm", ("fuse_rmsnorm",), "numerics",
          "the fused RMSNorm kernel writes its output with too few mantissa bits: element-wise rounding "
          "noise that moves log-probabilities and flips near-tie answers but leaves accuracy unchanged "
          "(visible to paired KL / flip tests, not to accuracy)",
          "5: no accuracy gap, only logit-level drift (bf16-like noise, larger)",
          strength="mantissa bits kept, may be fractional (default 2.0; bf16 keeps 7, fp8 e4m3 3)"),
    Fault("lowprecision_allreduce", ("fuse_allreduce_residual_rmsnorm",), "sharding",
          "the fused all-reduce reduces in bfloat16 (one-shot kernel / LOWPRECISION strategy): a small "
          "drift of log-probabilities, few or no flipped answers, only at world_size > 1",
          "4c: wrong allreduce strategy (numerically different tactic)", "only at world_size > 1"),
    Fault("compiled_lowering_bug", ("fuse_silu_mul",), "compile",
          "the fused SiLU*mul op's compiled lowering reads the gate/up halves in the wrong order; eager "
          "(torch-simple) is correct, any compiled backend (torch-compile, torch-cudagraph, torch-opt) "
          "is wrong",
          "3: accuracy recovers with compile_backend torch-simple",
          "only with compile_backend other than torch-simple"),
    Fault("norm_weight_applied_twice", ("fuse_add_rms_norm",), "interaction",
          "fuse_add_rms_norm, when the norm it fuses is already the fused flashinfer op from "
          "fuse_rmsnorm, appends the norm-weight multiply again (weight applied twice): correct "
          "alone, wrong together with fuse_rmsnorm",
          "3/6: the drop needs both transforms enabled (interaction)",
          "only when fuse_rmsnorm is also enabled",
          "extra applications k of the weight, i.e. weight**(1+k) (default 1: applied twice)"),
]

FAULTS: dict[str, Fault] = {f.name: f for f in _FAULTS}


def fault_names() -> list[str]:
    return list(FAULTS)


def check_fault(transform: str, fault) -> Fault:
    """The Fault for ``fault`` planted in ``transform``, or a HarnessError listing what is valid."""
    if not isinstance(fault, str) or fault not in FAULTS:
        raise one_of("fault", fault, fault_names(),
                     f"Fix transforms.{transform}.fault (see configs/emulator/FAULTS.md).")
    f = FAULTS[fault]
    if transform not in f.hosts:
        raise HarnessError(
            f"fault {fault!r} cannot be planted in transform {transform!r}; it lives in: "
            f"{', '.join(f.hosts)}. Move it to one of those transforms (see configs/emulator/FAULTS.md).")
    return f
