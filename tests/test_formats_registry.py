"""Formats are backends: one module each under core/formats/, reached only through the registry.

No other module of the package may know a format by its name: no ``format ==`` test, no format
name string, no format constant."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import ckpt_gui
from ckpt_gui.core import discover, formats
from ckpt_gui.core.formats import base

PACKAGE = Path(ckpt_gui.__file__).parent
FORMATS_DIR = PACKAGE / "core" / "formats"
FORMAT_MODULES = sorted(p.stem for p in FORMATS_DIR.glob("*.py")
                        if p.stem not in ("__init__", "base"))


def _outside_formats():
    for path in sorted(PACKAGE.rglob("*.py")):
        if FORMATS_DIR not in path.parents:
            yield path, path.read_text(encoding="utf-8")


def _name_literal(name: str) -> re.Pattern:
    """A format's name as a string literal. A name that is also a word ("keras": the module,
    template kind) is flagged where it is compared, "tf-v2" anywhere."""
    literal = rf"""(["']){re.escape(name)}\1"""
    if name.isidentifier():
        literal = rf"""(==|!=)\s*(["']){re.escape(name)}\2|(["']){re.escape(name)}\3\s*(==|!=)"""
    return re.compile(literal)


def test_no_format_knowledge_outside_the_formats_package():
    tests = re.compile(r"\.format (==|!=|in|not in) |\bfmt (==|!=|in|not in) ")
    constants = re.compile(r"\b(TF_V2|TF_V1|SAVEDMODEL|KERAS_H5|KERAS3_H5|KERAS_ARCHIVE|"
                           r"HDF5_FORMATS|TF_FORMATS)\b")
    literals = [_name_literal(name) for name in formats.names()]
    found = []
    for path, text in _outside_formats():
        for lineno, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            if (tests.search(code) or constants.search(code)
                    or any(p.search(code) for p in literals)):
                found.append(f"{path.relative_to(PACKAGE)}:{lineno}: {line.strip()}")
    assert found == []


def test_the_grep_finds_what_it_must():
    """The patterns above are not vacuous: they flag the lines they are meant for."""
    assert _name_literal("keras3-h5").search('kind = "keras3-h5"')
    assert _name_literal("keras").search("if c.format == 'keras':")
    assert _name_literal("savedmodel").search('"savedmodel" != kind')
    assert not _name_literal("keras").search('if "keras" in sys.modules:')
    assert not _name_literal("keras").search('PY, KERAS_FILE = "python", "keras"')


def test_every_format_module_is_registered_once():
    registered = {type(f).__module__.rsplit(".", 1)[1] for f in formats.REGISTRY}
    assert registered == set(FORMAT_MODULES)
    assert FORMAT_MODULES == ["keras3_h5", "keras_archive", "keras_dir", "keras_h5",
                              "keras_sharded", "orbax", "savedmodel", "tf_v1", "tf_v2"]
    names = formats.names()
    assert len(names) == len(set(names)) == len(formats.REGISTRY)
    for f in formats.REGISTRY:
        assert isinstance(f, base.CheckpointFormat)
        assert formats.for_name(f.name) is f
    with pytest.raises(KeyError):
        formats.for_name("no-such-format")


def test_capabilities_say_what_the_names_used_to():
    by = formats.for_name
    assert [f.name for f in formats.REGISTRY if f.named_by_state_file] == ["tf-v2", "tf-v1"]
    assert [f.name for f in formats.REGISTRY if not f.prunable] == ["savedmodel"]
    assert [f.name for f in formats.REGISTRY if f.needs_tensorflow] == ["tf-v2", "tf-v1",
                                                                        "savedmodel"]
    assert by("keras-h5").binding == base.Binding.LAYER_ORDER
    assert by("keras3-h5").binding == by("keras").binding == base.Binding.LAYER_PATHS
    assert by("keras3-sharded").binding == by("keras-dir").binding == base.Binding.LAYER_PATHS
    assert by("tf-v2").binding == by("savedmodel").binding == base.Binding.OBJECT_GRAPH
    assert [f.name for f in formats.REGISTRY if f.archive] == ["keras"]


def _write(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_recognise_claims_each_entry_once(tmp_path):
    """A hand-made listing with one checkpoint of each format (by names and magic bytes only:
    recognising reads signatures, never contents) plus entries nobody owns."""
    sstable_tail = bytes.fromhex("57fb808b247547db")   # LevelDB's table magic, little-endian
    hdf5_head = b"\x89HDF\r\n\x1a\n" + b"\0" * 8
    _write(tmp_path / "ckpt-3.index")
    _write(tmp_path / "ckpt-3.data-00000-of-00001")
    _write(tmp_path / "ckpt-3.meta")
    _write(tmp_path / "gone.data-00000-of-00001")          # no index: an orphan
    _write(tmp_path / "model.ckpt-7", b"\0" * 40 + sstable_tail)
    _write(tmp_path / "model.ckpt-7.meta")
    _write(tmp_path / "legacy.h5", hdf5_head)
    _write(tmp_path / "old_save.keras", hdf5_head)         # Keras 2 HDF5 under a .keras name
    _write(tmp_path / "noext", hdf5_head)                  # HDF5 by its magic bytes
    _write(tmp_path / "w.weights.h5", hdf5_head)
    _write(tmp_path / "best.keras", b"PK\x03\x04")
    _write(tmp_path / "exported" / "saved_model.pb")
    _write(tmp_path / "exported" / "variables" / "variables.index")
    _write(tmp_path / "exported" / "variables" / "variables.data-00000-of-00001")
    _write(tmp_path / "notes.txt")
    _write(tmp_path / "lonely.meta")                       # a graph without weights
    _write(tmp_path / "ckpt-4_temp")                       # a save in progress
    _write(tmp_path / "runs" / "ckpt-1.index")             # a folder of checkpoints

    listing = discover.list_directory(str(tmp_path))
    got = {c.name: (c.format, c.files) for c in listing.candidates}
    assert got == {
        "best.keras": ("keras", ["best.keras"]),
        "ckpt-3": ("tf-v2", ["ckpt-3.index", "ckpt-3.data-00000-of-00001", "ckpt-3.meta"]),
        "exported": ("savedmodel", ["exported/saved_model.pb",
                                    "exported/variables/variables.data-00000-of-00001",
                                    "exported/variables/variables.index"]),
        "legacy.h5": ("keras-h5", ["legacy.h5"]),
        "model.ckpt-7": ("tf-v1", ["model.ckpt-7", "model.ckpt-7.meta"]),
        "noext": ("keras-h5", ["noext"]),
        "old_save.keras": ("keras-h5", ["old_save.keras"]),
        "w.weights.h5": ("keras3-h5", ["w.weights.h5"]),
    }
    assert listing.orphans == ["ckpt-4_temp", "gone.data-00000-of-00001", "lonely.meta"]
    assert listing.subdirectories == ["runs"]
    owners = [f for c in listing.candidates for f in c.files]
    assert len(owners) == len(set(owners))


def test_prune_order_and_ownership_come_from_the_format(tmp_path):
    from ckpt_gui.core.model import CheckpointInfo

    ckpt = CheckpointInfo(name="ckpt-3", path=str(tmp_path / "ckpt-3"), format="tf-v2",
                          writer="", files=[], bytes=0, mtime=0.0, number=3)
    fmt = formats.for_name(ckpt.format)
    files = ["ckpt-3.meta", "ckpt-3.data-00001-of-00002", "ckpt-3.index",
             "ckpt-3.data-00000-of-00002"]
    assert sorted(files, key=lambda f: fmt.deletion_rank(f, ckpt)) == [
        "ckpt-3.index", "ckpt-3.data-00000-of-00002", "ckpt-3.data-00001-of-00002", "ckpt-3.meta"]
    assert [f for f in files + ["ckpt-30.index", "ckpt-3x.meta"] if fmt.owns(f, ckpt)] == files
    assert formats.for_name("savedmodel").owns("ckpt-3.index", ckpt) is False
