"""Local S3 and GCS servers on 127.0.0.1 that count every request and body byte they serve
(the bucket tests and benchmarks/bench_buckets.py start them; nothing leaves the machine).

- ``S3Server``: moto's ``ThreadedMotoServer`` (what s3fs's own test-suite uses), with a request
  handler that records each response.
- ``GCSServer``: gcp-storage-emulator (pure Python, in memory), same recording.  Its stock server
  is a single-threaded ``HTTPServer``; ``threaded=True`` swaps in ``ThreadingHTTPServer`` so that
  concurrent fetches really are served concurrently (see REPORT.md for why that matters).

Both record into a ``RequestLog``: one ``Hit`` per HTTP response, with the request's method, path,
query, ``Range`` header, status and the number of body bytes written on the wire (headers
excluded).  Counting happens at the socket writer, so it sees exactly what any client (s3fs,
gcsfs, tensorstore, TensorFlow) was sent.

``isolate_env()`` must run before any cloud client library is imported: google-auth reads its
metadata-server variables at import time.

Run ``python _buckets.py s3|gcs PORT [LATENCY]`` to serve in the foreground: the fault tests
need a server in another process that they can kill in the middle of a scan.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import threading
import urllib.parse
from http.server import HTTPServer, ThreadingHTTPServer

# Dummy credentials and every "where is the cloud" knob pointed at loopback or switched off.
# Endpoint variables (AWS_ENDPOINT_URL, STORAGE_EMULATOR_HOST) are set per server by the fixtures.
SAFE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # botocore: no IMDS lookup for credentials/region
    "AWS_CONFIG_FILE": "/dev/null",  # ignore ~/.aws/config of whoever runs the tests
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "NO_GCE_CHECK": "true",  # google-auth and gcsfs compare with the lower-case string "true"!
    "GCE_METADATA_HOST": "127.0.0.1:9",  # should anything still ask, it asks a closed local port
    "GCE_METADATA_IP": "127.0.0.1:9",
    "GCE_METADATA_ROOT": "127.0.0.1:9",  # TensorFlow's and tensorstore's name for it
    "GOOGLE_CLOUD_PROJECT": "test-project",
    # gcsfs >= 2025.x: GCSFileSystem is by default ExtendedGcsFileSystem, which asks the Storage
    # Control gRPC API for every bucket's layout; an emulator cannot answer, each call waits for
    # a 30-60 s timeout and the answer UNKNOWN is not cached.  "false" gives the plain JSON-API class.
    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
}


def isolate_env(environ=os.environ) -> None:
    """Install SAFE_ENV (call before importing boto/google libraries)."""
    environ.update(SAFE_ENV)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Hit:
    """One HTTP response as the server sent it."""

    method: str
    path: str  # URL-decoded path, no query
    query: str
    range: str | None  # the request's Range header
    status: int
    body_bytes: int = 0


class RequestLog:
    """Thread-safe list of Hits, with the totals a benchmark asks for."""

    def __init__(self):
        self._lock = threading.Lock()
        self.hits: list[Hit] = []
        self.latency = 0.0  # seconds each response is held back: makes serial vs concurrent fetches visible
        self.in_flight = 0
        self.max_in_flight = 0  # most responses being prepared at once since clear()

    def add(self, hit: Hit) -> Hit:
        with self._lock:
            self.hits.append(hit)
        return hit

    def clear(self) -> None:
        with self._lock:
            self.hits.clear()
            self.max_in_flight = self.in_flight

    def snapshot(self) -> list[Hit]:
        with self._lock:
            return list(self.hits)

    @property
    def requests(self) -> int:
        return len(self.snapshot())

    @property
    def bytes(self) -> int:
        return sum(h.body_bytes for h in self.snapshot())

    def summary(self) -> str:
        hits = self.snapshot()
        by_method: dict[str, int] = {}
        for h in hits:
            by_method[h.method] = by_method.get(h.method, 0) + 1
        return f"{len(hits)} requests {by_method}, {sum(h.body_bytes for h in hits)} body bytes"


class _CountingWriter:
    """Wraps a handler's wfile; bytes written after end_headers() go to the current Hit."""

    def __init__(self, raw, handler):
        self._raw, self._handler = raw, handler

    def write(self, data):
        hit = self._handler._hit
        if hit is not None and self._handler._body_started:
            hit.body_bytes += len(data)
        return self._raw.write(data)

    def __getattr__(self, name):
        return getattr(self._raw, name)


class CountingHandlerMixin:
    """Mixin for any http.server.BaseHTTPRequestHandler subclass (werkzeug's included)."""

    request_log: RequestLog  # set on the concrete subclass

    def setup(self):
        super().setup()
        self._hit, self._body_started = None, False
        self.wfile = _CountingWriter(self.wfile, self)

    def parse_request(self):
        # Called once the request line has arrived (an idle keep-alive connection is not in flight).
        log = self.request_log
        with log._lock:
            log.in_flight += 1
            log.max_in_flight = max(log.max_in_flight, log.in_flight)
        self._in_flight = True
        return super().parse_request()

    def handle_one_request(self):
        try:
            super().handle_one_request()
        finally:
            if getattr(self, "_in_flight", False):
                self._in_flight = False
                with self.request_log._lock:
                    self.request_log.in_flight -= 1

    def send_response(self, code, message=None):
        if self.request_log.latency:
            import time

            time.sleep(self.request_log.latency)
        # send_error() may come before the request line was parsed: no path, command or headers yet.
        url = urllib.parse.urlsplit(getattr(self, "path", "") or "")
        headers = getattr(self, "headers", None)
        self._body_started = False
        self._hit = self.request_log.add(
            Hit(getattr(self, "command", None) or "?", urllib.parse.unquote(url.path), url.query,
                headers.get("Range") if headers else None, code)
        )
        super().send_response(code, message)

    def end_headers(self):
        super().end_headers()
        self._body_started = self.command != "HEAD"


def counting_handler(base, log: RequestLog):
    return type("Counting" + base.__name__, (CountingHandlerMixin, base), {"request_log": log})


class S3Server:
    """moto in server mode on 127.0.0.1:port (0 = any free port), counting what it serves."""

    def __init__(self, port: int = 0):
        from moto.server import ThreadedMotoServer
        from moto.moto_server.werkzeug_app import MotoRequestHandler

        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request
        self.log = RequestLog()
        handler = counting_handler(MotoRequestHandler, self.log)

        class _Server(ThreadedMotoServer):
            # Same as ThreadedMotoServer._server_entry, with our request handler.
            def _server_entry(self):
                from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
                from werkzeug.serving import make_server

                app = DomainDispatcherApplication(create_backend_app)
                self._server = make_server(self._ip_address, self._port, app, True, request_handler=handler)
                self._server_ready_event.set()
                self._server.serve_forever()

        self._server = _Server(ip_address="127.0.0.1", port=port, verbose=False)

    def start(self) -> "S3Server":
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Drop every bucket (moto's own reset endpoint) and the request log."""
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(self.endpoint_url + "/moto-api/reset", method="POST")).read()
        self.log.clear()


class GCSServer:
    """gcp-storage-emulator in memory on 127.0.0.1:port, counting what it serves."""

    def __init__(self, port: int = 0, threaded: bool = True, default_bucket: str | None = None):
        from gcp_storage_emulator import server as gse

        self.log = RequestLog()
        handler = counting_handler(gse.RequestHandler, self.log)
        server_class = ThreadingHTTPServer if threaded else HTTPServer
        self._port = port or free_port()  # the emulator cannot report a port chosen by the OS

        class _API(gse.APIThread):
            # Same as gse.APIThread.run, with our handler and (optionally) a threading server.
            def run(self):
                import functools

                self._httpd = server_class((self._host, self._port), functools.partial(handler, self._storage))
                self._httpd.daemon_threads = True
                self.is_running.set()
                self._httpd.serve_forever()

        self._server = gse.create_server("127.0.0.1", self._port, in_memory=True, default_bucket=default_bucket)
        self._server._api = _API("127.0.0.1", self._port, self._server._storage, daemon=True)

    def start(self) -> "GCSServer":
        self._server.start()
        self.endpoint_url = f"http://127.0.0.1:{self._port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        self._server.wipe()
        self.log.clear()


def upload(fs, local: str, url: str) -> None:
    """Copy the local folder ``local`` to ``url`` (its files, recursively), one object each."""
    from pathlib import Path

    root = Path(local)
    for p in sorted(root.rglob("*")):
        if p.is_file():
            fs.pipe_file(f"{url}/{p.relative_to(root).as_posix()}", p.read_bytes())


def s3_filesystem(server: S3Server):
    import s3fs

    return s3fs.S3FileSystem(endpoint_url=server.endpoint_url, skip_instance_cache=True,
                             use_listings_cache=False)


def gcs_filesystem(server: GCSServer):
    from gcsfs.core import GCSFileSystem

    return GCSFileSystem(endpoint_url=server.endpoint_url, token="anon",
                         project="test-project", skip_instance_cache=True,
                         use_listings_cache=False)


if __name__ == "__main__":
    import sys
    import time

    isolate_env()
    kind, port = sys.argv[1], int(sys.argv[2])
    srv = (S3Server if kind == "s3" else GCSServer)(port).start()
    srv.log.latency = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    print(srv.endpoint_url, flush=True)
    while True:
        time.sleep(3600)
