"""Checkpoint folders in buckets (issue 14): every verb gives the same answer for a URL as for
the local copy. Real servers on 127.0.0.1, started here: moto's S3 server and
gcp-storage-emulator (tests/_buckets.py), plus fsspec's memory:// filesystem; the environment
is isolated in conftest.py (dummy keys, no metadata servers), so no request leaves the machine."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest

from _buckets import GCSServer, S3Server, free_port, gcs_filesystem, s3_filesystem, upload
from ckpt_gui.cli import main
from ckpt_gui.core import remote

CORPUS_FOLDERS = ["tictactoe-tf2mgr-keras3opt", "supercon-gan-tf2", "foodprep-sharded2-keras-tf",
                  "churn-keras3-weights-h5", "charity-hd5f-keras-tf"]
SERVERS = Path(__file__).with_name("_buckets.py")


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server().start()
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint_url
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_server():
    server = GCSServer().start()
    os.environ["STORAGE_EMULATOR_HOST"] = server.endpoint_url
    # tensorstore (Orbax arrays): the emulator's URL, and its fixed token for tests rather
    # than a look for Google credentials (a metadata server that is not there)
    os.environ["TENSORSTORE_GCS_HTTP_URL"] = server.endpoint_url
    os.environ["GOOGLE_AUTH_TOKEN_FOR_TESTING"] = "test"
    yield server
    server.stop()


@pytest.fixture(params=["memory", "s3", "gs"])
def store(request):
    """(a client filesystem, the URL of an empty folder in a fresh bucket, the server or None)."""
    remote.begin()
    if request.param == "memory":
        fs = fsspec.filesystem("memory")
        fs.store.clear()
        fs.pseudo_dirs[:] = [""]
        yield fs, "memory://bucket/run", None
        return
    server = request.getfixturevalue("s3_server" if request.param == "s3" else "gcs_server")
    server.reset()
    fs = s3_filesystem(server) if request.param == "s3" else gcs_filesystem(server)
    fs.mkdir("bucket")
    server.log.clear()
    yield fs, f"{request.param}://bucket/run", server


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def scan_json(capsys, location, *flags) -> dict:
    code, out, err = run(capsys, "scan", str(location), "--json", *flags)
    assert code in (0, 1), err
    doc = json.loads(out)
    doc.pop("directory")
    for c in doc["checkpoints"]:
        c.pop("mtime")
    return doc


@pytest.mark.parametrize("name", CORPUS_FOLDERS)
def test_scan_and_verify_of_a_corpus_folder_in_a_bucket_equal_the_local_ones(
        store, corpus_copy, capsys, name):
    fs, url, _ = store
    local = corpus_copy(name)
    upload(fs, local, url)
    assert scan_json(capsys, url) == scan_json(capsys, local)
    verified = scan_json(capsys, url, "--verify")
    assert verified == scan_json(capsys, local, "--verify")
    assert all(c["status"] == "ok" for c in verified["checkpoints"]), verified


def test_show_and_diff_in_a_bucket_equal_the_local_ones(store, corpus_copy, capsys):
    fs, url, _ = store
    local = corpus_copy("supercon-gan-tf2")
    upload(fs, local, url)
    var = "generator/layer_with_weights-0/kernel"
    shown = [json.loads(run(capsys, "show", str(where), "latest", var, "--json")[1])
             for where in (url, local)]
    for doc in shown:
        doc.pop("seconds")
    assert shown[0] == shown[1]
    assert shown[0]["stats"]["count"] == 147 * 256
    diffs = [json.loads(run(capsys, "diff", str(where), "ckpt-1", "ckpt-5", "--json")[1])
             for where in (url, local)]
    assert json.dumps(diffs[0]).replace(url, "D") == json.dumps(diffs[1]).replace(str(local), "D")
    code, out, _ = run(capsys, "trajectory", url, var, "--json")
    assert code == 0 and json.loads(out)


def test_checkpoints_written_by_tf_and_keras_read_the_same_from_a_bucket(
        s3_server, tmp_path, capsys, tf):
    """A CheckpointManager's folder, a Keras .weights.h5 and a .keras archive, uploaded."""
    import keras
    import numpy as np

    remote.begin()
    s3_server.reset()
    fs = s3_filesystem(s3_server)
    fs.mkdir("written")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(7, name="hidden"),
                              keras.layers.Dense(2, name="out")])
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    model.fit(rng.random((8, 5)), rng.random((8, 2)), epochs=1, verbose=0)
    manager_dir = tmp_path / "tf"
    ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer, step=tf.Variable(3))
    manager = tf.train.CheckpointManager(ckpt, str(manager_dir), max_to_keep=3)
    for _ in range(2):
        manager.save()
    keras_dir = tmp_path / "keras"
    keras_dir.mkdir()
    model.save_weights(str(keras_dir / "model.weights.h5"))
    model.save(str(keras_dir / "model.keras"))
    for local in (manager_dir, keras_dir):
        url = f"s3://written/{local.name}"
        upload(fs, local, url)
        scanned = scan_json(capsys, url, "--verify")
        assert scanned == scan_json(capsys, local, "--verify")
        assert [c["status"] for c in scanned["checkpoints"]] == ["ok", "ok"]
    kernel = np.asarray(model.get_layer("hidden").kernel)
    for where in ("s3://written/keras", keras_dir):
        for name in ("model.weights.h5", "model.keras"):
            code, out, err = run(capsys, "show", str(where), name, "hidden/kernel", "--json",
                                 "--values", "35")
            assert code == 0, err
            assert np.allclose(json.loads(out)["values"], kernel.reshape(-1))


def test_a_second_scan_fetches_only_the_listing(s3_server, corpus_copy, capsys):
    """Indexes, counters and the state file are immutable objects: kept by their ETag."""
    remote.begin()
    s3_server.reset()
    fs = s3_filesystem(s3_server)
    fs.mkdir("again")
    upload(fs, corpus_copy("supercon-gan-tf2"), "s3://again/run")
    s3_server.log.clear()
    first = scan_json(capsys, "s3://again/run")
    fetched = [h for h in s3_server.log.snapshot() if h.method == "GET" and h.range]
    assert fetched and all(h.status == 206 for h in fetched)   # ranges only, never a whole file
    s3_server.log.clear()
    assert scan_json(capsys, "s3://again/run") == first
    assert [(h.method, h.range) for h in s3_server.log.snapshot()] == [("GET", None)]  # the LIST


def test_a_scan_fetches_its_checkpoints_concurrently(s3_server, corpus_copy, capsys):
    """20 checkpoints, each response held back 20 ms by the server: their indexes and counters
    are requested many at a time, not one after another."""
    remote.begin()
    s3_server.reset()
    fs = s3_filesystem(s3_server)
    fs.mkdir("many")
    upload(fs, corpus_copy("charity-hd5f-keras-tf"), "s3://many/run")
    s3_server.log.clear()
    s3_server.log.latency = 0.02
    try:
        scanned = scan_json(capsys, "s3://many/run")
    finally:
        s3_server.log.latency = 0.0
    assert len(scanned["checkpoints"]) == 20
    assert s3_server.log.max_in_flight >= 8


def test_a_missing_data_file_is_the_same_problem_as_locally(store, corpus_copy, capsys):
    fs, url, _ = store
    local = corpus_copy("tictactoe-tf2mgr-keras3opt")
    (local / "ckpt-18.data-00000-of-00001").unlink()
    upload(fs, local, url)
    scanned = scan_json(capsys, url, "--verify")
    assert scanned == scan_json(capsys, local, "--verify")
    broken = next(c for c in scanned["checkpoints"] if c["name"] == "ckpt-18")
    assert broken["status"] == "broken"
    assert any("ckpt-18.data-00000-of-00001 is missing" in p for p in broken["problems"])


@pytest.mark.parametrize("protocol", ["memory", "s3", "gs"])
def test_no_such_folder_or_bucket_is_one_line_and_exit_2(request, capsys, protocol):
    if protocol != "memory":
        request.getfixturevalue("s3_server" if protocol == "s3" else "gcs_server")
    remote.begin()
    code, out, err = run(capsys, "scan", f"{protocol}://no-such-bucket/run")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"ckpt-inspect: {protocol}://no-such-bucket/run: ")
    assert ("no such bucket" in err) if protocol == "s3" else ("no such" in err)


def test_a_private_bucket_without_credentials_says_access_denied(
        s3_server, corpus_copy, capsys, monkeypatch):
    remote.begin()
    s3_server.reset()
    fs = s3_filesystem(s3_server)
    fs.mkdir("private")
    upload(fs, corpus_copy("tictactoe-tf2mgr-keras3opt"), "s3://private/run")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    code, _, err = run(capsys, "scan", "s3://private/run")
    assert (code, err) == (2, f"ckpt-inspect: s3://private/run: {remote.ANONYMOUS_DENIED}\n")


def test_the_server_killed_in_the_middle_of_a_scan_is_one_clear_error(
        corpus_copy, capsys, monkeypatch):
    """A server in another process, answering slowly, is SIGKILLed once the first checkpoint
    is in: the scan ends within seconds with one line and exit 2, nothing hangs."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SERVERS), "s3", str(port), "0.05"],
                            stdout=subprocess.PIPE, text=True)
    try:
        endpoint = proc.stdout.readline().strip()
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("CKPT_GUI_STORAGE_TIMEOUT", "3")
        remote.begin()
        import s3fs

        fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)
        fs.mkdir("doomed")
        local = corpus_copy("charity-hd5f-keras-tf")
        upload(fs, local, "s3://doomed/run")
        from ckpt_gui.core.scan import ScanError, scan_directory

        def kill_at_first(done, total, what):
            if done == 0 and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        start = time.monotonic()
        with pytest.raises(ScanError) as caught:
            scan_directory("s3://doomed/run", progress=kill_at_first)
        assert time.monotonic() - start < 15
        assert str(caught.value).startswith("s3://doomed/run: ")
        assert "cannot connect to the server" in str(caught.value) \
            or "did not answer within 3 s" in str(caught.value)
        assert "\n" not in str(caught.value)
        code, _, err = run(capsys, "scan", "s3://doomed/run")
        assert code == 2 and err.count("\n") == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_no_request_can_leave_the_machine():
    """conftest.py's isolation: dummy keys, no metadata servers, no instance-metadata lookups."""
    assert os.environ["NO_GCE_CHECK"] == "true"
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"
    assert os.environ["GCE_METADATA_HOST"].startswith("127.0.0.1:")
    assert os.environ["AWS_SHARED_CREDENTIALS_FILE"] == "/dev/null"


CHARITY_TEMPLATE = """import keras


def build_model():
    return keras.Sequential([keras.Input((43,)), keras.layers.Dense(80, activation="relu"),
                             keras.layers.Dense(30, activation="relu"),
                             keras.layers.Dense(1, activation="sigmoid")])


def build_optimizer():
    return keras.optimizers.Adam()
"""


def test_restore_from_a_bucket_restores_what_the_local_copy_does(
        s3_server, corpus_copy, tmp_path, tf):
    """The checkpoint's tensors come by range from the bucket; the model gets the same values
    as from the local copy."""
    import numpy as np

    from ckpt_gui.core.restore.session import RestoreSession
    from ckpt_gui.core.scan import scan_directory

    remote.begin()
    s3_server.reset()
    fs = s3_filesystem(s3_server)
    fs.mkdir("restore")
    local = corpus_copy("charity-hd5f-keras-tf")
    upload(fs, local, "s3://restore/run")
    template = tmp_path / "charity.py"
    template.write_text(CHARITY_TEMPLATE)
    sessions = []
    for where in ("s3://restore/run", str(local)):
        scan = scan_directory(where)
        session = RestoreSession(scan.checkpoint(scan.latest), str(template))
        session.run(sample=False)
        sessions.append(session)
    ours, theirs = (s.report for s in sessions)
    assert ours.complete and ours.mode == theirs.mode
    assert [r.key for r in ours.restored] == [r.key for r in theirs.restored]
    assert ours.optimizer.iterations == theirs.optimizer.iterations == 80400
    weights = [s.loaded.model.weights + s.loaded.optimizer.variables for s in sessions]
    assert len(weights[0]) == len(weights[1]) > 6
    for a, b in zip(*weights):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def orbax_steps_in_bucket(server, tmp_path, bucket: str, steps: int):
    """``steps`` steps of orbax.checkpoint.CheckpointManager (tests/_orbax_writers.py, in a
    subprocess: orbax brings jax) written to tmp_path/run and uploaded to BUCKET/run of a
    freshly reset S3 or GCS server: (the local folder, the client)."""
    local = tmp_path / "run"
    subprocess.run([sys.executable, str(Path(__file__).with_name("_orbax_writers.py")),
                    "manager", str(local), str(steps)], check=True, capture_output=True,
                   timeout=600)
    remote.begin()
    server.reset()
    gcs = isinstance(server, GCSServer)
    fs = gcs_filesystem(server) if gcs else s3_filesystem(server)
    fs.mkdir(bucket)
    upload(fs, local, f"{'gs' if gcs else 's3'}://{bucket}/run")
    return local, fs


def test_an_orbax_step_in_gcs_without_its_commit_file_is_not_committed(gcs_server, tmp_path,
                                                                       capsys):
    """On GCS Orbax does not rename a step into place: a step is final while it holds
    commit_success.txt (written last; prune deletes it first). Without it the step is listed,
    broken, and the one before it is the latest, as Orbax's CheckpointManager would say."""
    _, fs = orbax_steps_in_bucket(gcs_server, tmp_path, "orbax-gcs", 3)
    url = "gs://orbax-gcs/run"
    whole = scan_json(capsys, url)
    assert [(c["name"], c["status"]) for c in whole["checkpoints"]] == [
        ("0", "ok"), ("10", "ok"), ("20", "ok")]
    assert whole["latest"] == "20"
    fs.rm(f"{url}/20/commit_success.txt")
    remote.begin()   # (a new listing, as a refresh makes)
    scanned = scan_json(capsys, url)
    assert [(c["name"], c["status"]) for c in scanned["checkpoints"]] == [
        ("0", "ok"), ("10", "ok"), ("20", "broken")]
    assert scanned["latest"] == "10"
    problems = scanned["checkpoints"][2]["problems"]
    assert any("not committed" in p and "commit_success.txt" in p for p in problems)


def test_orbax_steps_in_a_bucket_read_through_tensorstore_like_the_local_ones(
        s3_server, tmp_path, capsys):
    """orbax.checkpoint.CheckpointManager's steps (OCDBT + zarr3), uploaded: tensorstore's own
    s3 kvstore reads them (AWS_ENDPOINT_URL), with the same scan, verify and values."""
    local, _ = orbax_steps_in_bucket(s3_server, tmp_path, "orbax", 2)
    scanned = scan_json(capsys, "s3://orbax/run", "--verify")
    assert scanned == scan_json(capsys, local, "--verify")
    assert [(c["name"], c["status"]) for c in scanned["checkpoints"]] == [("0", "ok"),
                                                                           ("10", "ok")]
    name = scanned["checkpoints"][1]["variables"][0]["name"]
    shown = [json.loads(run(capsys, "show", str(where), "10", name, "--json")[1])
             for where in ("s3://orbax/run", local)]
    assert shown[0]["stats"]["count"] > 0
    assert (shown[0]["stats"], shown[0]["values"]) == (shown[1]["stats"], shown[1]["values"])



def test_a_tensor_streamed_in_chunks_comes_range_by_range_from_the_bucket(
        store, corpus_copy, capsys, monkeypatch):
    """Above core.chunked's threshold show reads pieces: in a bucket each piece is a range
    request of the data file, and the answer is the local one."""
    from ckpt_gui.core import chunked

    monkeypatch.setattr(chunked, "STREAM_ABOVE", 64 << 10)
    monkeypatch.setattr(chunked, "CHUNK_BYTES", 32 << 10)
    fs, url, server = store
    local = corpus_copy("supercon-gan-tf2")
    upload(fs, local, url)
    var = "generator/layer_with_weights-0/kernel"   # 147 x 256 float32: 147 KB
    shown = []
    for where in (url, local):
        code, out, err = run(capsys, "show", str(where), "ckpt-3", var, "--json")
        assert code == 0, err
        shown.append(json.loads(out))
        shown[-1].pop("seconds")
    assert shown[0] == shown[1] and shown[0]["read_in_chunks"]
    if server is not None:
        pieces = [h for h in server.log.snapshot() if h.path.endswith("ckpt-3.data-00000-of-00001")
                  and h.body_bytes > 1024]
        assert len(pieces) >= 147 * 256 * 4 // (32 << 10)
        assert all(h.body_bytes <= 32 << 10 for h in pieces)
