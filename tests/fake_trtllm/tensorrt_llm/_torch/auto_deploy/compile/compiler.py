"""Fake of auto_deploy/compile/compiler.py: the compile backend registry."""


class CompileBackendRegistry:
    _registry = {}

    @classmethod
    def register(cls, name):
        def inner(backend_cls):
            cls._registry[name] = backend_cls
            return backend_cls

        return inner

    @classmethod
    def get(cls, name):
        return cls._registry[name]

    @classmethod
    def has(cls, name):
        return name in cls._registry


class CompilerBackend:
    def __init__(self, model, **kwargs):
        self.model = model

    def compile(self):
        return self.model
