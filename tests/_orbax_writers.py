"""Writes Orbax checkpoints with the real writers, in a subprocess of the tests (TF and jax are
heavy, and a test process should not hold both).

usage: python _orbax_writers.py keras OUT       keras.callbacks.OrbaxCheckpoint on the TF backend:
                                                OUT/full (3 epochs, Adam, model + optimizer +
                                                metrics + model_config) and OUT/weights_only (2
                                                epochs, save_weights_only=True); OUT/<name>.npz
                                                the model's variables after fit, by tree path
       python _orbax_writers.py manager OUT N   orbax.checkpoint.CheckpointManager with numpy
                                                arrays (bfloat16, float8, int4 ...), steps
                                                0, 10, ..., 10*(N-1)
"""
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import numpy as np  # noqa: E402


def tiny_model():
    import keras

    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8, activation="relu", name="hidden"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Dense(3, name="logits"),
    ], name="tiny")
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def keras_variables(model, weights_only):
    """{tree path: value} as OrbaxCheckpoint names them (variable.path under its group)."""
    groups = {"trainable_variables": model.trainable_variables,
              "non_trainable_variables": model.non_trainable_variables}
    if not weights_only:
        groups |= {"optimizer_variables": model.optimizer.variables,
                   "metrics_variables": model.metrics_variables}
    return {f"{group}/{v.path}": np.asarray(v.numpy())
            for group, variables in groups.items() for v in variables}


def write_keras(out):
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 3, size=(64,))
    for name, epochs, weights_only in (("full", 3, False), ("weights_only", 2, True)):
        model = tiny_model()
        callback = keras.callbacks.OrbaxCheckpoint(
            directory=os.path.join(out, name), save_weights_only=weights_only, max_to_keep=None)
        model.fit(x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=[callback])
        callback.wait_until_finished()
        np.savez(os.path.join(out, f"{name}.npz"), **keras_variables(model, weights_only))


def manager_state(step):
    import ml_dtypes

    rng = np.random.default_rng(step)
    return {
        "params": {"dense": {"kernel": rng.normal(size=(4, 8)).astype(np.float32),
                             "bias": np.zeros(8, np.float32)},
                   "bf16": rng.normal(size=(3, 5)).astype(ml_dtypes.bfloat16),
                   "f8": rng.normal(size=(2, 3)).astype(ml_dtypes.float8_e4m3fn),
                   "i4": np.arange(-8, 8).astype(ml_dtypes.int4).reshape(4, 4)},
        "big": rng.normal(size=(256, 64)).astype(np.float32),
        "step": np.asarray(step, np.int64),
    }


def write_manager(out, n):
    import orbax.checkpoint as ocp

    mgr = ocp.CheckpointManager(out, options=ocp.CheckpointManagerOptions(max_to_keep=None),
                                item_names=("state",))
    for i in range(n):
        state = manager_state(10 * i)
        mgr.save(10 * i, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
    mgr.wait_until_finished()
    mgr.close()


if __name__ == "__main__":
    if sys.argv[1] == "keras":
        write_keras(os.path.abspath(sys.argv[2]))
    else:
        write_manager(os.path.abspath(sys.argv[2]), int(sys.argv[3]))
