"""A small, realistic training folder for a first look: the TensorFlow guide's MLP (Dense 128 relu
on 784 inputs, Dense 10, Adam) trained a few epochs on synthetic digits-like data, saved with
CheckpointManager(max_to_keep=5) every epoch and Keras ModelCheckpoint files beside it."""
from __future__ import annotations

import os
from collections.abc import Callable

DONE_MARKER = ".ckpt_gui_demo_complete"
EPOCHS = 8


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ckpt_gui", "demo")


def make_demo(directory: str | None = None,
              progress: Callable[[int, int, str], None] | None = None,
              epochs: int = EPOCHS) -> str:
    """Create (once) and return the demo directory."""
    directory = directory or cache_dir()
    if os.path.exists(os.path.join(directory, DONE_MARKER)):
        return directory
    os.makedirs(directory, exist_ok=True)
    report = progress or (lambda *a: None)
    report(0, epochs + 1, "Loading TensorFlow…")
    from .core.tfrt import tf as get_tf

    tf = get_tf()
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(784, 10)).astype("float32")
    x = rng.random((2048, 784), dtype=np.float32)
    y = np.argmax(x @ teacher + rng.normal(scale=2.0, size=(2048, 10)), axis=1)

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(10)])
    optimizer = keras.optimizers.Adam(1e-3)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    ckpt = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64), optimizer=optimizer,
                               model=model)
    manager = tf.train.CheckpointManager(ckpt, directory, max_to_keep=5)
    callbacks = [
        keras.callbacks.ModelCheckpoint(os.path.join(directory, "weights.{epoch:02d}.weights.h5"),
                                        save_weights_only=True),
        keras.callbacks.ModelCheckpoint(os.path.join(directory, "best.keras"),
                                        monitor="loss", save_best_only=True),
    ]
    for epoch in range(1, epochs + 1):
        report(epoch, epochs + 1, f"Training the demo MLP: epoch {epoch} of {epochs}")
        model.fit(x, y, batch_size=64, epochs=epoch, initial_epoch=epoch - 1, verbose=0,
                  callbacks=callbacks)
        ckpt.step.assign(int(optimizer.iterations.numpy()))
        manager.save(checkpoint_number=epoch)
    with open(os.path.join(directory, DONE_MARKER), "w") as f:
        f.write("ok\n")
    report(epochs + 1, epochs + 1, "Demo folder ready")
    return directory
