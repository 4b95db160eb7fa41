"""Fake of tensorrt_llm/llmapi/llm.py: BaseLLM / _TorchLLM / LLM and RequestOutput.

Same call shapes as the real one: keyword arguments checked against ``args_cls.model_fields``
("got invalid argument"), ``generate`` / ``generate_async(...).result()``, ``_prepare_sampling_params``
calling ``SamplingParams._setup`` only when ``end_id is None``, context manager + ``shutdown()``.
Requests submitted with ``generate_async`` are queued and run together on the first ``.result()``
(one batched pass, like in-flight batching).
"""
from ..sampling_params import SamplingParams
from .llm_args import TorchLlmArgs


class RequestOutput:
    def __init__(self, llm, request_id, prompt, sampling_params):
        self._llm = llm
        self.request_id = request_id
        self.prompt = prompt
        self.sampling_params = sampling_params
        self.prompt_token_ids = None
        self.outputs = []
        self._done = False

    @property
    def finished(self) -> bool:
        return self._done

    def result(self, timeout=None):
        if not self._done:
            self._llm._run_pending()
        return self


class BaseLLM:
    args_cls = TorchLlmArgs

    def __init__(self, model, tokenizer=None, skip_tokenizer_init=False, trust_remote_code=False,
                 tensor_parallel_size=1, dtype="auto", **kwargs):
        valid = set(self._args_fields()) | {"backend"}
        for key in kwargs:
            if key not in valid:
                raise ValueError(f"{self.__class__.__name__} got invalid argument: {key}")
        self.args = self._make_args(model=str(model), tokenizer=tokenizer, skip_tokenizer_init=skip_tokenizer_init,
                                    trust_remote_code=trust_remote_code, tensor_parallel_size=tensor_parallel_size,
                                    dtype=dtype, **kwargs)
        self._pending = []
        self._next_id = 0
        self._shutdown = False
        self._engine = None
        self._build_model()

    # -- construction ----------------------------------------------------------------------
    def _args_fields(self):
        return list(self.args_cls.model_fields)

    def _make_args(self, **kwargs):
        kwargs = {k: v for k, v in kwargs.items() if k in self.args_cls.model_fields}
        return self.args_cls(**kwargs)

    def _fault(self):
        return None

    def _build_model(self):
        from .._fake.engine import FakeEngine

        self._engine = FakeEngine(self.args.model, corruption=self._fault())

    @property
    def tokenizer(self):
        return self._engine.tokenizer if self._engine is not None else None

    # -- generation ------------------------------------------------------------------------
    def _prepare_sampling_params(self, sampling_params):
        if sampling_params is None:
            sampling_params = SamplingParams()
        if not isinstance(sampling_params, SamplingParams):
            raise TypeError(f"The sampling_params must be type SamplingParams or None, got {type(sampling_params)}")
        if sampling_params.end_id is None:
            sampling_params._setup(self.tokenizer)
        sampling_params._get_stop_words()  # raises when stop strings were never tokenized (real behaviour)
        return sampling_params

    def generate_async(self, inputs, sampling_params=None, lora_request=None, prompt_adapter_request=None,
                       streaming=False, **kwargs):
        if self._shutdown or self._engine is None:
            raise RuntimeError("LLM is shutting down")
        sp = self._prepare_sampling_params(sampling_params)
        out = RequestOutput(self, self._next_id, inputs, sp)
        self._next_id += 1
        self._pending.append(out)
        return out

    def generate(self, inputs, sampling_params=None, use_tqdm=True, **kwargs):
        unbatched = isinstance(inputs, str)
        items = [inputs] if unbatched else list(inputs)
        futures = [self.generate_async(p, sampling_params=sampling_params) for p in items]
        for f in futures:
            f.result()
        return futures[0] if unbatched else futures

    def _run_pending(self):
        pending, self._pending = self._pending, []
        groups = {}
        for r in pending:
            groups.setdefault(id(r.sampling_params), []).append(r)
        for reqs in groups.values():
            self._engine.run(reqs)

    # -- lifetime --------------------------------------------------------------------------
    def shutdown(self):
        self._shutdown = True
        self._engine = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.shutdown()
        return False


class _TorchLLM(BaseLLM):
    pass


class LLM(_TorchLLM):
    """The PyTorch backend (default in 1.x)."""
