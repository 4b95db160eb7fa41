"""AD-style YAML configs: loading, the knob catalogue from a default.yaml, and pure operations."""
from harness.config.io import load_yaml, dump_yaml  # noqa: F401
from harness.config.catalogue import Catalogue, Knob  # noqa: F401
from harness.config.ops import (  # noqa: F401
    deep_merge, resolve, config_hash, config_diff, set_enabled, strip_config, knobs_of, apply_knobs,
    validate_transform_names,
)
