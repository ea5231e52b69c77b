"""Checkpoints written here with the real APIs the TensorFlow guide (and the article our users copy)
teaches, then scanned: what the engine lists and reads must equal what TensorFlow/Keras read."""
from __future__ import annotations

import os
import re
import zipfile

import h5py
import numpy as np
import pytest

from ckpt_gui import cli
from ckpt_gui.core import bundle, scan_directory
from ckpt_gui.core.formats import keras3_h5, keras_archive, keras_h5, savedmodel, tf_v1, tf_v2
from ckpt_gui.core.model import BIAS, COUNTER, METADATA, OK, OPTIMIZER, WEIGHT
from ckpt_gui.core.naming import natural_key
from ckpt_gui.core.reading import ReadError, read_tensor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def keras(tf):
    import keras

    keras.utils.set_random_seed(7)
    return keras


def _mlp(keras):
    """The article's (and TF guide's) MLP, spelled as they spell it."""
    return keras.Sequential([
        keras.layers.Dense(128, activation="relu", input_shape=(784,)),
        keras.layers.Dense(10),
    ])


def _data(n=64):
    rng = np.random.default_rng(3)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)


def _train_step(tf, keras, model, optimizer, x, y):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))


def _assert_same_as_tensorflow(tf, ckpt):
    """Every variable read through the engine equals TensorFlow's reader; names/shapes/dtypes too."""
    reader = tf.train.load_checkpoint(ckpt.path)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    assert {v.name: (list(v.shape), v.dtype) for v in ckpt.variables} == {
        n: (shapes[n], dtypes[n].name) for n in shapes}
    for v in ckpt.variables:
        expected = reader.get_tensor(v.name)
        got = read_tensor(ckpt, v.name)
        if v.dtype == "string":
            assert got.item() == expected
        else:
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected, err_msg=v.name)


def _assert_same_as_h5py(path: str, ckpt, member: str | None = None):
    if member:  # a .keras archive: read its weights file the plain way
        import io

        with zipfile.ZipFile(path) as zf:
            f = h5py.File(io.BytesIO(zf.read(member)), "r")
    else:
        f = h5py.File(path, "r")
    with f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert sorted(v.name for v in ckpt.variables) == sorted(names)
        for v in ckpt.variables:
            np.testing.assert_array_equal(read_tensor(ckpt, v.name), f[v.name][()])
            assert list(f[v.name].shape) == list(v.shape)


def _assert_slots_well_formed(ckpt, per_owner: int):
    by_name = {v.name: v for v in ckpt.variables}
    owners: dict[str, list[str]] = {}
    for v in ckpt.variables:
        if v.slot_of:
            owner = by_name[v.slot_of]
            assert v.role == OPTIMIZER and owner.shape == v.shape
            assert owner.role in (WEIGHT, BIAS)
            owners.setdefault(v.slot_of, []).append(v.slot_name)
    trainable = [v for v in ckpt.variables if v.role in (WEIGHT, BIAS)]
    assert sorted(owners) == sorted(v.name for v in trainable)
    assert all(len(set(s)) == per_owner == len(s) for s in owners.values())
    return owners


# --- tf.train.Checkpoint: the MLP + Adam trained a step ---------------------------------------

@pytest.fixture(scope="module")
def mlp_checkpoints(tmp_path_factory, tf, keras):
    d = tmp_path_factory.mktemp("mlp")
    model = _mlp(keras)
    optimizer = keras.optimizers.Adam()
    x, y = _data()
    _train_step(tf, keras, model, optimizer, x, y)
    ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer)
    first = ckpt.save(str(d / "ckpt"))
    _train_step(tf, keras, model, optimizer, x, y)
    second = ckpt.save(str(d / "ckpt"))
    written = ckpt.write(str(d / "final"))  # write(): no number, no state file entry
    weights = [w.numpy() for w in model.weights]
    return d, first, second, written, weights, int(optimizer.iterations.numpy())


def test_checkpoint_save_and_write_listed(mlp_checkpoints, tf):
    d, first, second, written, _, _ = mlp_checkpoints
    scan = scan_directory(str(d), verify=True)
    assert [c.name for c in scan.checkpoints] == ["ckpt-1", "ckpt-2", "final"]
    assert [os.path.basename(p) for p in (first, second, written)] == ["ckpt-1", "ckpt-2", "final"]
    assert scan.latest == os.path.basename(tf.train.latest_checkpoint(str(d))) == "ckpt-2"
    state = tf.train.get_checkpoint_state(str(d))  # save() keeps only the newest in the list
    assert scan.state_file.listed == [os.path.basename(p) for p in
                                      state.all_model_checkpoint_paths] == ["ckpt-2"]
    assert scan.state_file.problems == []
    for c in scan.checkpoints:
        assert c.format == tf_v2.NAME and c.writer == "tf.train.Checkpoint" and c.status == OK
        assert c.n_readable == c.n_variables == len(tf.train.list_variables(c.path))
        assert [f.name for f in c.files] == [c.name + ".index", c.name + ".data-00000-of-00001"]
        _assert_same_as_tensorflow(tf, c)
    assert scan.orphans == []


def test_checkpoint_counters_are_the_real_values(mlp_checkpoints):
    d, *_, iterations = mlp_checkpoints
    scan = scan_directory(str(d))
    c1, c2, final = scan.checkpoints
    assert c1.counters == {"optimizer/_iterations": 1, "save_counter": 1}
    assert c2.counters == {"optimizer/_iterations": 2, "save_counter": 2}
    assert final.counters == {"optimizer/_iterations": iterations, "save_counter": 2}
    assert final.training_progress() == iterations == 2


def test_checkpoint_roles_and_slots_of_a_keras3_model_with_optimizer(mlp_checkpoints, tf):
    """Keras 3 layers reach the checkpoint through the optimizer (optimizer/_trainable_variables/N):
    they are the model's weights, and Adam's optimizer/_variables/N slots belong to them."""
    d, _, second, _, weights, _ = mlp_checkpoints
    c = scan_directory(str(d)).checkpoint("ckpt-2")
    roles = {v.name: v.role for v in c.variables}
    trainable = [v for v in c.variables if v.role in (WEIGHT, BIAS)]
    assert [v.shape for v in trainable] == [w.shape for w in weights]
    assert [v.role for v in trainable] == [WEIGHT, BIAS, WEIGHT, BIAS]
    for v, w in zip(trainable, weights):  # the same values as the model's own weights
        np.testing.assert_array_equal(read_tensor(c, v.name), w)
    owners = _assert_slots_well_formed(c, per_owner=2)
    assert all(sorted(s) == ["momentum", "velocity"] for s in owners.values())
    assert roles["_CHECKPOINTABLE_OBJECT_GRAPH"] == METADATA
    assert roles["save_counter/.ATTRIBUTES/VARIABLE_VALUE"] == COUNTER
    assert roles["optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] == COUNTER
    assert roles["optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE"] == OPTIMIZER


def test_checkpoint_of_a_model_alone(tmp_path, tf, keras):
    model = _mlp(keras)
    tf.train.Checkpoint(model=model).save(str(tmp_path / "m"))
    (c,) = scan_directory(str(tmp_path)).checkpoints
    assert c.name == "m-1"
    assert [v.role for v in c.variables if v.role in (WEIGHT, BIAS)] == [WEIGHT, BIAS, WEIGHT, BIAS]
    assert c.counters == {"save_counter": 1}
    _assert_same_as_tensorflow(tf, c)


# --- CheckpointManager -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def manager_dir(tmp_path_factory, tf):
    d = tmp_path_factory.mktemp("manager")
    step = tf.Variable(0, dtype=tf.int64)
    w = tf.Variable(tf.zeros([5, 3]))
    ckpt = tf.train.Checkpoint(step=step, w=w)
    manager = tf.train.CheckpointManager(ckpt, str(d), max_to_keep=3)
    saved = []
    for i in range(1, 6):
        step.assign(i * 100)
        w.assign(tf.fill([5, 3], float(i)))
        saved.append(manager.save())
    return d, saved, manager


def test_checkpoint_manager_keeps_three(manager_dir, tf):
    d, saved, manager = manager_dir
    scan = scan_directory(str(d), verify=True)
    assert [c.name for c in scan.checkpoints] == ["ckpt-3", "ckpt-4", "ckpt-5"]
    assert [os.path.basename(p) for p in manager.checkpoints] == ["ckpt-3", "ckpt-4", "ckpt-5"]
    assert scan.latest == os.path.basename(tf.train.latest_checkpoint(str(d))) == "ckpt-5"
    assert scan.state_file.listed == ["ckpt-3", "ckpt-4", "ckpt-5"]
    assert scan.state_file.latest == "ckpt-5" and scan.state_file.problems == []
    state = tf.train.get_checkpoint_state(str(d))
    assert list(state.all_model_checkpoint_timestamps) == pytest.approx(
        scan.state_file.timestamps)
    for i, c in zip((3, 4, 5), scan.checkpoints):
        assert c.number == i
        assert c.counters == {"step": i * 100, "save_counter": i}
        np.testing.assert_array_equal(read_tensor(c, "w/.ATTRIBUTES/VARIABLE_VALUE"),
                                      np.full((5, 3), float(i), np.float32))
        _assert_same_as_tensorflow(tf, c)
    assert scan.orphans == []


# --- Keras 3: ModelCheckpoint, save_weights, model.save ------------------------------------

@pytest.fixture(scope="module")
def keras_dir(tmp_path_factory, tf, keras):
    d = tmp_path_factory.mktemp("keras")
    model = _mlp(keras)
    model.compile(optimizer=keras.optimizers.Adam(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data(64)  # 4 batches of 16 per epoch
    history = {}

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            history[epoch + 1] = ([w.numpy() for w in model.weights],
                                  int(model.optimizer.iterations.numpy()))

    callbacks = [
        Record(),
        keras.callbacks.ModelCheckpoint(str(d / "weights.{epoch:02d}.weights.h5"),
                                        save_weights_only=True),
        keras.callbacks.ModelCheckpoint(str(d / "model_{epoch}.keras")),
    ]
    model.fit(x, y, batch_size=16, epochs=3, callbacks=callbacks, verbose=0)
    model.save_weights(str(d / "final.weights.h5"))
    model.save(str(d / "whole.h5"))  # legacy HDF5: Keras 3 still writes it
    return d, model, history


def test_model_checkpoint_weights_h5(keras_dir):
    d, model, history = keras_dir
    scan = scan_directory(str(d), verify=True)
    names = [c.name for c in scan.checkpoints]
    assert names == sorted(names, key=natural_key)
    assert sorted(names) == sorted(os.listdir(d))  # everything Keras wrote, nothing else
    for epoch in (1, 2, 3):
        c = scan.checkpoint(f"weights.{epoch:02d}.weights.h5")
        weights, iterations = history[epoch]
        assert c.format == keras3_h5.NAME and c.number == epoch and c.status == OK
        assert c.n_readable == c.n_variables == 4 + 2 + 8  # weights, iterations + lr, Adam slots
        assert iterations == 4 * epoch
        assert c.counters == {"optimizer/vars/0": iterations}
        trainable = [v for v in c.variables if v.role in (WEIGHT, BIAS)]
        for v, w in zip(trainable, weights, strict=True):
            np.testing.assert_array_equal(read_tensor(c, v.name), w)
        _assert_slots_well_formed(c, per_owner=2)
        _assert_same_as_h5py(c.path, c)


def test_model_checkpoint_keras_archives(keras_dir, keras):
    d, model, history = keras_dir
    scan = scan_directory(str(d), verify=True)
    for epoch in (1, 2, 3):
        c = scan.checkpoint(f"model_{epoch}.keras")
        assert c.format == keras_archive.NAME and c.number == epoch and c.status == OK
        assert c.counters == {"optimizer/vars/0": 4 * epoch}
        _assert_same_as_h5py(c.path, c, member="model.weights.h5")
        loaded = keras.saving.load_model(c.path)  # what Keras itself reads back
        trainable = [v for v in c.variables if v.role in (WEIGHT, BIAS)]
        for v, w in zip(trainable, loaded.get_weights(), strict=True):
            np.testing.assert_array_equal(read_tensor(c, v.name), w)
        for v, w in zip(trainable, history[epoch][0], strict=True):
            np.testing.assert_array_equal(read_tensor(c, v.name), w)


def test_save_weights_and_legacy_h5(keras_dir, keras):
    d, model, _ = keras_dir
    scan = scan_directory(str(d))
    final = scan.checkpoint("final.weights.h5")
    trainable = [v for v in final.variables if v.role in (WEIGHT, BIAS)]
    for v, w in zip(trainable, model.get_weights(), strict=True):
        np.testing.assert_array_equal(read_tensor(final, v.name), w)
    whole = scan.checkpoint("whole.h5")
    assert whole.format == keras_h5.NAME and "model.save" in whole.writer
    _assert_same_as_h5py(whole.path, whole)
    kernels = [v for v in whole.variables if v.name.startswith("model_weights/")
               and v.role in (WEIGHT, BIAS)]
    assert len(kernels) == 4
    reloaded = keras.saving.load_model(whole.path, compile=False).get_weights()
    got = sorted((read_tensor(whole, v.name) for v in kernels), key=lambda a: (a.shape, a.sum()))
    want = sorted(reloaded, key=lambda a: (a.shape, a.sum()))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    ((counter, value),) = whole.counters.items()  # the group is adam, adam_1, ... per process
    assert re.fullmatch(r"optimizer_weights/adam(_\d+)?/iteration", counter) and value == 12
    opt = [v for v in whole.variables if v.name.startswith("optimizer_weights/")]
    assert all(v.role in (OPTIMIZER, COUNTER) for v in opt)


def test_keras3_refuses_save_weights_to_plain_h5(tmp_path, keras):
    model = _mlp(keras)
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        model.save_weights(str(tmp_path / "x.h5"))
    assert os.listdir(tmp_path) == []
    assert scan_directory(str(tmp_path)).checkpoints == []


# --- TF1 Saver, V2 and V1 formats, in graph mode -------------------------------------------

@pytest.fixture(scope="module")
def saver_dirs(tmp_path_factory, tf):
    v2_dir, v1_dir = tmp_path_factory.mktemp("saver_v2"), tmp_path_factory.mktemp("saver_v1")
    v1 = tf.compat.v1
    g = v1.Graph()
    with g.as_default():
        gs = v1.train.get_or_create_global_step()
        w = v1.get_variable("dense/w", shape=[4, 3], initializer=v1.random_normal_initializer(seed=1))
        b = v1.get_variable("dense/b", shape=[3], initializer=v1.zeros_initializer())
        x = tf.constant(np.arange(8, dtype=np.float32).reshape(2, 4))
        loss = tf.reduce_sum(tf.square(tf.matmul(x, w) + b))
        train = v1.train.AdamOptimizer(0.01).minimize(loss, global_step=gs)
        saver = v1.train.Saver(max_to_keep=2)
        saver_v1 = v1.train.Saver(write_version=v1.train.SaverDef.V1)
        with v1.Session(graph=g) as sess:
            sess.run(v1.global_variables_initializer())
            for _ in range(3):
                sess.run(train)
                saver.save(sess, str(v2_dir / "model.ckpt"), global_step=gs)
            saver_v1.save(sess, str(v1_dir / "model.ckpt"), global_step=gs)
            values = {v.op.name: sess.run(v) for v in v1.global_variables()}
    return v2_dir, v1_dir, values


def test_tf1_saver_v1_sharded(tmp_path, tf):
    """Saver(V1, sharded=True) with variables on two devices: P-00000-of-00002, P-00001-of-00002
    and P.meta; the state file names the pattern P-?????-of-00002."""
    v1 = tf.compat.v1
    g = v1.Graph()
    with g.as_default():
        with tf.device("/cpu:0"):
            gs = v1.train.get_or_create_global_step()
            a = v1.get_variable("a", initializer=np.arange(6, dtype=np.float32).reshape(2, 3))
        with tf.device("/cpu:1"):
            b = v1.get_variable("b", initializer=np.full(4, 2.5, np.float32))
        step = v1.assign_add(gs, 5)
        saver = v1.train.Saver(write_version=v1.train.SaverDef.V1, sharded=True)
        config = v1.ConfigProto(device_count={"CPU": 2})
        with v1.Session(graph=g, config=config) as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(step)
            written = saver.save(sess, str(tmp_path / "model.ckpt"), global_step=gs)
            values = {v.op.name: sess.run(v) for v in v1.global_variables()}
    assert os.path.basename(written) == "model.ckpt-5-?????-of-00002"
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "model.ckpt-5-00000-of-00002",
                                            "model.ckpt-5-00001-of-00002", "model.ckpt-5.meta"]
    scan = scan_directory(str(tmp_path), verify=True)
    (c,) = scan.checkpoints
    assert (c.name, c.format, c.number, c.status) == ("model.ckpt-5", tf_v1.NAME, 5, OK)
    assert [f.name for f in c.files] == ["model.ckpt-5-00000-of-00002",
                                         "model.ckpt-5-00001-of-00002", "model.ckpt-5.meta"]
    assert os.path.basename(tf.train.latest_checkpoint(str(tmp_path))) == os.path.basename(c.path)
    assert scan.latest == "model.ckpt-5" and scan.state_file.problems == []
    assert scan.orphans == [] and c.counters == {"global_step": 5}
    assert c.n_readable == c.n_variables == len(values) == 3
    for name, value in values.items():
        np.testing.assert_array_equal(read_tensor(c, name), value)
    _assert_same_as_tensorflow(tf, c)


def test_tf1_saver_v2(saver_dirs, tf):
    d, _, values = saver_dirs
    scan = scan_directory(str(d), verify=True)
    assert [c.name for c in scan.checkpoints] == ["model.ckpt-2", "model.ckpt-3"]  # max_to_keep=2
    assert scan.latest == os.path.basename(tf.train.latest_checkpoint(str(d))) == "model.ckpt-3"
    assert scan.state_file.listed == ["model.ckpt-2", "model.ckpt-3"]
    c = scan.checkpoint("model.ckpt-3")
    assert c.format == tf_v2.NAME and c.writer.startswith("TF1 Saver") and c.status == OK
    assert [f.name for f in c.files] == ["model.ckpt-3.index", "model.ckpt-3.data-00000-of-00001",
                                         "model.ckpt-3.meta"]
    assert c.counters == {"global_step": 3}
    assert scan.checkpoint("model.ckpt-2").counters == {"global_step": 2}
    assert {v.name for v in c.variables} == set(values)
    for name, value in values.items():
        np.testing.assert_array_equal(read_tensor(c, name), value)
    _assert_same_as_tensorflow(tf, c)
    slots = {v.name: (v.slot_of, v.slot_name) for v in c.variables if v.slot_of}
    assert slots == {"dense/w/Adam": ("dense/w", "m"), "dense/w/Adam_1": ("dense/w", "v"),
                     "dense/b/Adam": ("dense/b", "m"), "dense/b/Adam_1": ("dense/b", "v")}
    assert {v.name: v.role for v in c.variables if v.name.startswith("beta")} == {
        "beta1_power": OPTIMIZER, "beta2_power": OPTIMIZER}


def test_tf1_saver_v1_single_file(saver_dirs, tf):
    _, d, values = saver_dirs
    scan = scan_directory(str(d), verify=True)
    (c,) = scan.checkpoints
    assert c.name == "model.ckpt-3" and c.format == tf_v1.NAME and c.status == OK
    assert [f.name for f in c.files] == ["model.ckpt-3", "model.ckpt-3.meta"]
    assert scan.latest == os.path.basename(tf.train.latest_checkpoint(str(d)))
    assert c.counters == {"global_step": 3}
    assert c.n_readable == c.n_variables == len(values)
    for name, value in values.items():
        np.testing.assert_array_equal(read_tensor(c, name), value)
    _assert_same_as_tensorflow(tf, c)
    assert scan.orphans == []


# --- sharded saves ---------------------------------------------------------------------------

def test_sharded_save_with_max_shard_size_policy(tmp_path, tf):
    rng = np.random.default_rng(5)
    variables = {f"v{i}": tf.Variable(rng.normal(size=(50, 40)).astype(np.float32))
                 for i in range(6)}
    ckpt = tf.train.Checkpoint(**variables)
    options = tf.train.CheckpointOptions(
        experimental_sharding_callback=tf.train.experimental.MaxShardSizePolicy(
            max_shard_size=10_000))
    prefix = ckpt.write(str(tmp_path / "sharded"), options=options)
    data = sorted(n for n in os.listdir(tmp_path) if ".data-" in n)
    n = int(data[0].rsplit("-of-", 1)[1])
    assert n >= 3
    assert data == [f"sharded.data-{k:05d}-of-{n:05d}" for k in range(n)]
    scan = scan_directory(str(tmp_path), verify=True)
    (c,) = scan.checkpoints
    assert c.name == os.path.basename(prefix) == "sharded"
    assert [f.name for f in c.files] == ["sharded.index", *data]
    assert c.bytes == sum(os.path.getsize(tmp_path / f.name) for f in c.files)
    assert c.status == OK and c.n_readable == c.n_variables == 7
    assert c.bytes == sum(os.path.getsize(tmp_path / f.name) for f in c.files)
    # MaxShardSizePolicy slices variables bigger than the room left in a shard across shards
    index = bundle.read_index(prefix + ".index")
    sliced = [name for name, e in index.entries.items() if e.sliced]
    assert sliced and all(len({p.shard_id for p in index.slices[name]}) >= 1 for name in sliced)
    shards_of = {name: {p.shard_id for p in index.slices[name]} if e.sliced else {e.shard_id}
                 for name, e in index.entries.items()}
    assert set().union(*shards_of.values()) == set(range(n))
    _assert_same_as_tensorflow(tf, c)
    for name, var in variables.items():
        np.testing.assert_array_equal(read_tensor(c, name), var.numpy())
        assert c.variable(name).bytes == 8000
    # one shard removed: exactly the variables with a part in it become unreadable; the index
    # alone says so (before reading) and verification through TensorFlow agrees
    victim = next(k for k in range(n) if sum(k in s for s in shards_of.values()) == 2)
    lost = sorted(name for name, s in shards_of.items() if victim in s)
    missing = f"sharded.data-{victim:05d}-of-{n:05d}"
    os.remove(tmp_path / missing)
    (c,) = scan_directory(str(tmp_path)).checkpoints
    assert c.status == "partial"
    assert c.problems == [f"{missing} is missing: 2 of 7 variables cannot be read"]
    assert sorted(v.name for v in c.variables if v.readable is False) == lost
    (c,) = scan_directory(str(tmp_path), verify=True).checkpoints
    assert c.status == "partial" and c.n_readable == 5
    assert c.problems == [f"{missing} is missing: 2 of 7 variables cannot be read"]
    for v in c.variables:
        # a fresh reader each time: TF's CheckpointReader aborts the whole process (a failed
        # CHECK in tensor_bundle.cc) on a second read after a failed one; RestoreV2 does not
        reader = tf.train.load_checkpoint(prefix)
        if v.name in lost:
            with pytest.raises(tf.errors.OpError):
                reader.get_tensor(v.name)
            with pytest.raises(ReadError, match="missing"):
                read_tensor(c, v.name)
        else:
            np.testing.assert_array_equal(read_tensor(c, v.name), reader.get_tensor(v.name))


# --- SavedModel ------------------------------------------------------------------------------

def test_savedmodel_variables_bundle(tmp_path, tf, keras):
    class Scaler(tf.Module):
        def __init__(self):
            self.scale = tf.Variable([1.0, 2.0, 3.0])
            self.calls = tf.Variable(7, dtype=tf.int64, name="step")

        @tf.function(input_signature=[tf.TensorSpec([3])])
        def __call__(self, x):
            return x * self.scale

    tf.saved_model.save(Scaler(), str(tmp_path / "scaler"))
    _mlp(keras).export(str(tmp_path / "exported"), verbose=False)
    parent = scan_directory(str(tmp_path), verify=True)
    assert [c.name for c in parent.checkpoints] == ["exported", "scaler"]
    for c in parent.checkpoints:
        assert c.format == savedmodel.NAME and c.status == OK
        assert c.path == str(tmp_path / c.name / "variables" / "variables")
        assert c.files[0].name == f"{c.name}/saved_model.pb"
        _assert_same_as_tensorflow(tf, c)
    scaler = parent.checkpoint("scaler")
    np.testing.assert_array_equal(read_tensor(scaler, "scale/.ATTRIBUTES/VARIABLE_VALUE"),
                                  [1.0, 2.0, 3.0])
    inside = scan_directory(str(tmp_path / "scaler"))
    assert [c.name for c in inside.checkpoints] == ["variables/variables"]
    assert inside.checkpoints[0].n_variables == scaler.n_variables


# --- the article's flows, slips included -----------------------------------------------------

@pytest.fixture(scope="module")
def article_dir(tmp_path_factory, tf, keras):
    """Examples 1 and 2 run as written in one working directory."""
    d = tmp_path_factory.mktemp("article")
    cwd = os.getcwd()
    os.chdir(d)
    try:
        # Example 1
        model = _mlp(keras)
        checkpoint = tf.train.Checkpoint(model=model)
        checkpoint_path = "./my_checkpoint"
        saved1 = checkpoint.save(checkpoint_path)
        new_model = _mlp(keras)  # never bound to a checkpoint
        with pytest.raises(tf.errors.NotFoundError):
            checkpoint.restore(checkpoint_path)  # the slip: the prefix is my_checkpoint-1
        # with the right prefix, the old object restores the old model, not new_model
        checkpoint.restore(saved1).assert_consumed()
        example1 = ([w.numpy() for w in model.weights], [w.numpy() for w in new_model.weights])
        # Example 2
        model = _mlp(keras)
        optimizer = keras.optimizers.Adam()
        checkpoint = tf.train.Checkpoint(optimizer=optimizer, model=model)
        x, y = _data(16)
        _train_step(tf, keras, model, optimizer, x, y)
        saved2 = checkpoint.save(checkpoint_path + "-{epoch}")  # never formatted
        assert tf.train.latest_checkpoint(checkpoint_path) is None  # a prefix, not a folder
        status = checkpoint.restore(tf.train.latest_checkpoint(checkpoint_path))
        status.expect_partial()  # restore(None): nothing restored, no error
        weights = [w.numpy() for w in model.weights]
    finally:
        os.chdir(cwd)
    return d, saved1, saved2, weights, example1


def test_article_examples_1_and_2(article_dir, tf):
    d, saved1, saved2, weights, (old_weights, new_weights) = article_dir
    assert (saved1, saved2) == ("./my_checkpoint-1", "./my_checkpoint-{epoch}-1")
    scan = scan_directory(str(d), verify=True)
    assert [c.name for c in scan.checkpoints] == ["my_checkpoint-1", "my_checkpoint-{epoch}-1"]
    assert scan.latest == os.path.basename(tf.train.latest_checkpoint(str(d)))
    assert scan.latest == "my_checkpoint-{epoch}-1"
    ex1, ex2 = scan.checkpoints
    assert ex1.number == ex2.number == 1
    assert ex1.counters == {"save_counter": 1}
    assert ex2.counters == {"optimizer/_iterations": 1, "save_counter": 1}
    for c in scan.checkpoints:
        assert c.status == OK and c.n_readable == c.n_variables
        _assert_same_as_tensorflow(tf, c)
    trainable = [v for v in ex2.variables if v.role in (WEIGHT, BIAS)]
    for v, w in zip(trainable, weights, strict=True):
        np.testing.assert_array_equal(read_tensor(ex2, v.name), w)
    # Example 1's checkpoint holds the first model's values; its "new_model" never got them
    trainable = [v for v in ex1.variables if v.role in (WEIGHT, BIAS)]
    assert [v.shape for v in trainable] == [w.shape for w in new_weights]
    for v, old, new in zip(trainable, old_weights, new_weights, strict=True):
        np.testing.assert_array_equal(read_tensor(ex1, v.name), old)
        if v.role == WEIGHT:  # random kernels differ; biases start at zero in both
            assert not np.array_equal(read_tensor(ex1, v.name), new)
    # the state file was overwritten by the second save: it lists only Example 2's checkpoint
    assert scan.state_file.listed == ["my_checkpoint-{epoch}-1"]
    assert scan.orphans == []


def test_article_example_3_model_checkpoint(tmp_path, tf, keras, capsys):
    checkpoint_dir = tmp_path / "training_checkpoints"
    checkpoint_prefix = os.path.join(checkpoint_dir, "ckpt_{epoch}")
    model = _mlp(keras)
    optimizer = keras.optimizers.Adam()
    with pytest.raises(ValueError, match=r"\.keras"):  # Keras 3 wants a suffix
        keras.callbacks.ModelCheckpoint(filepath=checkpoint_prefix, save_weights_only=False,
                                        save_freq=5 * 1000)
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        keras.callbacks.ModelCheckpoint(filepath=checkpoint_prefix, save_weights_only=True)
    assert not checkpoint_dir.exists()  # nothing was written
    assert tf.train.latest_checkpoint(str(checkpoint_dir)) is None
    assert cli.main(["scan", str(checkpoint_dir)]) == 2
    assert "no such directory" in capsys.readouterr().err

    # what the user writes next: a .keras suffix; save_freq counts batches, not epochs
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = keras.callbacks.ModelCheckpoint(filepath=checkpoint_prefix + ".keras", save_freq=5)
    x, y = _data(64)
    model.fit(x, y, batch_size=16, epochs=3, callbacks=[callback], verbose=0)
    written = sorted(os.listdir(checkpoint_dir))
    assert written == ["ckpt_2.keras", "ckpt_3.keras"]  # batches 5 and 10 fall in epochs 2, 3
    scan = scan_directory(str(checkpoint_dir), verify=True)
    assert [c.name for c in scan.checkpoints] == written
    assert [c.counters for c in scan.checkpoints] == [{"optimizer/vars/0": 5},
                                                      {"optimizer/vars/0": 10}]
    assert scan.latest == "ckpt_3.keras" and not scan.state_file.present
    assert all(c.status == OK for c in scan.checkpoints)


# --- Keras 1 and 2 HDF5 layouts (their writers are gone from Keras 3: laid out with h5py) ----

def _keras2_weights(path, model_group=None):
    import h5py

    rng = np.random.default_rng(11)
    values = {}
    with h5py.File(path, "w") as f:
        g = f.create_group(model_group) if model_group else f
        g.attrs["layer_names"] = [b"dense", b"batch_normalization", b"dense_1"]
        g.attrs["backend"] = b"tensorflow"
        g.attrs["keras_version"] = b"2.4.0"
        layers = {"dense": {"kernel:0": (8, 4), "bias:0": (4,)},
                  "batch_normalization": {"gamma:0": (4,), "beta:0": (4,),
                                          "moving_mean:0": (4,), "moving_variance:0": (4,)},
                  "dense_1": {"kernel:0": (4, 1), "bias:0": (1,)}}
        for layer, weights in layers.items():
            lg = g.create_group(layer)
            lg.attrs["weight_names"] = [f"{layer}/{w}".encode() for w in weights]
            for w, shape in weights.items():
                values[f"{model_group + '/' if model_group else ''}{layer}/{layer}/{w}"] = \
                    v = rng.normal(size=shape).astype(np.float32)
                lg.create_dataset(f"{layer}/{w}", data=v)
    return values


def test_keras2_save_weights_h5_layout(tmp_path):
    values = _keras2_weights(tmp_path / "weights-improvement-07-0.91.hdf5")
    scan = scan_directory(str(tmp_path), verify=True)
    (c,) = scan.checkpoints
    assert c.format == keras_h5.NAME and c.writer == "Keras 2.4.0 save_weights (HDF5)"
    assert c.number == 7 and c.status == OK and c.n_readable == c.n_variables == 8
    roles = {v.name: v.role for v in c.variables}
    assert roles["dense/dense/kernel:0"] == WEIGHT and roles["dense_1/dense_1/bias:0"] == BIAS
    assert {roles[f"batch_normalization/batch_normalization/{w}:0"]
            for w in ("gamma", "beta", "moving_mean", "moving_variance")} == {"normalization"}
    for name, value in values.items():
        np.testing.assert_array_equal(read_tensor(c, name), value)
        assert c.variable(name).path == name[:-2]  # ":0" is not part of the object path


def test_keras2_whole_model_h5_with_optimizer(tmp_path):
    import h5py

    path = tmp_path / "model.h5"
    values = _keras2_weights(path, model_group="model_weights")
    with h5py.File(path, "a") as f:
        f.attrs["model_config"] = b'{"class_name": "Sequential"}'
        f.attrs["keras_version"] = b"2.4.0"
        opt = f.create_group("optimizer_weights")
        opt.create_dataset("Adam/iter:0", data=np.int64(1234))
        opt.create_dataset("Adam/dense/kernel/m:0", data=np.zeros((8, 4), np.float32))
    (c,) = scan_directory(str(path.parent)).checkpoints
    assert c.writer == "Keras 2.4.0 model.save (whole model, HDF5)"
    assert c.counters == {"optimizer_weights/Adam/iter": 1234}
    assert c.variable("optimizer_weights/Adam/dense/kernel/m:0").role == OPTIMIZER
    assert c.n_variables == len(values) + 2


def test_keras1_h5_layout(tmp_path):
    import h5py

    with h5py.File(tmp_path / "weights.h5", "w") as f:
        f.attrs["layer_names"] = [b"dense_1", b"dense_2"]
        f.attrs["keras_version"] = b"1.2.2"
        for layer, shapes in (("dense_1", ((5, 3), (3,))), ("dense_2", ((3, 1), (1,)))):
            g = f.create_group(layer)
            g.attrs["weight_names"] = [f"{layer}_W".encode(), f"{layer}_b".encode()]
            g.create_dataset(f"{layer}_W", data=np.ones(shapes[0], np.float32))
            g.create_dataset(f"{layer}_b", data=np.zeros(shapes[1], np.float32))
    (c,) = scan_directory(str(tmp_path), verify=True).checkpoints
    assert c.format == keras_h5.NAME and c.writer == "Keras 1.2.2 save_weights (HDF5)"
    assert {v.name: v.role for v in c.variables} == {
        "dense_1/dense_1_W": WEIGHT, "dense_1/dense_1_b": BIAS,
        "dense_2/dense_2_W": WEIGHT, "dense_2/dense_2_b": BIAS}
    assert c.status == OK and c.n_readable == 4
    np.testing.assert_array_equal(read_tensor(c, "dense_2/dense_2_W"), np.ones((3, 1)))
