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


class BlobStore:
    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def _path(self, hexdigest: str) -> Path:
        return self.root / hexdigest[:2] / hexdigest

    def pin_path(self, hexdigest: str, workflow_id: str) -> Path:
        """Where the pin of a blob for a workflow lives (the layout stack/blob-store.ts reads)."""
        named = hashlib.sha256(workflow_id.encode("utf-8")).hexdigest()
        return self.root / PINS_DIR / hexdigest[:2] / hexdigest / named

    def put(self, text: str, workflow_id: Optional[str] = None) -> dict:
        """Stores a JSON text, pinned for ``workflow_id`` when given; returns its reference."""
        data = text.encode("utf-8")
        if len(data) > self.max_bytes:
            raise BlobTooLarge(f"{len(data)} bytes, above the blob store's {self.max_bytes}-byte limit")
        hexdigest = hashlib.sha256(data).hexdigest()
        if workflow_id is not None:
            pin = self.pin_path(hexdigest, workflow_id)
            try:
                # Touched, like the blob: a collector checks a pin it is about to remove is unchanged.
                os.utime(pin)
            except FileNotFoundError:
                _write_atomically(pin, workflow_id.encode("utf-8"))
        target = self._path(hexdigest)
        try:
            # Reusing a stored blob is a use: its retention starts again, and a collector that is
            # removing it sees the new mtime (or has moved it away, and the except writes it again).
            os.utime(target)
        except FileNotFoundError:
            _write_atomically(target, data)
        return {REF_KEY: f"sha256:{hexdigest}", "bytes": len(data), "preview": text[:PREVIEW_CHARS]}

    def get_text(self, digest: str) -> str:
        match = _DIGEST.match(digest)
        if match is None:
            raise BlobNotFound(f"{digest!r} is not a blob reference")
        try:
            return self._path(match.group(1)).read_text("utf-8")
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} is not in the store at {self.root}") from None

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


def configured_store(env: Mapping[str, str] = os.environ) -> Optional[BlobStore]:
    """The store this process was given (``PANTHEON_BLOB_DIR``), or None: outputs then stay inline."""
    root = env.get(BLOB_DIR_ENV)
    if not root:
        return None
    return BlobStore(Path(root), int(env.get(MAX_BLOB_BYTES_ENV) or DEFAULT_MAX_BLOB_BYTES))
