from . import torch_simple, torch_compile, torch_cudagraph, torch_opt  # noqa: F401
