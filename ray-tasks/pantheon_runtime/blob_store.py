"""Step outputs too large for Temporal's history, kept by content on disk.

A step whose output (as JSON) is larger than the worker's inline threshold
returns a reference instead: ``{"$blob": "sha256:<hex>", "bytes": n,
"preview": "<first characters>"}``. History, the pipeline's result and the
Web UI carry only that; the JSON itself is written once, named by its hash,
under ``PANTHEON_BLOB_DIR`` (a directory every Ray node of the host shares, and
the CLI reads: ``pantheon output``). A step given a reference among its
arguments (a ``$step`` of a step that returned one) is given the value it
stands for: the runner resolves references before it calls the function, and
applies the reference's ``path`` (a ``$step`` path into a referenced output).

Content addressing makes a write idempotent (a retried step writes the same
file) and a reference unforgeable in practice: naming a blob takes knowing its
content's hash. Writes go to a temporary file renamed into place, so a reader
never sees half a blob.

Retention (issue #13): ``put`` given the workflow that wrote the output also
pins the blob for it, a file ``pins/<hex[:2]>/<hex>/<sha256 of the workflow id>``
holding the id. The collector (``pantheon blobs gc``; core/blob-retention.ts
decides, stack/blob-store.ts acts) keeps a blob while any workflow that pins it
is open, and removes it a retention period after the last of them closed. The
pin is written before the blob's existence is checked, and a blob already
stored is touched (its mtime is its last use): a collector removing the blob
at that moment sees the new pin or the new mtime and puts the blob back, or
has already moved it away, and then this write stores it again.

Stores: a directory (``PANTHEON_BLOB_DIR``, the embedded default: every Ray
node of one host shares it), or an S3-compatible bucket for clusters whose
nodes share no disk, named by URL (``s3://bucket/prefix``). A worker chooses
the store its steps write (``PANTHEON_BLOB_URL``, passed with each step like
the size threshold, so the Ray side needs no restart to change it); the Ray
side brings the credentials, from its own environment, by the AWS SDK's usual
chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``,
``AWS_ENDPOINT_URL_S3`` for a store other than AWS's, such as MinIO). The
bucket holds the directory's layout under the prefix; what a file's mtime is
to the directory, an object's LastModified is to the bucket: reusing a stored
blob copies it onto itself to renew it, and a pin is written again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional

BLOB_DIR_ENV = "PANTHEON_BLOB_DIR"
MAX_BLOB_BYTES_ENV = "PANTHEON_MAX_BLOB_BYTES"
DEFAULT_MAX_BLOB_BYTES = 256 * 1024 * 1024
REF_KEY = "$blob"
PINS_DIR = "pins"
TEMP_PREFIX = ".incoming-"
PREVIEW_CHARS = 200
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
_REF_KEYS = {REF_KEY, "bytes", "preview"}


class BlobNotFound(Exception):
    """A reference names a blob this host's store does not hold."""


class BlobTooLarge(Exception):
    """An output is larger than the store takes."""


def is_ref(value: Any) -> bool:
    """A blob reference exactly as the store makes it (optionally with a ``path``)."""
    if not isinstance(value, dict) or not isinstance(value.get(REF_KEY), str):
        return False
    keys = set(value)
    return (
        _REF_KEYS <= keys
        and keys <= _REF_KEYS | {"path"}
        and _DIGEST.match(value[REF_KEY]) is not None
        and isinstance(value["bytes"], int)
        and isinstance(value.get("path", ""), str)
    )


def blob_key(hexdigest: str) -> str:
    """Where a blob lives, relative to the store's root (the layout stack/blob-store.ts reads)."""
    return f"{hexdigest[:2]}/{hexdigest}"


def pin_key(hexdigest: str, workflow_id: str) -> str:
    """Where the pin of a blob for a workflow lives, relative to the store's root."""
    named = hashlib.sha256(workflow_id.encode("utf-8")).hexdigest()
    return f"{PINS_DIR}/{hexdigest[:2]}/{hexdigest}/{named}"


class BlobStore:
    """The store's rules (content addressing, pins, size limit, references); a directory keeps the bytes."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def where(self) -> str:
        return str(self.root)

    def pin_path(self, hexdigest: str, workflow_id: str) -> Path:
        return self.root / pin_key(hexdigest, workflow_id)

    def _renew_or_write(self, key: str, data: bytes) -> None:
        """Marks a stored object as used now (its retention starts again), or stores it."""
        target = self.root / key
        try:
            # A collector removing it at this moment sees the new mtime, or has moved it away
            # and the except writes it again.
            os.utime(target)
        except FileNotFoundError:
            _write_atomically(target, data)

    def _read(self, key: str) -> Optional[bytes]:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, text: str, workflow_id: Optional[str] = None) -> dict:
        """Stores a JSON text, pinned for ``workflow_id`` when given; returns its reference."""
        data = text.encode("utf-8")
        if len(data) > self.max_bytes:
            raise BlobTooLarge(f"{len(data)} bytes, above the blob store's {self.max_bytes}-byte limit")
        hexdigest = hashlib.sha256(data).hexdigest()
        if workflow_id is not None:
            # The pin first, renewed like the blob: a collector checks a pin it is about to remove is unchanged.
            self._renew_or_write(pin_key(hexdigest, workflow_id), workflow_id.encode("utf-8"))
        self._renew_or_write(blob_key(hexdigest), data)
        return {REF_KEY: f"sha256:{hexdigest}", "bytes": len(data), "preview": text[:PREVIEW_CHARS]}

    def get_text(self, digest: str) -> str:
        match = _DIGEST.match(digest)
        if match is None:
            raise BlobNotFound(f"{digest!r} is not a blob reference")
        data = self._read(blob_key(match.group(1)))
        if data is None:
            raise BlobNotFound(f"blob {digest} is not in the store at {self.where()}")
        return data.decode("utf-8")

    def resolve(self, value: Any) -> Any:
        """``value`` with every reference in it replaced by what it stands for."""
        if is_ref(value):
            resolved = json.loads(self.get_text(value[REF_KEY]))
            for part in filter(None, value.get("path", "").split(".")):
                if not isinstance(resolved, dict) or part not in resolved:
                    return None
                resolved = resolved[part]
            return resolved
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        return value


def _write_atomically(target: Path, data: bytes) -> None:
    """Writes ``target`` through a temporary file renamed into place: readers see all of it or nothing."""
    for attempt in range(3):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX)
        except FileNotFoundError:
            # A collector removed the (empty) pin directory between the mkdir and here: make it again.
            if attempt == 2:
                raise
            continue
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return


class S3BlobStore(BlobStore):
    """The same store in an S3-compatible bucket, under a prefix (boto3, credentials from the environment)."""

    def __init__(self, client: Any, bucket: str, prefix: str, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> None:
        super().__init__(Path(prefix or "."), max_bytes)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _is_missing(self, err: Exception) -> bool:
        code = str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("NoSuchKey", "404", "NotFound")

    def _renew_or_write(self, key: str, data: bytes) -> None:
        # A pin is a few bytes: written again. A blob may be large: copied onto itself on the server
        # (S3 takes a self-copy only when something changes: the metadata), which renews its
        # LastModified; if a collector removed it meanwhile, the copy finds nothing and it is written.
        full = self._key(key)
        if len(data) > 4096:
            try:
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=full,
                    CopySource={"Bucket": self.bucket, "Key": full},
                    Metadata={"pantheon-renewed": "1"},
                    MetadataDirective="REPLACE",
                    ContentType="application/json",
                )
                return
            except Exception as err:  # noqa: BLE001 — botocore's ClientError, checked below
                if not self._is_missing(err):
                    raise
        self.client.put_object(Bucket=self.bucket, Key=full, Body=data, ContentType="application/json")

    def _read(self, key: str) -> Optional[bytes]:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except Exception as err:  # noqa: BLE001 — botocore's ClientError, checked below
            if self._is_missing(err):
                return None
            raise


S3_SCHEME = "s3://"
_s3_stores: dict[tuple[str, int], S3BlobStore] = {}


def s3_client(env: Mapping[str, str] = os.environ) -> Any:
    """A boto3 S3 client from the environment; path-style addressing when an endpoint other than AWS's is named."""
    import boto3
    from botocore.config import Config

    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        config=Config(
            s3={"addressing_style": "path" if endpoint else "auto"},
            retries={"max_attempts": 5, "mode": "standard"},
        ),
    )


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` as (bucket, prefix)."""
    if not url.startswith(S3_SCHEME) or not url[len(S3_SCHEME) :].split("/", 1)[0]:
        raise ValueError(f"{url!r} is not an s3://bucket[/prefix] URL")
    bucket, _, prefix = url[len(S3_SCHEME) :].partition("/")
    return bucket, prefix.strip("/")


def configured_store(url: Optional[str] = None, env: Mapping[str, str] = os.environ) -> Optional[BlobStore]:
    """The store a step writes: the one named by ``url`` (``s3://…``, chosen by the worker), else this
    host's directory (``PANTHEON_BLOB_DIR``), else None: outputs then stay inline."""
    max_bytes = int(env.get(MAX_BLOB_BYTES_ENV) or DEFAULT_MAX_BLOB_BYTES)
    if url:
        # One client per store and process: making a boto3 client costs tens of milliseconds.
        store = _s3_stores.get((url, max_bytes))
        if store is None:
            bucket, prefix = parse_s3_url(url)
            store = _s3_stores[(url, max_bytes)] = S3BlobStore(s3_client(env), bucket, prefix, max_bytes)
        return store
    root = env.get(BLOB_DIR_ENV)
    if not root:
        return None
    return BlobStore(Path(root), max_bytes)
