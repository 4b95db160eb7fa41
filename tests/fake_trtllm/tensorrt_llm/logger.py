"""Fake of tensorrt_llm/logger.py (newer layout): a python logger named after PREFIX, propagate=False,
a StreamHandler on sys.stdout, messages "[PREFIX] [RANK r] [I] msg"."""
import logging
import os
import sys

_LEVELS = {"internal_error": logging.CRITICAL, "error": logging.ERROR, "warning": logging.WARNING,
           "info": logging.INFO, "verbose": logging.DEBUG, "debug": logging.DEBUG, "trace": logging.DEBUG}


class Singleton(type):
    _instances = {}

    def __call__(cls, *args, **kwargs):
        if cls not in cls._instances:
            cls._instances[cls] = super().__call__(*args, **kwargs)
        return cls._instances[cls]


class Logger(metaclass=Singleton):
    ENV_VARIABLE = "TLLM_LOG_LEVEL"
    PREFIX = "TRT-LLM"
    DEFAULT_LEVEL = "error"
    ERROR, WARNING, INFO, VERBOSE = "[E]", "[W]", "[I]", "[V]"

    def __init__(self):
        level = (os.environ.get(self.ENV_VARIABLE) or self.DEFAULT_LEVEL).lower()
        self.rank = None
        self._logger = logging.getLogger(self.PREFIX)
        self._logger.propagate = False
        handler = logging.StreamHandler(stream=sys.stdout)
        handler.setFormatter(logging.Formatter(fmt="[%(asctime)s] %(message)s", datefmt="%m/%d/%Y-%H:%M:%S"))
        self._logger.addHandler(handler)
        self._logger.setLevel(_LEVELS.get(level, logging.ERROR))

    def set_rank(self, rank):
        self.rank = rank

    def log(self, severity, *msg):
        parts = [f"[{self.PREFIX}]"]
        if self.rank is not None:
            parts.append(f"[RANK {self.rank}]")
        parts.append(severity)
        parts.extend(map(str, msg))
        fn = {self.ERROR: self._logger.error, self.WARNING: self._logger.warning,
              self.INFO: self._logger.info}.get(severity, self._logger.debug)
        fn(" ".join(parts))

    def error(self, *msg):
        self.log(self.ERROR, *msg)

    def warning(self, *msg):
        self.log(self.WARNING, *msg)

    def info(self, *msg):
        self.log(self.INFO, *msg)

    def debug(self, *msg):
        self.log(self.VERBOSE, *msg)


logger = Logger()
