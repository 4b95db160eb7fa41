"""TensorRT-LLM adapters: ``pt`` (the PyTorch backend, the reference), ``ad`` (AutoDeploy, the
candidate), ``common`` (engine construction, sampling, log-probabilities), ``logs`` (AD's
per-transform log lines), ``version`` (field renames across TensorRT-LLM versions)."""
