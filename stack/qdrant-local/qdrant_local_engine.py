"""The one owner of a qdrant-client local-mode storage directory.

Local mode (``QdrantClient(path=...)``) keeps its points in SQLite files and in
numpy arrays, is not thread-safe, and its SQLite connections refuse to be used
from a thread other than the one that opened them. So the client is created on,
and only ever touched from, a single dedicated worker thread: every operation is
submitted to that thread and therefore runs strictly one after another, while
the HTTP event loop stays free to accept and parse the next request.

Local mode accepts payload index requests but ignores them (it scans every
payload on every filtered request; only text indexes with ``scoring`` change
anything). The engine records the requested indexes in a small side file so
that ``GET /collections/{name}`` can report them in ``payload_schema`` the way
Qdrant does, including ``is_tenant``, which has no effect on storage here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from pydantic_core import to_jsonable_python
from qdrant_client import QdrantClient

log = logging.getLogger("qdrant-local.engine")

T = TypeVar("T")

# Written next to local mode's own meta.json; local mode ignores unknown files.
PAYLOAD_INDEX_FILE = "pantheon_payload_indexes.json"

# Local mode warns (through `warnings`) on every payload index request that the
# index does nothing. The engine says so once in its own log instead.
warnings.filterwarnings("ignore", message="Payload indexes have no effect in the local Qdrant")


class LocalEngine:
    """Runs qdrant-client local mode on one thread; see the module docstring."""

    def __init__(self, storage_dir: str) -> None:
        self.storage_dir = os.path.abspath(storage_dir)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qdrant-local")
        self._client: QdrantClient | None = None
        # collection name -> field name -> the field_schema as JSON, as requested
        self._payload_indexes: dict[str, dict[str, Any]] = {}
        self._warned_about_indexes = False

    async def open(self) -> None:
        await self.run(self._open_on_worker)

    def _open_on_worker(self) -> None:
        os.makedirs(self.storage_dir, exist_ok=True)
        # Raises RuntimeError when another process holds the storage lock.
        self._client = QdrantClient(path=self.storage_dir)
        self._payload_indexes = self._load_payload_indexes()
        # Indexes of collections deleted while the file was not updated (a crash
        # between the two writes) must not reappear.
        existing = {c.name for c in self._client.get_collections().collections}
        self._payload_indexes = {k: v for k, v in self._payload_indexes.items() if k in existing}

    async def close(self) -> None:
        if self._client is not None:
            await self.run(self._client.close)
            self._client = None
        self._executor.shutdown(wait=True)

    async def run(self, operation: Callable[..., T], *args: Any) -> T:
        """Runs ``operation(*args)`` on the engine thread, after any queued ones."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, operation, *args)

    @property
    def client(self) -> QdrantClient:
        """Only for use inside functions passed to ``run``."""
        if self._client is None:
            raise RuntimeError("the local Qdrant engine is not open")
        return self._client

    # --- payload index registry (runs on the engine thread, like everything else)

    def record_payload_index(self, collection: str, field: str, schema: Any) -> None:
        self._payload_indexes.setdefault(collection, {})[field] = to_jsonable_python(schema, exclude_none=True)
        self._save_payload_indexes()
        if not self._warned_about_indexes:
            self._warned_about_indexes = True
            log.info(
                "payload indexes are recorded and reported, but local mode scans payloads "
                "instead of using them (is_tenant included)"
            )

    def forget_payload_index(self, collection: str, field: str) -> None:
        if self._payload_indexes.get(collection, {}).pop(field, None) is not None:
            self._save_payload_indexes()

    def forget_collection_indexes(self, collection: str) -> None:
        if self._payload_indexes.pop(collection, None) is not None:
            self._save_payload_indexes()

    def payload_indexes(self, collection: str) -> dict[str, Any]:
        return dict(self._payload_indexes.get(collection, {}))

    def _index_file(self) -> str:
        return os.path.join(self.storage_dir, PAYLOAD_INDEX_FILE)

    def _load_payload_indexes(self) -> dict[str, dict[str, Any]]:
        try:
            with open(self._index_file(), encoding="utf-8") as handle:
                loaded = json.load(handle)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            log.warning("ignoring unreadable %s: %s", PAYLOAD_INDEX_FILE, error)
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _save_payload_indexes(self) -> None:
        # Replace atomically so a crash mid-write never leaves a truncated file.
        fd, tmp_path = tempfile.mkstemp(dir=self.storage_dir, prefix=".payload-indexes-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self._payload_indexes, handle)
        os.replace(tmp_path, self._index_file())
