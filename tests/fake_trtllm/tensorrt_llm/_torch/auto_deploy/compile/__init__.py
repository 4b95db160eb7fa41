from .compiler import CompileBackendRegistry, CompilerBackend  # noqa: F401
from . import backends  # noqa: F401  (registers the backends)
