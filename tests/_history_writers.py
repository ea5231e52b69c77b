"""A small Keras training run written with the real writers, for the history and health tests:
after each epoch a ``tf.train.CheckpointManager`` save (``ckpt-N``) and Keras' ModelCheckpoint
(``weights.NN.weights.h5``), optionally with saved values hurt on purpose."""
from __future__ import annotations

import numpy as np

EPOCHS = 3
BATCHES = 2  # optimizer steps per epoch: checkpoint N is at training step 2N


def write_run(tf, folder, hurt: dict | None = None) -> None:
    """Train net (Dense hidden 4->8, Dense frozen 8->8 not trainable, Dense out 8->1) for
    EPOCHS epochs. ``hurt``: {epoch: {layer: fn(kernel) -> kernel}}: the saved kernel of that
    epoch is ``fn(kernel)``; training goes on from the unhurt values."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="hidden"),
                              keras.layers.Dense(8, name="frozen", trainable=False),
                              keras.layers.Dense(1, name="out")], name="net")
    model.compile(optimizer="adam", loss="mse")
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model, optimizer=model.optimizer), str(folder), EPOCHS)
    hurt = hurt or {}
    kept = {}

    class Hurt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            for layer, fn in hurt.get(epoch + 1, {}).items():
                kernel = model.get_layer(layer).kernel
                kept[layer] = kernel.numpy()
                kernel.assign(fn(kernel.numpy()))

    class Save(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            manager.save(checkpoint_number=epoch + 1)

    class Heal(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            for layer, value in kept.items():
                model.get_layer(layer).kernel.assign(value)
            kept.clear()

    rng = np.random.default_rng(0)
    x, y = rng.random((8 * BATCHES, 4)), rng.random((8 * BATCHES, 1))
    checkpoint = keras.callbacks.ModelCheckpoint(str(folder / "weights.{epoch:02d}.weights.h5"),
                                                 save_weights_only=True)
    model.fit(x, y, batch_size=8, epochs=EPOCHS, verbose=0,
              callbacks=[Hurt(), checkpoint, Save(), Heal()])


def check_one_model(scan) -> None:
    """What the history reads from the scan, as the scan itself gives it: each writer's
    checkpoints one run (``ckpt-{N}``, ``weights.{N}.weights.h5``), and the weights named alike
    in both formats (``hidden/kernel``)."""
    for c in scan.checkpoints:
        assert c.run == ("ckpt-{N}" if c.name.startswith("ckpt-") else
                         "weights.{N}.weights.h5"), (c.name, c.run)
        weights = {v.identity for v in c.variables if v.role in ("weight", "bias")}
        assert {"hidden/kernel", "hidden/bias", "out/kernel", "frozen/kernel"} <= weights, \
            (c.name, weights)
