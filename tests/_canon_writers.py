"""Writes one trained Keras model in every checkpoint format, with the real writers, in a
subprocess of tests/test_canonical.py (TensorFlow is heavy; a test process should not hold it).

usage: python _canon_writers.py MODEL OUT    MODEL: "tiny" (Dense, BatchNormalization, Dense)
                                             or "nested" (Conv2D, Embedding, LSTM and a nested
                                             Sequential "encoder"); OUT/<format>/... one folder
                                             per writer, OUT/tf1 a TF1 Saver of the same
                                             weights ("tiny" only)
"""
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import numpy as np  # noqa: E402


def tiny():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"),
                              keras.layers.BatchNormalization(name="bn"),
                              keras.layers.Dense(2, name="out")], name="tiny")
    rng = np.random.default_rng(0)
    return model, rng.normal(size=(16, 4)), rng.normal(size=(16, 2))


def nested():
    import keras

    layers = keras.layers
    image, tokens = keras.Input((6, 6, 1), name="image"), keras.Input((5,), name="tokens")
    conv = layers.Flatten()(layers.Conv2D(2, 3, name="conv")(image))
    seq = layers.LSTM(3, name="lstm")(layers.Embedding(10, 4, name="emb")(tokens))
    encoder = keras.Sequential([keras.Input((38,)), layers.Dense(4, name="inner"),
                                layers.LayerNormalization(name="ln")], name="encoder")
    joined = encoder(layers.Concatenate()([conv, seq, layers.Flatten()(image)[:, :3]]))
    model = keras.Model([image, tokens], layers.Dense(2, name="out")(joined), name="net")
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(16, 6, 6, 1)), rng.integers(0, 10, size=(16, 5))]
    return model, x, rng.normal(size=(16, 2))


def write(kind, out):
    import keras
    import tensorflow as tf

    model, x, y = {"tiny": tiny, "nested": nested}[kind]()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    orbax = keras.callbacks.OrbaxCheckpoint(directory=f"{out}/orbax", max_to_keep=None)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[orbax])
    orbax.wait_until_finished()
    tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(f"{out}/tfc/ckpt")
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(optimizer=model.optimizer, model=model), f"{out}/manager", 3)
    manager.save()
    for name, save in (("weights_h5/w.weights.h5", model.save_weights),
                       ("keras/m.keras", model.save),
                       ("legacy_h5/m.h5", model.save)):
        os.makedirs(os.path.dirname(f"{out}/{name}"), exist_ok=True)
        save(f"{out}/{name}")
    model.save(f"{out}/keras_dir/m", zipped=False)
    os.makedirs(f"{out}/sharded", exist_ok=True)
    model.save_weights(f"{out}/sharded/w.weights.json", max_shard_size=0.0002)
    if kind == "tiny":
        write_tf1(model, f"{out}/tf1")


def write_tf1(model, out):
    """A tf.compat.v1 graph with the same layer names, its variables and Adam slots holding the
    Keras model's values, saved by the TF1 Saver (V2 format)."""
    import tensorflow as tf

    v1 = tf.compat.v1
    values = {v.path.split("/", 1)[1]: v.numpy() for v in model.weights}
    flat = {f"{model.name}_{name.replace('/', '_')}": name for name in values}
    slots = {}
    for v in model.optimizer.variables[2:]:   # adam/tiny_hidden_kernel_momentum
        owner, _, slot = v.path.split("/", 1)[1].rpartition("_")
        slots[(flat[owner], slot)] = v.numpy()
    graph = tf.Graph()
    with graph.as_default():
        variables = {name: v1.get_variable(name, initializer=value.astype(np.float32))
                     for name, value in values.items()}
        trainable = [variables[v.path.split("/", 1)[1]] for v in model.trainable_variables]
        loss = tf.add_n([tf.reduce_sum(v) for v in trainable])
        opt = v1.train.AdamOptimizer(1e-2)
        opt.minimize(loss, var_list=trainable)
        assigns = [v1.assign(opt.get_slot(variables[owner], {"momentum": "m", "velocity":
                                                           "v"}[slot]), value)
                   for (owner, slot), value in slots.items()]
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(assigns)
            v1.train.Saver().save(sess, f"{out}/model.ckpt")


if __name__ == "__main__":
    write(sys.argv[1], os.path.abspath(sys.argv[2]))
