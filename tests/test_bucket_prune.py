"""Prune in a bucket (issue 14): the same plan and result as on disk, the state file written
first (one PUT of its whole text), each checkpoint's index deleted before its data (one request
each), no trash (``--permanent`` required), and a server stopped half way leaves a folder
TensorFlow reads. Real servers on 127.0.0.1 (tests/_buckets.py) and fsspec's memory://."""
from __future__ import annotations

import json
import shutil
import urllib.parse

import pytest

from _buckets import S3Server, s3_filesystem, upload
from ckpt_gui.core import remote
from test_buckets import gcs_server, orbax_steps_in_bucket, run, s3_server, store  # noqa: F401

SAVES = [f"ckpt-{i}" for i in range(1, 6)]
DATA = ".data-00000-of-00001"


@pytest.fixture(scope="module")
def manager_folder(tmp_path_factory, tf):
    """A tf.train.CheckpointManager's folder of five saves (max_to_keep=5)."""
    folder = tmp_path_factory.mktemp("manager") / "run"
    ckpt = tf.train.Checkpoint(step=tf.Variable(0), w=tf.Variable(tf.ones([3, 4])))
    manager = tf.train.CheckpointManager(ckpt, str(folder), max_to_keep=5)
    for step in range(5):
        ckpt.step.assign(step)
        manager.save()
    return folder


def names_in(fs, url) -> list[str]:
    return sorted(p.rsplit("/", 1)[1] for p in fs.find(url))


def tf_view(tf, fs, url, tmp_path):
    """tf.train.get_checkpoint_state of the bucket's folder, downloaded as it is now:
    (its entries, its latest), names relative."""
    local = tmp_path / "downloaded"
    shutil.rmtree(local, ignore_errors=True)
    local.mkdir()
    for name in names_in(fs, url):
        (local / name).write_bytes(fs.cat_file(f"{url}/{name}"))
    state = tf.train.get_checkpoint_state(str(local))
    entries = [p.rsplit("/", 1)[1] for p in state.all_model_checkpoint_paths]
    for entry in entries:     # every checkpoint it names is whole
        assert {entry + ".index", entry + DATA} <= set(names_in(fs, url)), entry
        assert tf.train.load_checkpoint(str(local / entry)).get_tensor(
            "w/.ATTRIBUTES/VARIABLE_VALUE").shape == (3, 4)
    return entries, state.model_checkpoint_path.rsplit("/", 1)[1]


def writes(server) -> list[tuple[str, str]]:
    """("write" | "delete", object name) of each request that changed the bucket, in order
    (the name of a GCS multipart upload is in its body: None)."""
    out = []
    for h in server.log.snapshot():
        if h.method == "PUT":
            out.append(("write", h.path.rsplit("/", 1)[1]))
        elif h.method == "POST":
            name = urllib.parse.parse_qs(h.query).get("name", [None])[0]
            out.append(("write", name and name.rsplit("/", 1)[1]))
        elif h.method == "DELETE":
            out.append(("delete", h.path.rsplit("/", 1)[1]))
    return out


def test_prune_in_a_bucket_leaves_what_a_local_prune_leaves_in_its_order(
        store, manager_folder, tmp_path, capsys, tf):
    fs, url, server = store
    upload(fs, manager_folder, url)
    local = tmp_path / "local"
    shutil.copytree(manager_folder, local)
    if server is not None:
        server.log.clear()
    code, out, err = run(capsys, "prune", url, "--keep-last", "2", "--permanent", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["deleted"], doc["kept"], doc["latest"]) == (SAVES[:3], SAVES[3:], "ckpt-5")
    assert doc["to_trash"] is False and doc["files"] == [
        n + ext for n in SAVES[:3] for ext in (".index", DATA)]
    code, _, err = run(capsys, "prune", str(local), "--keep-last", "2", "--permanent")
    assert code == 0, err
    assert names_in(fs, url) == sorted(p.name for p in local.iterdir())
    assert fs.cat_file(f"{url}/checkpoint") == (local / "checkpoint").read_bytes()
    assert tf_view(tf, fs, url, tmp_path) == (SAVES[3:], "ckpt-5")
    if server is not None:
        written = "checkpoint" if url.startswith("s3:") else None
        assert writes(server) == [("write", written)] + [
            ("delete", n + ext) for n in SAVES[:3] for ext in (".index", DATA)]


def test_a_dry_run_in_a_bucket_deletes_nothing_and_without_permanent_it_is_refused(
        store, manager_folder, capsys):
    fs, url, server = store
    upload(fs, manager_folder, url)
    before = {n: fs.cat_file(f"{url}/{n}") for n in names_in(fs, url)}
    code, out, err = run(capsys, "prune", url, "--keep-last", "2", "--permanent", "--dry-run",
                         "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["deleted"], doc["latest"], doc["dry_run"]) == (SAVES[:3], "ckpt-5", True)
    for flags in ((), ("--dry-run",), ("--json",)):
        code, out, err = run(capsys, "prune", url, "--keep-last", "2", *flags)
        assert (code, out, err) == (
            2, "", f"ckpt-inspect: {url}: a bucket has no trash: use --permanent\n")
    assert {n: fs.cat_file(f"{url}/{n}") for n in names_in(fs, url)} == before
    if server is not None:
        assert writes(server)[len(before):] == []    # (the upload's own writes only)


def test_a_server_stopped_in_the_middle_of_a_prune_is_one_line_and_leaves_a_folder_tf_reads(
        s3_server, manager_folder, tmp_path, capsys, monkeypatch, tf):  # noqa: F811
    """A server of its own, stopped just before the fourth DELETE (ckpt-2's data, its index
    gone): exit 2, one line; the state file names only ckpt-4 and ckpt-5, both whole; ckpt-2's
    data is left without its index (what a local interruption leaves), ckpt-3 untouched."""
    server = S3Server().start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
    monkeypatch.setenv("CKPT_GUI_STORAGE_TIMEOUT", "5")
    remote.begin()
    fs = s3_filesystem(server)
    fs.mkdir("stopped")
    url = "s3://stopped/run"
    upload(fs, manager_folder, url)
    deletes = []
    remove = remote.remove_object

    def stop_before_the_fourth(object_url):
        deletes.append(object_url)
        if len(deletes) == 4:
            server.stop()
        return remove(object_url)
    monkeypatch.setattr(remote, "remove_object", stop_before_the_fourth)
    try:
        code, out, err = run(capsys, "prune", url, "--keep-last", "2", "--permanent")
    finally:
        monkeypatch.undo()
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith(f"ckpt-inspect: {url}: cannot connect to "
                                                    "the server")
    assert "deleted: ckpt-1; not deleted: ckpt-2, ckpt-3;" in err
    again = S3Server().start()   # moto keeps its buckets in the process: the same objects
    try:
        fs = s3_filesystem(again)
        left = names_in(fs, url)
        assert left == sorted(["checkpoint", "ckpt-2" + DATA, "ckpt-3.index", "ckpt-3" + DATA,
                               "ckpt-4.index", "ckpt-4" + DATA, "ckpt-5.index", "ckpt-5" + DATA])
        assert tf_view(tf, fs, url, tmp_path) == (SAVES[3:], "ckpt-5")
    finally:
        again.stop()


def test_orbax_steps_in_a_bucket_are_pruned_object_by_object_the_commit_first(
        s3_server, tmp_path, capsys):  # noqa: F811
    """orbax.checkpoint.CheckpointManager's three steps, uploaded: a bucket has no rename, so
    each old step's objects go one DELETE each, its commit_success.txt and
    _CHECKPOINT_METADATA before anything else of it (an interruption leaves a step Orbax does
    not list on GCS); what is left is the kept step, whole, and the scan lists it alone, ok."""
    local, fs = orbax_steps_in_bucket(s3_server, tmp_path, "orbax-prune", 3)
    url = "s3://orbax-prune/run"
    steps = sorted((p.name for p in local.iterdir()), key=int)
    assert len(steps) == 3
    objects = {s: sorted(p.relative_to(local).as_posix() for p in (local / s).rglob("*")
                         if p.is_file()) for s in steps}
    s3_server.log.clear()
    code, out, err = run(capsys, "prune", url, "--keep-last", "1", "--permanent")
    assert code == 0, err
    assert sorted(p.split("/run/", 1)[1] for p in fs.find(url)) == objects[steps[-1]]
    deletes = [h.path.split("/run/", 1)[1] for h in s3_server.log.snapshot()
               if h.method == "DELETE"]
    assert sorted(deletes) == objects[steps[0]] + objects[steps[1]]
    for step in steps[:2]:
        mine = [d for d in deletes if d.startswith(step + "/")]
        assert mine[:2] == [f"{step}/commit_success.txt", f"{step}/_CHECKPOINT_METADATA"]
        items_commits = [o for o in objects[step] if o.count("/") == 2
                         and o.endswith("/commit_success.txt")]
        assert items_commits and sorted(mine[2:2 + len(items_commits)]) == items_commits
        assert len(mine) > 2 + len(items_commits)
    code, out, err = run(capsys, "scan", url, "--json")
    assert code == 0, err
    assert [(c["name"], c["status"]) for c in json.loads(out)["checkpoints"]] == [
        (steps[-1], "ok")]
