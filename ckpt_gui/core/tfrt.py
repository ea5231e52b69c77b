"""TensorFlow, imported once and only when something needs it (it takes seconds)."""
from __future__ import annotations

import contextlib
import os
import threading

_lock = threading.Lock()
_tf = None


def tf():
    """The tensorflow module, imported on first use (quietly, CPU only is fine)."""
    global _tf
    if _tf is None:
        with _lock:
            if _tf is None:
                os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
                # Reading checkpoints needs no GPU; without this TF logs a cuInit failure
                # on machines without CUDA. Users who want a GPU set the variable themselves.
                os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
                with _quiet_stderr():
                    import tensorflow

                _tf = tensorflow
    return _tf


@contextlib.contextmanager
def _quiet_stderr():
    """TensorFlow's C++ start-up prints CUDA notes to fd 2 before any log level applies."""
    if os.environ.get("CKPT_GUI_TF_VERBOSE"):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def is_loaded() -> bool:
    return _tf is not None
