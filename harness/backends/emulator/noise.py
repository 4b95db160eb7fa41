"""Cross-engine numeric noise, the configuration side: the ad-emulator's stand-in for the kernel-level
differences every real AutoDeploy / PyTorch-backend pair has (attention kernels, GEMM accumulation
order, fused ops), which move every logit a little, unbiased, in every config including the minimal one.

The emulator-only top-level key (``configs/emulator/default.yaml``), like ``fault:`` / ``plugins:``::

    engine_noise: {strength: 1.0, shared: 0.8, seed: 0}

* ``strength``: a multiple of the calibrated realistic profile below (a number in [0, 10], or a level
  name: off 0, realistic 1, heavy 2.5). 0 / off installs nothing: bit-identical to ``--backend hf``,
  as is a config whose default.yaml has no ``engine_noise`` key.
* ``shared``: the share of the noise variance common to every config (``z_engine``: input and seed
  only); the rest (``z_config``) also depends on ``kernel_signature`` (the enabled transforms,
  compile_backend, attn_backend, world_size; not the noise settings): ``z = sqrt(shared) * z_engine
  + sqrt(1 - shared) * z_config``. Two configs differ from hf and, less, from each other.
* ``seed``: another draw of the same noise.

It is part of every emulator config and of its resolved form (so of the evaluation cache key), never
a fault and never a bisect knob: ``harness.config.ops.knobs_of`` switches only transforms,
``compile_backend`` and ``world_size``, and ``strip_config`` / ``apply_knobs`` merge onto the user
config, so the minimal config keeps it (tests/test_emulator_noise.py).

The profile at strength 1 (where it enters and how it is drawn: noise_hooks.py):

* ``BAND``: a relative Gaussian error on every decoder layer's output (the residual stream), every
  token: ``h + BAND * rms(h) * z``. It propagates through later layers and attention as a real
  engine's differences do, and gives a layer-wise comparison a noise band at every module.
* ``TAIL``: on a pseudo-random ``TAIL_SHARE`` of positions (chosen by the content), a larger relative
  error on the LM head's input. Real engine pairs differ heavy-tailed per sample (most agree to
  rounding, a few percent move visibly: deep models amplify some differences); the two-layer demo
  model has no depth to amplify anything, and a uniform band that moved 10 % of its answer
  distributions beyond 0.01 nats would flip the near-tied ones (a sixth of the demo data set has a
  top-two letter margin under 0.01 nats) far more often than a real pair does.

Calibrated on the demo model and data set by scripts/calibrate_noise.py (reports/calibrate_noise.json,
configs/emulator/FAULTS.md "Cross-engine noise"): realistic = 9-10 % of samples with answer-letter
KL(hf || emulator) above 0.01 nats and 93-94 % top-1 agreement with hf, clean and minimal configs.

Pure data and validation: no torch import (``build_plan`` validates configs before loading anything).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from harness.errors import HarnessError

# strength levels by name (configs/emulator/FAULTS.md, "Cross-engine noise": measured numbers)
LEVELS = {"off": 0.0, "realistic": 1.0, "heavy": 2.5}
DEFAULTS = {"strength": LEVELS["realistic"], "shared": 0.8, "seed": 0}
MAX_STRENGTH = 10.0
# the realistic profile (strength 1), calibrated on the demo model by scripts/calibrate_noise.py
BAND = 0.002  # relative RMS error added to every decoder layer's output, every token
TAIL_SHARE = 0.2  # share of positions (chosen by the content) whose LM-head input the tail hits
TAIL = 0.6  # relative RMS error of the tail on those positions
TABLE_BITS = 8  # standard-normal quantile table of 2^8 entries (noise_hooks.py)
_FIX = "Set engine_noise: {strength: <0..10 or off|realistic|heavy>, shared: <0..1>, seed: <int >= 0>} (strength 0 turns it off)"


@dataclass(frozen=True)
class NoiseSettings:
    strength: float
    shared: float
    seed: int

    @property
    def enabled(self) -> bool:
        return self.strength > 0.0

    def to_dict(self) -> dict:
        return {"strength": self.strength, "shared": self.shared, "seed": self.seed}


def _number(name: str, value, lo: float, hi: float, allowed: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise HarnessError(f"engine_noise.{name} must be {allowed}, got {value!r}. {_FIX}")
    return float(value)


def _strength(value) -> float:
    if isinstance(value, str):
        if value not in LEVELS:
            raise HarnessError(f"engine_noise.strength {value!r} is not a level; valid: "
                               f"{', '.join(LEVELS)} or a number in [0, {MAX_STRENGTH}]. {_FIX}")
        return LEVELS[value]
    return _number("strength", value, 0.0, MAX_STRENGTH,
                   f"a number in [0, {MAX_STRENGTH}] or one of {', '.join(LEVELS)}")


def parse_noise(value) -> NoiseSettings:
    """The settings of a resolved config's ``engine_noise`` (absent: off). Bad values raise a one-line
    HarnessError naming the value, the allowed values and the fix. Pure: no torch."""
    if value is None:
        return NoiseSettings(0.0, DEFAULTS["shared"], DEFAULTS["seed"])
    if not isinstance(value, dict):
        raise HarnessError(f"engine_noise must be a mapping, got {value!r}. {_FIX}")
    unknown = sorted(set(value) - set(DEFAULTS))
    if unknown:
        raise HarnessError(f"engine_noise has unknown key(s) {', '.join(map(repr, unknown))}; valid: "
                           f"{', '.join(DEFAULTS)}. {_FIX}")
    merged = {**DEFAULTS, **value}
    seed = merged["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 31:
        raise HarnessError(f"engine_noise.seed must be an integer in [0, 2^31), got {seed!r}. {_FIX}")
    return NoiseSettings(_strength(merged["strength"]), _number("shared", merged["shared"], 0.0, 1.0,
                                                                "a number in [0, 1]"), seed)


def kernel_signature(enabled_transforms, compile_backend: str, attn_backend: str, world_size: int) -> int:
    """32-bit signature of a config's kernels (what z_config depends on); not the noise settings."""
    blob = json.dumps({"transforms": sorted(enabled_transforms), "compile_backend": compile_backend,
                       "attn_backend": attn_backend, "world_size": int(world_size)}, sort_keys=True)
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:4], "little")


def profile() -> dict:
    """The realistic profile's constants (strength 1), as reports and docs quote them."""
    return {"band_rel_per_layer": BAND, "tail_share": TAIL_SHARE, "tail_rel": TAIL, "quantile_table_bits": TABLE_BITS}
