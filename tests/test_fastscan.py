"""The scan's fast paths give what the plain ones give.

A scan decodes a big index with numpy (entrydecode), reuses the decoding of an index whose
bytes differ only in checksums (bundle._Layout), classifies keys in bulk by their digit-free
pattern (roles.classify_many), finds checkpoint numbers by digit pattern (naming), and makes
VariableInfo objects on first access (model.VariableRows). Each is checked here against the
plain way and against TensorFlow, on checkpoints written with the real APIs.
"""
from __future__ import annotations

import random
import threading

import numpy as np
import pytest

from ckpt_gui.core import bundle, entrydecode, fastproto, naming, roles, scan_directory
from ckpt_gui.core.reading import read_tensor, verify_checkpoint

from conftest import CORPUS


def _columns(index: bundle.BundleIndex) -> dict:
    return {name: (index.dtypes[i], index.shapes[i], index.shard_ids[i], index.offsets[i],
                   index.sizes[i], index.crcs[i]) for i, name in enumerate(index.names)}


@pytest.fixture
def wide(tf, tmp_path):
    """One checkpoint of 300+ variables of many dtypes and shapes; a 2.4 MB tensor pushes later
    offsets past three-byte varints; one name holds a newline, one is not ASCII."""
    rng = np.random.default_rng(0)
    values = {"big": rng.standard_normal(600_000).astype(np.float32),
              "line\nbreak": np.arange(3, dtype=np.float32),
              "größe": np.ones((2, 2), np.float64),
              "long_" + "x" * 200: np.ones(2, np.float32)}  # a key of 2-byte varint length
    kinds = [np.float32, np.float16, np.int64, np.int32, np.bool_, np.complex64]
    for i in range(300):
        dtype = kinds[i % len(kinds)]
        shape = [(), (1,), (5,), (2, 3, 4), (0,), (7, 1)][i % 6]
        values[f"v{i}"] = (rng.standard_normal(shape) * 10).astype(dtype)
    variables = {k: tf.Variable(v) for k, v in values.items()}
    variables["words"] = tf.Variable(["a", "bc", ""])
    prefix = tf.train.Checkpoint(**variables).write(str(tmp_path / "wide"))
    return prefix, values


def test_big_index_decoded_with_numpy_equals_tensorflow_and_one_by_one(tf, wide, monkeypatch):
    prefix, values = wide
    index = bundle.read_index(prefix + ".index")
    assert len(index) >= entrydecode.VECTOR_MIN  # the numpy path ran
    reader = tf.train.load_checkpoint(prefix)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    assert sorted(index.names) == sorted(shapes) and index.names == sorted(index.names)
    assert "line\nbreak/.ATTRIBUTES/VARIABLE_VALUE" in index.names
    assert "größe/.ATTRIBUTES/VARIABLE_VALUE" in index.names
    for i, name in enumerate(index.names):
        assert list(index.shapes[i]) == shapes[name], name
        assert index.dtypes[i] == dtypes[name].name, name
    assert max(index.offsets) > 1 << 21

    monkeypatch.setattr(entrydecode, "VECTOR_MIN", 10**9)  # every entry through protobuf
    bundle.clear_caches()
    assert _columns(bundle.parse_index(bundle.read_file(prefix + ".index"))) == _columns(index)

    scan = scan_directory(str(prefix.rsplit("/", 1)[0]))
    c = scan.checkpoints[0]
    assert c.n_variables == len(shapes) and c.status == "ok"
    for key in ["big", "line\nbreak", "größe", "v7", "v10", "long_" + "x" * 200]:
        got = read_tensor(c, f"{key}/.ATTRIBUTES/VARIABLE_VALUE")
        np.testing.assert_array_equal(got, values[key])
    assert c.variable("line\nbreak/.ATTRIBUTES/VARIABLE_VALUE").path == "line\nbreak"


def _entry(**fields) -> bytes:
    m = fastproto.BundleEntryProto()
    for k, v in fields.items():
        if k == "shape":
            for d in v:
                m.shape.dim.add(size=d)
        elif k == "slices":
            for start, length in v:
                m.slices.add().extent.add(start=start, length=length)
        else:
            setattr(m, k, v)
    return m.SerializeToString()


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def test_entries_laid_out_otherwise_decode_as_protobuf_says(monkeypatch):
    common = [_entry(dtype=1, shape=(3, 4), shard_id=s, offset=o, size=48, crc32c=c)
              for s, o, c in [(0, 0, 7), (1, 123456789012, 0xFFFFFFFF), (0, 5, 0)]]
    odd = [
        # offset before dtype: another field order
        b"\x20" + _varint(300) + b"\x08\x01\x12\x00\x28\x04",
        _entry(dtype=9, shape=(), size=8, crc32c=1) + b"\x50\x07",  # an unknown field 10
        _entry(dtype=1, shape=(4,), slices=[(0, 2), (2, 2)]),       # a partitioned variable
        _entry(shape=(2,), size=8),                                  # no dtype
        _entry(dtype=1, shape=tuple(range(1, 40)), size=4),          # shape of 100+ bytes
        _entry(dtype=3, shape=(2,), offset=2**40, size=8),            # no checksum
        _entry(dtype=1, shape=(-1, 3)),                               # unknown dimension
    ]
    values = (common + odd) * 20  # enough for the numpy path
    data = b"junk" + b"".join(values)
    starts = list(np.cumsum([4] + [len(v) for v in values[:-1]]))
    lengths = [len(v) for v in values]
    vectorized = entrydecode.decode_entries(data, starts, lengths)
    monkeypatch.setattr(entrydecode, "VECTOR_MIN", 10**9)
    one_by_one = entrydecode.decode_entries(data, starts, lengths)
    for i, value in enumerate(values):
        m = fastproto.BundleEntryProto.FromString(value)
        expected = (m.dtype, m.shard_id, m.offset, m.size, m.crc32c, len(m.slices) > 0)
        for cols in (vectorized, one_by_one):
            got = (cols.dtypes[i], cols.shard_ids[i], cols.offsets[i], cols.sizes[i],
                   cols.crcs[i], cols.sliced[i])
            assert got == expected, (i, value)
            shape = fastproto.TensorShapeProto.FromString(cols.shape_bytes[i])
            assert [d.size for d in shape.dim] == [d.size for d in m.shape.dim]


def test_damaged_entry_is_a_bundle_error_not_a_crash():
    values = [_entry(dtype=1, shape=(2,), size=8, crc32c=3)] * 200
    values[150] = b"\x08\x01\x12\x7f\x01"  # a shape longer than the entry
    data = b"".join(values)
    starts = list(np.cumsum([0] + [len(v) for v in values[:-1]]))
    with pytest.raises(entrydecode.DecodeError):
        entrydecode.decode_entries(data, starts, [len(v) for v in values])


def test_layout_reused_only_for_an_index_equal_outside_its_checksums(tf, tmp_path):
    step = tf.Variable(0, dtype=tf.int64)
    w = tf.Variable(np.zeros((4, 3), np.float32))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=step, w=w), str(tmp_path / "run"),
                                         max_to_keep=None)
    prefixes = []
    for i in range(4):
        step.assign(i)
        w.assign(np.full((4, 3), i, np.float32))
        prefixes.append(manager.save())
    bundle.clear_caches()
    read = [bundle.read_index(p + ".index") for p in prefixes]
    plain = [bundle.parse_index(bundle.read_file(p + ".index")) for p in prefixes]
    assert [_columns(r) for r in read] == [_columns(p) for p in plain]
    assert len({tuple(r.crcs) for r in read}) == 4           # only the checksums differ
    assert read[1].names is read[0].names                      # ... and the decoding was reused
    layout = bundle._LAYOUTS[len(bundle.read_file(prefixes[0] + ".index"))]
    assert layout.cut is not None

    # Same size, other names: not the same layout.
    other = tf.train.Checkpoint(step=step, v=w).write(str(tmp_path / "other" / "ckpt-9"))
    same = tf.train.Checkpoint(step=step, w=w).write(str(tmp_path / "other" / "ckpt-8"))
    bundle.clear_caches()
    first, second = bundle.read_index(same + ".index"), bundle.read_index(other + ".index")
    assert len(bundle.read_file(same + ".index")) == len(bundle.read_file(other + ".index"))
    assert "w/.ATTRIBUTES/VARIABLE_VALUE" in first.names
    assert "v/.ATTRIBUTES/VARIABLE_VALUE" in second.names

    # A byte changed outside the checksums (here in a shape) is never taken for the layout.
    buf = bytearray(bundle.read_file(prefixes[3] + ".index"))
    at = buf.index(b"\x12\x02\x08\x04\x12\x02\x08\x03")  # dim {size: 4} dim {size: 3}
    buf[at + 3] = 5
    bundle.clear_caches()
    bundle.read_index(prefixes[2] + ".index")
    changed = bundle.index_from_bytes(bytes(buf))
    assert _columns(changed) == _columns(bundle.parse_index(bytes(buf)))
    assert (5, 3) in changed.shapes


def test_variables_are_made_once_on_first_access(tf, wide):
    prefix, _ = wide
    c = scan_directory(prefix.rsplit("/", 1)[0]).checkpoints[0]
    assert c._rows is not None and c.n_variables == len(tf.train.list_variables(prefix))
    assert c._rows is not None  # counting did not make them
    seen = []
    barrier = threading.Barrier(8)

    def ask():
        barrier.wait()
        seen.append(c.variables)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and all(s is seen[0] for s in seen)
    assert [v.name for v in seen[0]] == [n for n, _ in tf.train.list_variables(prefix)]
    verify_checkpoint(c)
    assert c.n_readable == c.n_variables and all(v.readable for v in c.variables)


def test_checkpoints_of_one_run_share_their_layout_not_their_variables(tf, tmp_path):
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(step=step, w=tf.Variable(np.ones(3, np.float32)))
    for i in range(3):
        step.assign(10 * i)
        ckpt.save(str(tmp_path / "ckpt"))
    scan = scan_directory(str(tmp_path))
    a, b, c = scan.checkpoints
    assert a._rows is b._rows is c._rows
    assert [x.counters["step"] for x in scan.checkpoints] == [0, 10, 20]
    assert [x.counters["save_counter"] for x in scan.checkpoints] == [1, 2, 3]
    a.variables[0].readable = False
    assert b.variables[0].readable is None and b.variables is not a.variables


def test_bulk_classification_agrees_with_classify():
    names, shapes, dtypes = [], [], []
    for path in list(CORPUS.glob("*/*.index")) + list(CORPUS.glob("*/*/*.index")):
        try:
            index = bundle.read_index(path)
        except bundle.BundleError:
            continue
        names += index.names
        shapes += index.shapes
        dtypes += index.dtypes
    base = ["beta_1", "beta_3", "beta1_power", "beta3_power", "Adam_1", "Adam_12", "bn2/gamma",
            "bn/beta", "dense_1_W", "conv2d_3/kernel:0", "layers/3/vars/0", "Beta_1",
            "layers/batch_norm_2/vars/1", "optimizer/_variables/12", "opt/iter", "step",
            "global_step_1", "fc1/w/RMSProp_1", "epoch_3", "x/BETA2_power",
            "model/layer_with_weights-7/bias/.ATTRIBUTES/VARIABLE_VALUE",
            "ema/dense_1/kernel/ExponentialMovingAverage", "block_2/layer_norm_11/scale"]
    for name in base:
        for digit in "0729":
            variant = name.replace("1", digit).replace("2", digit).replace("3", digit)
            for shape in [(), (1,), (5,), (3, 3)]:
                for dtype in ["float32", "int64"]:
                    names.append(variant)
                    shapes.append(shape)
                    dtypes.append(dtype)
    order = list(range(len(names)))
    random.Random(0).shuffle(order)
    names = [names[i] for i in order]
    shapes = [shapes[i] for i in order]
    dtypes = [dtypes[i] for i in order]
    expected = [roles.classify(n, s, d) for n, s, d in zip(names, shapes, dtypes)]
    for _ in range(2):  # cold, then remembered
        assert roles.classify_many(names, shapes, dtypes) == expected
    roles.clear_caches()
    assert [roles.classify_cached(n, s, d) for n, s, d in zip(names, shapes, dtypes)] == expected
    with_newline = names + ["a\nb/kernel"]
    assert roles.classify_many(with_newline, shapes + [(2, 2)], dtypes + ["float32"]) == \
        expected + ["weight"]
    assert roles.semantic_paths(with_newline) == [roles.semantic_path(n) for n in with_newline]


def test_checkpoint_numbers_by_pattern_follow_the_rule():
    rng = random.Random(1)
    parts = ["ckpt", "-", "_", ".", "epoch", "e", "weights", "model", "0.42", "cp", "fc", "LSTM",
             ".h5", ".weights.h5", ".index", ".hdf5", "step", "٣", "v", "/", "\\", "x", "e-3"]
    naming.clear_caches()
    for _ in range(5000):
        name = "".join(rng.choice(parts + [str(rng.randint(0, 3000)), f"0{rng.randint(0, 99)}"])
                       for _ in range(rng.randint(1, 7)))
        stem = naming.strip_suffix(name.replace("\\", "/").rsplit("/", 1)[-1])
        assert naming.checkpoint_number(name) == naming._number_in(stem), name


def test_natural_key_orders_as_digit_runs_compared_as_numbers():
    import re

    def reference(name: str) -> tuple:
        parts = re.split(r"(\d+)", name.lower())
        return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p)

    rng = random.Random(2)
    parts = ["ckpt", "-", "_", ".", "a", "A", "0", "00", "7", "12", "x", "weights.", "b"]
    names = ["".join(rng.choice(parts) for _ in range(rng.randint(0, 6))) for _ in range(3000)]
    for x, y in zip(names, reversed(names)):
        assert (naming.natural_key(x) < naming.natural_key(y)) == (reference(x) < reference(y))
        assert (naming.natural_key(x) == naming.natural_key(y)) == (reference(x) == reference(y))


def test_object_tree_lists_numbered_children_in_natural_order(tf, tmp_path):
    from ckpt_gui.core.vartree import build_tree

    layers = [{"kernel": tf.Variable(np.ones((2, 2), np.float32)),
               "bias": tf.Variable(np.zeros(2, np.float32))} for _ in range(12)]
    tf.train.Checkpoint(layers=layers).write(str(tmp_path / "ck"))
    tree = build_tree(scan_directory(str(tmp_path)).checkpoints[0])
    model = tree.root.children[0]
    group = model.children[0]
    assert (model.name, group.name) == ("Model", "layers")
    assert [c.name for c in group.children] == [str(i) for i in range(12)]  # not 0, 1, 10, 11, 2
    assert [c.index for c in group.children] == list(range(12))
    assert [c.name for c in group.children[3].children] == ["bias", "kernel"]
    assert tree.model_params == 12 * 6


def test_slots_worked_out_once_per_run_and_alike_in_every_checkpoint(tf, tmp_path):
    """A Keras model trained with Adam, saved by CheckpointManager: every checkpoint's slots are
    attached (from one decoding of the run's object graph), as a checkpoint alone gets them."""
    import keras

    from ckpt_gui.core.model import BIAS, OPTIMIZER, WEIGHT

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    x, y = np.ones((8, 4), np.float32), np.zeros((8, 2), np.float32)
    step = tf.Variable(0, dtype=tf.int64)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model, optimizer=model.optimizer, step=step),
        str(tmp_path / "run"), max_to_keep=None)
    for i in range(3):
        model.fit(x, y, epochs=1, verbose=0)
        step.assign(i)
        manager.save()

    def slots(c):
        return [(v.name, v.role, v.slot_of, v.slot_name, v.model_path) for v in c.variables]

    scan = scan_directory(str(tmp_path / "run"))
    assert [c.counters["step"] for c in scan.checkpoints] == [0, 1, 2]
    assert scan.checkpoints[0]._rows is scan.checkpoints[2]._rows  # one decoding for the run
    every = [slots(c) for c in scan.checkpoints]
    assert every[0] == every[1] == every[2]
    by_name = {v.name: v for v in scan.checkpoints[1].variables}
    owners: dict[str, list[str]] = {}
    for v in by_name.values():
        if v.slot_of:
            assert v.role == OPTIMIZER and by_name[v.slot_of].shape == v.shape
            owners.setdefault(v.slot_of, []).append(v.slot_name)
    trainable = [v.name for v in by_name.values() if v.role in (WEIGHT, BIAS)]
    assert sorted(owners) == sorted(trainable) and len(trainable) == 4
    assert all(sorted(s) == ["momentum", "velocity"] for s in owners.values())

    roles.clear_caches()  # one checkpoint alone, nothing remembered: the same attachments
    (tmp_path / "alone").mkdir()
    for f in (tmp_path / "run").glob("ckpt-2.*"):
        (tmp_path / "alone" / f.name).write_bytes(f.read_bytes())
    assert slots(scan_directory(str(tmp_path / "alone")).checkpoints[0]) == every[1]


def test_a_prefix_that_says_data_is_not_taken_for_its_data_files(tf, tmp_path):
    v = tf.Variable(np.arange(4, dtype=np.float32))
    prefix = tf.train.Checkpoint(v=v).write(str(tmp_path / "my.data-set"))
    (tmp_path / "my.data-set.meta").write_bytes(b"graph")  # a TF1 graph beside it
    scan = scan_directory(str(tmp_path))
    c = scan.checkpoint("my.data-set")
    assert c.status == "ok" and scan.orphans == []
    assert sorted(f.name for f in c.files) == sorted(
        ["my.data-set.index", "my.data-set.data-00000-of-00001", "my.data-set.meta"])
    np.testing.assert_array_equal(read_tensor(c, "v/.ATTRIBUTES/VARIABLE_VALUE"), np.arange(4))
    assert prefix.endswith("my.data-set")


def test_damaged_indexes_read_the_same_through_fast_and_careful_paths(wide, monkeypatch):
    """Bytes flipped anywhere in a big index: the numpy decoder, the fast block walk and the
    layout reuse give what the careful one-by-one paths give, or the same kind of error."""
    prefix, _ = wide
    pristine = bundle.read_file(prefix + ".index")

    def outcome(buf: bytes):
        try:
            return _columns(bundle.index_from_bytes(buf))
        except bundle.BundleError:
            return "BundleError"

    rng = random.Random(3)
    damaged = []
    for _ in range(150):
        buf = bytearray(pristine)
        for _ in range(rng.choice([1, 1, 2, 8])):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        damaged.append(bytes(buf))
    bundle.clear_caches()
    bundle.index_from_bytes(pristine)  # a layout to be reused where it may be
    fast = [outcome(buf) for buf in damaged]
    monkeypatch.setattr(entrydecode, "VECTOR_MIN", 10**9)
    monkeypatch.setattr(bundle, "_FAST_BLOCK", 10**12)
    careful = []
    for buf in damaged:
        bundle.clear_caches()  # no layout to reuse either
        careful.append(outcome(buf))
    assert fast == careful
    assert "BundleError" in careful and any(c != "BundleError" for c in careful)


def test_a_footer_pointing_nowhere_unused_does_not_spoil_layout_reuse(tf, tmp_path):
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(step=step)
    first, second = ckpt.write(str(tmp_path / "a")), ckpt.write(str(tmp_path / "b"))
    buf = bytearray(bundle.read_file(first + ".index"))
    footer = len(buf) - bundle.FOOTER_SIZE
    _, _, at = bundle._handle(buf[footer:])  # the metaindex handle: never read
    index_handle = bytes(buf[footer + at:footer + bundle.FOOTER_SIZE - 8]).rstrip(b"\0")
    handles = _varint(10**9) + _varint(7) + index_handle  # metaindex far past the end
    buf[footer:footer + bundle.FOOTER_SIZE - 8] = handles.ljust(bundle.FOOTER_SIZE - 8, b"\0")
    bundle.clear_caches()
    assert _columns(bundle.index_from_bytes(bytes(buf))) == \
        _columns(bundle.parse_index(bundle.read_file(first + ".index")))
    other = bundle.read_file(second + ".index")
    assert len(other) == len(buf)
    assert _columns(bundle.index_from_bytes(other)) == _columns(bundle.parse_index(other))
