from ..compiler import CompileBackendRegistry, CompilerBackend


@CompileBackendRegistry.register("torch-cudagraph")
class TorchCudagraphCompiler(CompilerBackend):
    pass
