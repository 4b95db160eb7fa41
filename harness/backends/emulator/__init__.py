"""``ad-emulator``: a CPU stand-in for TensorRT-LLM AutoDeploy with plantable faults.

A Hugging Face Llama is loaded on CPU (float32) and rewritten in place by a pipeline of named
transforms configured with AD's YAML schema (``configs/emulator/default.yaml``). Any transform can
carry ``fault: NAME`` (see ``faults.py`` and ``configs/emulator/FAULTS.md``); plugin files add
transforms of their own (``plugins.py``). Every config also carries ``engine_noise`` (``noise.py``):
the small, unbiased, per-input-deterministic numeric differences a real engine pair has. Modules:

* ``backend``    -- ``EmulatorBackend`` / engine: config resolution, validation, load, generate.
* ``pipeline``   -- catalogue + plugins -> ordered plan -> per-transform application records.
* ``transforms`` -- the transform table (name -> function) over the family modules below.
* ``modules``    -- the emulated nn.Modules (attention, MLP, decoder layer, norms, RoPE cache).
* ``quant``      -- FP8 fake-quant and "kernel" linears and their transforms.
* ``sharding``   -- in-process tensor parallelism with an explicit all-reduce.
* ``compile``    -- compile backends (torch-simple / torch-compile / torch-cudagraph / torch-opt).
* ``faults``     -- the fault registry: name, host transforms, symptom, docs/method.md phase.
* ``noise``      -- ``engine_noise``: cross-engine numeric noise settings, validation, kernel signature.
* ``noise_hooks``-- where the noise enters (decoder layers, LM head) and its per-input hash.
* ``plugins``    -- ``--plugin file.py`` loading.

Importing this package is light; torch is imported by the submodules that need it.
"""
