"""Benchmark of checkpoint folders in a bucket (issue 14), counted by the server itself.

    .venv/bin/python benchmarks/bench_buckets.py            # 300 checkpoints, a 100 MB tensor
    .venv/bin/python benchmarks/bench_buckets.py --small    # 50 checkpoints, a 20 MB tensor

An S3 server (moto, tests/_buckets.py) runs in this process on 127.0.0.1 and counts every
request and body byte it serves, and the most requests in flight at once; ``--latency S`` holds
each response back S seconds, as a far-away bucket would (serial requests then show).

(a) scan of a bucket folder of N checkpoints of a Keras model trained with Adam, as
    CheckpointManager saves them: bytes fetched against the sum of their index files, their
    counters and the state file (goal: <= 1.1x), requests, and how many were in flight at once;
(b) ``show`` of one 100 MB tensor: bytes fetched against its size plus its checkpoint's index
    plus 1 MB (goal: within);
and for both the baseline a user has today, side by side: download the folder, then read it
locally (bytes and wall time).
"""
from __future__ import annotations

import argparse
import io
import math
import os
import sys
import tempfile
import time
from contextlib import redirect_stdout

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

from _buckets import S3Server, isolate_env, s3_filesystem, upload  # noqa: E402

isolate_env()
LATENCY = 0.0  # seconds the server holds back each measured response (--latency)


def _counter_bytes(scan) -> int:
    """The stored bytes of every counter the scan found (what it must fetch from data files)."""
    from ckpt_gui.core import bundle

    total = 0
    for c in scan.checkpoints:
        index = bundle.read_index(c.path + ".index")
        total += sum(e.size for e in index.entries.values() if e.shape == ()
                     and e.dtype.startswith("int"))
    return total


def _measure(server, fn):
    """(seconds, requests, body bytes of objects, body bytes of listings, most in flight) of
    fn(), counted by the server."""
    from ckpt_gui.core import remote

    remote.begin()
    remote._cache.clear()  # a first open: nothing is cached yet
    server.log.clear()
    server.log.latency = LATENCY
    t0 = time.perf_counter()
    try:
        fn()
    finally:
        server.log.latency = 0.0
    seconds = time.perf_counter() - t0
    hits = server.log.snapshot()
    listed = sum(h.body_bytes for h in hits if _is_listing(h))
    return (seconds, len(hits), sum(h.body_bytes for h in hits) - listed, listed,
            server.log.max_in_flight)


def _is_listing(hit) -> bool:
    """A LIST of a bucket (GET /bucket?list-type=2...), not an object's GET."""
    return hit.method == "GET" and "/" not in hit.path.strip("/")


def _download(fs, url: str, local: str) -> None:
    fs.get(url.split("://", 1)[1] + "/", local + "/", recursive=True)


def _row(what, measured) -> str:
    seconds, requests, objects, listings, in_flight = measured
    return (f"{what:<42} {seconds:>7.2f}s {requests:>9} {objects / 1e6:>10.3f} MB "
            f"{listings / 1e6:>10.3f} MB {in_flight:>9}")


def bench_scan(tf, server, fs, n: int) -> list[str]:
    from bench_engine import make_trained

    from ckpt_gui.core.scan import REMOTE_WORKERS, scan_directory

    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "run")
        t0 = time.perf_counter()
        make_trained(tf, local, n)
        upload(fs, local, "s3://bench/run")
        print(f"generated and uploaded {n} checkpoints in {time.perf_counter() - t0:.1f} s")
        scan = scan_directory(local)
        index_bytes = sum(os.path.getsize(c.path + ".index") for c in scan.checkpoints)
        state_bytes = os.path.getsize(os.path.join(local, "checkpoint"))
        needed = index_bytes + state_bytes + _counter_bytes(scan)
        ours = _measure(server, lambda: scan_directory("s3://bench/run"))
        copy = os.path.join(tmp, "copy")
        theirs = _measure(
            server, lambda: (_download(fs, "s3://bench/run", copy), scan_directory(copy)))
        largest = max(scan.checkpoints, key=lambda c: os.path.getsize(c.path + ".index"))
        single = _measure(server, lambda: fs.cat_file(
            "bench/run/" + os.path.basename(largest.path) + ".index"))[0]
    ratio = ours[2] / needed
    rounds = math.ceil(ours[1] / REMOTE_WORKERS)   # at the scan's concurrency
    return [f"(a) scan of {n} checkpoints: indexes {index_bytes} B + state file {state_bytes} B "
            f"+ counters = {needed} B needed",
            _row("    scan of the bucket folder", ours),
            _row("    baseline: download, then scan locally", theirs),
            f"    object bytes fetched / needed = {ratio:.3f}x (goal <= 1.1x: "
            f"{'met' if ratio <= 1.1 else 'MISSED'}); all bytes vs the baseline "
            f"{(ours[2] + ours[3]) / (theirs[2] + theirs[3]):.3f}x, time "
            f"{ours[0] / theirs[0]:.2f}x",
            f"    wall time / (slowest single request {single * 1000:.0f} ms x {rounds} rounds of "
            f"{REMOTE_WORKERS}) = {ours[0] / (single * rounds):.2f}x (goal <= 1.5x; telling only "
            f"with --latency, where a request's time is the bucket's, not the local server's)"]


def bench_show(tf, server, fs, n_floats: int) -> list[str]:
    from bench_engine import make_big

    from ckpt_gui.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "big")
        os.mkdir(local)
        prefix = make_big(tf, local, n_floats)
        upload(fs, local, "s3://bench/big")
        index_bytes = os.path.getsize(prefix + ".index")
        tensor = n_floats * 4
        argv = ["show", "s3://bench/big", "big", "big/.ATTRIBUTES/VARIABLE_VALUE", "--json"]
        out = io.StringIO()
        with redirect_stdout(out):
            ours = _measure(server, lambda: main(argv))
        assert '"count": %d' % n_floats in out.getvalue(), out.getvalue()[:500]
        copy = os.path.join(tmp, "copy")
        with redirect_stdout(io.StringIO()):
            theirs = _measure(server, lambda: (_download(fs, "s3://bench/big", copy),
                                               main(["show", copy, *argv[2:]])))
    fetched = ours[2] + ours[3]
    allowed = tensor + index_bytes + (1 << 20)
    return [f"(b) show of one {tensor / 1e6:.0f} MB tensor: allowed {allowed} B "
            f"(tensor + index {index_bytes} B + 1 MB)",
            _row("    show from the bucket", ours),
            _row("    baseline: download, then show locally", theirs),
            f"    all bytes fetched - tensor = {fetched - tensor} B (goal <= index + 1 MB: "
            f"{'met' if fetched <= allowed else 'MISSED'}); time vs the baseline "
            f"{ours[0] / theirs[0]:.2f}x"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds the server holds back each response")
    args = parser.parse_args()
    from ckpt_gui.core.tfrt import tf as get_tf

    tf = get_tf()
    server = S3Server().start()
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint_url
    try:
        fs = s3_filesystem(server)
        fs.mkdir("bench")
        global LATENCY
        LATENCY = args.latency
        lines = []
        n, floats = (50, 5_000_000) if args.small else (300, 25_000_000)
        lines += bench_scan(tf, server, fs, n)
        lines += bench_show(tf, server, fs, floats)
    finally:
        server.stop()
    print(f"\n=== summary (moto S3 on 127.0.0.1, latency {args.latency:g} s per response) ===")
    print(f"{'':<42} {'time':>8} {'requests':>9} {'objects':>13} {'listings':>13} "
          f"{'in flight':>9}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
