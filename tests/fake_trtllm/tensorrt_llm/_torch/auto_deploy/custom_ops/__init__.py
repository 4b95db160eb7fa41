"""Fake of the AD attention registry (custom_ops/attention_interface.py AttentionRegistry)."""


class AttentionRegistry:
    _registry = {}

    @classmethod
    def register(cls, name):
        def inner(desc):
            cls._registry[name] = desc
            return desc

        return inner

    @classmethod
    def get(cls, name):
        return cls._registry[name]


from . import attention_backends  # noqa: E402,F401
