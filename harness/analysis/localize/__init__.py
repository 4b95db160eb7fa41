"""Phase 4, automated: localize the first divergence inside the culprit (docs/method.md, "Phase 4").

* ``layerwise``: the per-module comparison of a candidate with the reference on the same prompt tokens,
  at module boundaries (``Backend.activations``): *propagated* (both end to end) and *isolated* (the
  candidate's module fed the reference's inputs for it), with ``metrics`` per module;
* ``band``: the noise band measured on a reference-like configuration (the control) and the first
  module whose error leaves it: the first divergence;
* ``weights``: Phase 4a step 2 on a quantized model, each linear layer's weight as the kernel path
  dequantizes it against the reference's;
* ``graph_diff``: real AutoDeploy's graph dumps (``AD_DUMP_GRAPHS_DIR``) before and after the culprit
  transform, the nodes and ops it rewrote;
* ``plot``: the per-module divergence plot; ``job``: one localization request end to end (what
  ``python -m harness localize`` and bisect's step run); ``worker``: that job in its own process.
"""
