"""Two runs on the same prompts -> a verdict: pairing by sample id and prompt hash, the statistical
primitives, log-probability evidence, and the verdict that combines them."""
