"""Checkpoint folders in buckets: ``s3://``, ``gs://`` and any other filesystem fsspec knows
(``memory://``, ...), read by byte ranges. Only storage.py calls this module.

Why it looks the way it does:
- Each directory is listed once (names, sizes, kinds, ETag/generation) and every later stat of
  its files is answered from that listing: a scan of 300 checkpoints costs one LIST.
- Small immutable reads (index files, counters, state files) are kept in a cache keyed by the
  object's ETag/generation, so a second open of the same folder fetches nothing it has.
- Every call carries a deadline (``CKPT_GUI_STORAGE_TIMEOUT``, 30 s): the clients' own retry
  policies can wait many minutes on a hung or vanished server. A connection-level failure
  (timeout, refused, no credentials) is remembered as the ``outage`` of that filesystem, so the
  rest of a scan fails at once instead of waiting for each file, and the scan reports it once.
- Credentials and endpoints are the clients' own: ``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, the
  AWS key variables and config files for s3fs; ``STORAGE_EMULATOR_HOST`` and Google's
  application-default credentials for gcsfs. With no AWS credentials at all, S3 is read
  anonymously (public buckets).
"""
from __future__ import annotations

import os
import posixpath
import stat as stat_module
import threading
from collections import OrderedDict
from dataclasses import dataclass



def timeout() -> float:
    """Seconds any one call to a store may take (``CKPT_GUI_STORAGE_TIMEOUT``, default 30)."""
    try:
        return float(os.environ.get("CKPT_GUI_STORAGE_TIMEOUT", "30"))
    except ValueError:
        return 30.0

PART = 8 << 20           # a large range is fetched as parts of this size, concurrently
BLOCK = 64 << 10         # h5py and zipfile read through a block cache of this block size
_CACHE_BYTES = 128 << 20  # the immutable-object cache's budget
_CACHE_ITEM = 4 << 20     # objects (or ranges) above this are never cached
_ENV_KEYS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_ACCESS_KEY_ID",
             "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
             "STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "CKPT_GUI_STORAGE_TIMEOUT")


class Unreachable(OSError):
    """The store cannot be reached at all (timeout, connection refused, no credentials)."""


@dataclass(frozen=True)
class Entry:
    """One object or folder of a listing."""
    name: str
    is_dir: bool
    size: int
    tag: str      # ETag or generation: changes whenever the object is rewritten
    mtime: float


def split(url: str) -> tuple[str, str]:
    """(protocol, the path in its filesystem) of ``url``."""
    protocol, _, rest = url.partition("://")
    return protocol.lower(), rest.rstrip("/")


_lock = threading.Lock()
_filesystems: dict[tuple, object] = {}
_outages: dict[str, str] = {}          # protocol -> why it cannot be reached
_listings: dict[str, dict[str, Entry]] = {}   # url of a folder -> its entries by name
_cache: OrderedDict[tuple, bytes] = OrderedDict()
_cached_bytes = 0


def filesystem(protocol: str):
    """The fsspec filesystem of ``protocol``, built with a deadline and short retries, one per
    set of credential/endpoint settings in the environment."""
    key = (protocol, *(os.environ.get(k) for k in _ENV_KEYS))
    with _lock:
        fs = _filesystems.get(key)
        if fs is None:
            fs = _filesystems[key] = _make_filesystem(protocol)
        return fs


def _make_filesystem(protocol: str):
    import fsspec

    if protocol in ("s3", "s3a"):
        import s3fs

        fs = s3fs.S3FileSystem(
            anon=not _aws_credentials(), skip_instance_cache=True, use_listings_cache=False,
            config_kwargs={"connect_timeout": min(5, timeout()), "read_timeout": timeout(),
                           "retries": {"max_attempts": 2, "mode": "standard"},
                           "max_pool_connections": 32})
        fs.retries = 2  # s3fs retries botocore's retries five times by default
        return fs
    if protocol in ("gs", "gcs"):
        # the plain JSON-API class: the default one also asks a gRPC API for each bucket's
        # layout, which emulators (and anonymous access) cannot answer
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(requests_timeout=timeout(), skip_instance_cache=True,
                             use_listings_cache=False)
    return fsspec.filesystem(protocol, skip_instance_cache=True)


def _aws_credentials() -> bool:
    """Whether botocore's credential chain finds any credentials (keys, profile, SSO, ...)."""
    import botocore.session

    try:
        return botocore.session.get_session().get_credentials() is not None
    except Exception:  # an unknown profile: let the client say so on its first call
        return True


def begin() -> None:
    """Start an operation afresh: folders are listed again and a past outage is forgotten
    (the objects' cache stays: it is keyed by their ETag/generation)."""
    with _lock:
        _listings.clear()
        _outages.clear()


def outage(url: str) -> str | None:
    """Why the store of ``url`` could not be reached during this operation, or None."""
    return _outages.get(split(url)[0])


def _call(url: str, method: str, *args, deadline: float | None = None, retry: bool = False,
          **kwargs):
    """fs.method(*args, **kwargs) with a deadline; a connection-level failure becomes
    Unreachable (and the store's outage: later calls fail at once, unless ``retry``)."""
    protocol = split(url)[0]
    known = _outages.get(protocol)
    if known is not None and not retry:
        raise Unreachable(known)
    fs = filesystem(protocol)
    if hasattr(fs, "loop"):  # an async filesystem: its sync methods take a deadline
        kwargs["timeout"] = deadline or timeout()
    try:
        return getattr(fs, method)(*args, **kwargs)
    except PermissionError:
        if getattr(fs, "anon", False) is True:  # read anonymously: nothing private will do
            _outages[protocol] = ANONYMOUS_DENIED
            raise Unreachable(ANONYMOUS_DENIED) from None
        raise
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise
    except Exception as e:
        reason = unreachable_reason(e)
        if reason is None:
            raise
        _outages[protocol] = reason
        raise Unreachable(reason) from None


ANONYMOUS_DENIED = ("access denied: no AWS credentials were found, so the bucket was read "
                    "anonymously (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)")


def unreachable_reason(e: BaseException) -> str | None:
    """The sentence for a failure to reach the store at all, or None for another error."""
    names = {c.__name__ for c in type(e).__mro__}
    text = str(e).split("\n")[0]
    if names & {"FSTimeoutError", "TimeoutError", "ReadTimeoutError", "ConnectTimeoutError",
                "ServerTimeoutError"}:
        return f"the server did not answer within {timeout():g} s"
    if names & {"NoCredentialsError", "PartialCredentialsError"}:
        return ("no credentials were found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                "AWS_PROFILE)")
    if names & {"DefaultCredentialsError", "RefreshError"}:
        return f"no usable Google credentials ({text})"
    if "ProfileNotFound" in names:
        return text
    if names & {"EndpointConnectionError", "ClientConnectorError", "ConnectionError",
                "ServerDisconnectedError", "ClientPayloadError", "ClientOSError"}:
        return f"cannot connect to the server ({text})"
    return None


def reason_of(e: BaseException) -> str:
    """The part after a file's name in a one-sentence refusal."""
    if isinstance(e, Unreachable):
        return f"cannot be read: {e}"
    if isinstance(e, FileNotFoundError):
        return "is missing"
    if isinstance(e, PermissionError) or "Forbidden" in str(e) or "AccessDenied" in str(e):
        return "cannot be read (access denied)"
    text = str(e).split("\n")[0] or type(e).__name__
    return f"cannot be read ({text})"


def folder_problem(url: str, e: BaseException) -> str:
    """Why the folder ``url`` cannot be listed, in a few words."""
    if isinstance(e, Unreachable):
        return str(e)
    text = str(e)
    if "bucket" in text.lower() and ("not exist" in text or "NoSuchBucket" in text):
        return "no such bucket"
    if isinstance(e, FileNotFoundError):
        return "no such directory"
    if isinstance(e, PermissionError) or "Forbidden" in text or "AccessDenied" in text:
        return "access denied"
    return text.split("\n")[0] or type(e).__name__


# --- listings ---------------------------------------------------------------------------------

def listing(url: str) -> dict[str, Entry]:
    """The entries of folder ``url`` by name (one LIST, then remembered for this operation).
    FileNotFoundError when it holds nothing."""
    url = url.rstrip("/")
    got = _listings.get(url)
    if got is not None:
        return got
    entries = _list(url)
    _listings[url] = entries
    return entries


def fresh_listing(url: str) -> dict[str, Entry]:
    """The entries of folder ``url`` listed now: neither remembered nor refused for a past
    outage (a watcher's poll sees a server that is back; the outage is then forgotten)."""
    entries = _list(url.rstrip("/"), retry=True)
    _outages.pop(split(url)[0], None)
    return entries


def _list(url: str, retry: bool = False) -> dict[str, Entry]:
    """One LIST of folder ``url``: its entries by name."""
    protocol, path = split(url)
    kwargs = {"refresh": True} if _refreshes(protocol) else {}
    raw = _call(url, "ls", path, detail=True, retry=retry, **kwargs)
    if len(raw) == 1 and raw[0]["name"].rstrip("/") == path and raw[0].get("type") == "file":
        raise NotADirectoryError(url)  # (an object: some stores list it as itself)
    entries = {}
    for d in raw:
        name = posixpath.basename(d["name"].rstrip("/"))
        if not name or d["name"].rstrip("/") == path:
            continue  # the folder itself (some stores list it)
        is_dir = d.get("type") == "directory"
        entries[name] = Entry(name, is_dir, int(d.get("size") or 0), _tag(d), _mtime(d))
    if not entries and not raw:
        raise FileNotFoundError(url)
    return entries


def find(url: str) -> dict[str, int]:
    """Every object under folder ``url`` at any depth, by its path relative to ``url``: its size
    (fsspec's ``find``: a listing without delimiter, paged by the store, never cached)."""
    path = split(url)[1].strip("/")
    found = _call(url, "find", path, detail=True)
    return {name.strip("/")[len(path) + 1:]: int(d.get("size") or 0)
            for name, d in found.items()
            if d.get("type") != "directory" and name.strip("/").startswith(path + "/")}


def _refreshes(protocol: str) -> bool:
    return protocol not in ("memory", "file", "local")


def _tag(d: dict) -> str:
    return str(d.get("ETag") or d.get("generation") or d.get("etag") or d.get("mtime")
               or d.get("created") or "")


def _mtime(d: dict) -> float:
    value = d.get("LastModified") or d.get("updated") or d.get("mtime") or d.get("created")
    if value is None:
        return 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        from datetime import datetime

        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
    return value.timestamp() if hasattr(value, "timestamp") else 0.0


def entry(url: str) -> Entry | None:
    """The entry of ``url`` in its folder's listing, or None when there is none."""
    parent, name = url.rstrip("/").rsplit("/", 1)
    if parent.endswith(":/") or url.rstrip("/") in _listings:  # a bucket, a folder listed
        return Entry(name, True, 0, "", 0.0)
    try:
        return listing(parent).get(name)
    except FileNotFoundError:
        return None


def stat(url: str) -> os.stat_result:
    """An os.stat_result of ``url`` from its folder's listing (size, mtime, file or folder);
    FileNotFoundError when it is not there."""
    e = entry(url)
    if e is None:
        raise FileNotFoundError(url)
    mode = (stat_module.S_IFDIR | 0o555) if e.is_dir else (stat_module.S_IFREG | 0o444)
    return os.stat_result((mode, 0, 0, 1, 0, 0, e.size, int(e.mtime), int(e.mtime),
                           int(e.mtime)))


# --- reading ----------------------------------------------------------------------------------

class RemoteFile:
    """An object opened for range reads: what a file descriptor is for a local file."""

    def __init__(self, url: str, found: Entry):
        self.url, self.size, self.tag = url, found.size, found.tag

    def read(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (never past the end)."""
        size = max(0, min(size, self.size - offset))
        if size == 0:
            return b""
        key = (self.url, self.tag, offset, size)
        got = _cache.get(key)
        if got is not None:
            return got
        if size <= PART:
            data = _call(self.url, "cat_file", split(self.url)[1], start=offset,
                         end=offset + size)
        else:
            data = b"".join(self._parts(offset, size))
        _remember(key, data)
        return data

    def _parts(self, offset: int, size: int) -> list[bytes]:
        """A large range as concurrent requests of PART bytes each."""
        starts = list(range(offset, offset + size, PART))
        ends = [min(s + PART, offset + size) for s in starts]
        path = split(self.url)[1]
        return _call(self.url, "cat_ranges", [path] * len(starts), starts, ends,
                     deadline=timeout() * max(1, len(starts) // 8), on_error="raise")

    def readinto(self, offset: int, out: memoryview) -> int:
        """Fill ``out`` from ``offset``; the bytes filled (fewer at the end)."""
        filled, size = 0, max(0, min(len(out), self.size - offset))
        for part in self._parts(offset, size) if size else ():
            out[filled:filled + len(part)] = part
            filled += len(part)
        return filled

    def file_object(self):
        """A seekable file object reading through a block cache (h5py, zipfile)."""
        protocol, path = split(self.url)
        return filesystem(protocol).open(path, "rb", block_size=BLOCK, cache_type="blockcache",
                                         size=self.size)


def _remember(key: tuple, data: bytes) -> None:
    global _cached_bytes
    if len(data) > _CACHE_ITEM or not key[1]:
        return
    with _lock:
        if key in _cache:
            return
        _cache[key] = data
        _cached_bytes += len(data)
        while _cached_bytes > _CACHE_BYTES:
            _, old = _cache.popitem(last=False)
            _cached_bytes -= len(old)


def open_remote(url: str) -> RemoteFile:
    """``url`` opened for reading: FileNotFoundError, IsADirectoryError, or Unreachable."""
    found = entry(url)
    if found is None:
        raise FileNotFoundError(url)
    if found.is_dir:
        raise IsADirectoryError(url)
    return RemoteFile(url, found)


# --- writing (prune) -------------------------------------------------------------------------

def put_whole(url: str, data: bytes) -> None:
    """Write the small object ``url`` whole, in one request (an S3 PUT, a GCS upload): a
    reader sees the old text or the new one, never a part. Its folder is listed again next."""
    _call(url, "pipe_file", split(url)[1], data)
    _listings.pop(url.rstrip("/").rsplit("/", 1)[0], None)


def remove_object(url: str) -> None:
    """Delete the one object ``url`` in a call of its own (``fs.rm`` of several objects sends
    them as one batch or concurrently: their order would be lost). FileNotFoundError when it
    is not there, on stores that say so."""
    _call(url, "rm_file", split(url)[1])
    parent, _, name = url.rstrip("/").rpartition("/")
    _listings.get(parent, {}).pop(name, None)


def write_reason(e: BaseException, verb: str) -> str:
    """The part after an object's name when it cannot be written or deleted."""
    if isinstance(e, Unreachable):
        return f"cannot be {verb}: {e}"
    if isinstance(e, PermissionError) or "Forbidden" in str(e) or "AccessDenied" in str(e):
        return f"cannot be {verb} (access denied)"
    text = str(e).split("\n")[0] or type(e).__name__
    return f"cannot be {verb} ({text})"


def tensorstore_kvstore(url: str) -> dict:
    """The tensorstore kvstore spec of folder ``url`` (Orbax steps are read by tensorstore):
    its s3 driver takes the AWS credential variables and ``AWS_ENDPOINT_URL``; its gcs driver
    Google's credentials (an emulator: ``TENSORSTORE_GCS_HTTP_URL``)."""
    protocol, path = split(url)
    bucket, _, key = path.partition("/")
    prefix = key + "/" if key else ""
    if protocol in ("s3", "s3a"):
        spec = {"driver": "s3", "bucket": bucket, "path": prefix}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            spec["endpoint"] = endpoint
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            spec["aws_region"] = region
        return spec
    if protocol in ("gs", "gcs"):
        return {"driver": "gcs", "bucket": bucket, "path": prefix}
    raise ValueError(f"Orbax steps are read in s3:// and gs:// buckets only, not in {protocol}://"
                     " (tensorstore reads them)")
