"""Fake of auto_deploy/utils/_config.py: the yaml_default / yaml_extra fields and the YAML layering.

Layering as the real DynamicYamlMixInForSettings does it: the mode's default yaml (or yaml_default),
then every yaml_extra file deep-merged in order (later wins); keyword arguments win over all YAML.
(The real class is a pydantic-settings source with an env layer between; the harness scrubs it.)
"""
import copy
from pathlib import Path
from typing import List

import yaml
from pydantic import BaseModel, ConfigDict, Field


def deep_merge_dicts(*confs):
    out = {}
    for conf in confs:
        out = _merge(out, conf or {})
    return out


def _merge(base, over):
    res = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(res.get(k), dict):
            res[k] = _merge(res[k], v)
        else:
            res[k] = copy.deepcopy(v)
    return res


class DynamicYamlMixInForSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    yaml_default: str = Field(default="", description="The default yaml file to load (expert use).")
    yaml_extra: List[str] = Field(default_factory=list, description="Additional yaml files, later wins.")

    @classmethod
    def _get_yaml_default_from_mode(cls, mode):
        return None

    @classmethod
    def from_kwargs(cls, **kwargs):
        if kwargs.get("mode") and kwargs.get("yaml_default"):
            raise ValueError("Cannot provide both 'mode' and 'yaml_default' simultaneously.")
        default = None
        if kwargs.get("mode"):
            default = cls._get_yaml_default_from_mode(kwargs["mode"])
        if not default and kwargs.get("yaml_default"):
            default = kwargs["yaml_default"]
        if not default and "mode" in cls.model_fields:
            default = cls._get_yaml_default_from_mode(cls.model_fields["mode"].get_default())
        files = ([default] if default else []) + [str(f) for f in kwargs.get("yaml_extra") or []]
        confs = []
        for f in files:
            p = Path(f).expanduser()
            if not p.is_file():
                raise ValueError(f"File {f} does not exist")
            confs.append(yaml.safe_load(p.read_text()) or {})
        data = deep_merge_dicts(*confs, kwargs)
        return cls(**data)
