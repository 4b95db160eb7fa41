"""``hf``: the Hugging Face transformers reference backend on CPU (``backend``) and the batched
greedy generation with log-probabilities shared by the CPU backends (``generate``)."""
