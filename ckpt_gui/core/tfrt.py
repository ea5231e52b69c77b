"""TensorFlow, imported once and only when something needs it (it takes seconds)."""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable

_lock = threading.Lock()
_tf = None
_waiting_listeners: list[Callable[[], None]] = []


def add_waiting_listener(listener: Callable[[], None]) -> None:
    """``listener()`` is called, in the calling thread, whenever a thread needs TensorFlow
    before it is loaded and so waits for the import, its own or another thread's (the GUI says
    so in its status bar)."""
    _waiting_listeners.append(listener)


def tf():
    """The tensorflow module, imported on first use (quietly, CPU only is fine); a thread that
    asks while another imports it waits for that import."""
    global _tf
    if _tf is None:
        for listener in list(_waiting_listeners):
            listener()
        with _lock:
            if _tf is None:
                os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
                # Reading checkpoints needs no GPU; without this TF logs a cuInit failure
                # on machines without CUDA. Users who want a GPU set the variable themselves.
                os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
                with _quiet_stderr(), _keras_writes_nothing():
                    import tensorflow

                    # The eager context starts on first use and logs a cuInit failure on
                    # machines without a GPU ("E0000 ... failed call to cuInit"): start it here.
                    tensorflow.config.list_logical_devices("CPU")
                _tf = tensorflow
    return _tf


@contextlib.contextmanager
def _keras_writes_nothing():
    """``import tensorflow`` imports Keras, which writes ~/.keras/keras.json when it is missing.
    Reading checkpoints must write nothing: point Keras at a folder that cannot exist while it
    starts (it then keeps its defaults, which is what it would have written), then put it back."""
    import sys

    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    if "keras" in sys.modules or os.path.exists(os.path.join(home, "keras.json")):
        yield
        return
    saved = os.environ.get("KERAS_HOME")
    os.environ["KERAS_HOME"] = os.path.join(os.devnull, "keras")
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("KERAS_HOME", None)
        else:
            os.environ["KERAS_HOME"] = saved
        try:  # its download cache (keras.utils.get_file) stays where the user expects it
            from keras.src.backend import config

            config._KERAS_DIR = saved or os.path.join(os.path.expanduser("~"), ".keras")
        except Exception:
            pass


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
