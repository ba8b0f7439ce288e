"""Qdrant's own engine, in process: one qdrant-edge shard per collection.

qdrant-edge (PyPI ``qdrant-edge-py``) is Qdrant's storage and search engine
(segments, write-ahead log, payload indexes, filtering planned by the engine,
HNSW) without its server. This module owns a storage folder of such shards:

    <storage>/.lock                            held (flock) while a server owns the folder
    <storage>/collections/<name>/collection.json  the create request, as Qdrant reports it back
    <storage>/collections/<name>/shard/        the qdrant-edge shard (segments + WAL)

Every operation runs on one dedicated thread, strictly one after another:
qdrant-edge holds the GIL while it works, so more threads would only contend,
and one writer keeps each request's effects whole. The HTTP event loop stays
free to parse the next request meanwhile.

Indexing: a shard keeps new points in an appendable segment searched exactly;
payload indexes (``is_tenant`` keyword on the project, for the memory store)
make filtered reads touch only the matching points. Building HNSW blocks the
engine while it runs (qdrant-edge's optimiser is synchronous), so it runs only
when asked: at start with ``--optimize`` or through ``optimize()``.

Memory: a collection's shard is opened when a request first uses it, not at
start, and closed again once no request has used it for ``IDLE_CLOSE_S``
(checked whenever another collection is used). Opening a shard reads its
mapped payload-index pages whole, ~25-35 MB per collection however few points
it holds, and LightRAG keeps one collection per graph workspace: with every
collection open the server's idle RSS grew with the number of projects and
agents (bench/README.md). Reopening costs a load (~0.2 s at 100,000 points).

Speed: each shard searches with one thread (``DEFAULT_SEARCH_THREADS``), and a
shard that grew by a quarter since it was opened is reopened (``_maybe_reopen``):
qdrant-edge searches points it loaded from disk about twice as fast as points
written since it opened them.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import qdrant_edge as edge
from pydantic_core import to_jsonable_python
from qdrant_client.http import models

import qdrant_local_convert as convert

log = logging.getLogger("qdrant-local.engine")

T = TypeVar("T")

COLLECTIONS_DIR = "collections"
CONFIG_FILE = "collection.json"
SHARD_DIR = "shard"
LOCK_FILE = ".lock"

# Qdrant refuses these in collection names; here they would also escape the storage folder.
_BAD_NAME = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


class CollectionNotFound(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class CollectionExists(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class StorageLocked(RuntimeError):
    pass


def check_collection_name(name: str) -> str:
    if not name or len(name) > 255 or name in (".", "..") or name.startswith(".") or _BAD_NAME.search(name):
        raise ValueError(f"Wrong input: collection name {name!r} is not allowed")
    return name


@dataclass
class Collection:
    name: str
    path: str
    # None while closed: opened on first use (EdgeEngine.get), closed after IDLE_CLOSE_S unused.
    shard: edge.EdgeShard | None
    # The create request as JSON (what GET /collections/{name} reports as config.params).
    config: dict[str, Any]
    # Expected dense dimension per vector name ("" for the unnamed vector).
    dimensions: dict[str, int]
    # Points in the shard when it was opened, and points written since: see EdgeEngine._maybe_reopen.
    points_at_open: int = 0
    written_since_open: int = 0
    last_used: float = 0.0


def _dimensions(config: dict[str, Any]) -> dict[str, int]:
    vectors = config.get("vectors") or {}
    if "size" in vectors:
        return {"": int(vectors["size"])}
    return {name: int(params["size"]) for name, params in vectors.items()}


# Threads of each shard's search pool. qdrant-edge sizes it from the machine's CPUs (8 threads on
# the 2-core bench machine), but a shard here is mostly one appendable segment, which one thread
# searches. One thread measured 4.3-4.7 ms p50 and 5.8-6.7 ms p99 for a filtered search of
# 100,000 points against 5.1-5.2 / 8.5-10.2 ms with the default, in process (bench/README.md);
# through the whole recall path the two were within the machine's noise. Several segments
# (after --optimize) search in parallel with more.
DEFAULT_SEARCH_THREADS = 1

# See EdgeEngine._maybe_reopen: below this many new points, fresh points cost little to search.
REOPEN_MIN_WRITES = 10_000

# A collection no request used for this long is closed (its shard's pages leave RSS); see the module
# docstring. Long enough that an agent's collection stays open between the steps of a pipeline.
IDLE_CLOSE_S = 600.0


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Gives the memory glibc's allocator keeps free back to the system (``malloc_trim``).

    Closing a shard frees its in-memory structures (payload indexes, id tracker: ~100 MB at
    100,000 points), but the allocator keeps the freed pages for later; after a reopen or a
    deleted collection that memory stays resident unless handed back. A few milliseconds."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class EdgeEngine:
    """The collections of one storage folder; see the module docstring."""

    def __init__(
        self,
        storage_dir: str,
        search_threads: int = DEFAULT_SEARCH_THREADS,
        idle_close_s: float = IDLE_CLOSE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage_dir = os.path.abspath(storage_dir)
        self.search_threads = search_threads
        self.idle_close_s = idle_close_s
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qdrant-edge")
        self._collections: dict[str, Collection] = {}
        self._lock_fd: int | None = None

    # --- lifecycle

    async def open(self, optimize: bool = False) -> None:
        await self.run(self._open, optimize)

    def _open(self, optimize: bool) -> None:
        os.makedirs(os.path.join(self.storage_dir, COLLECTIONS_DIR), exist_ok=True)
        fd = os.open(os.path.join(self.storage_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageLocked(
                f"Storage folder {self.storage_dir} is already accessed by another instance of the memory server"
            ) from None
        self._lock_fd = fd
        root = os.path.join(self.storage_dir, COLLECTIONS_DIR)
        for entry in sorted(os.listdir(root)):
            path = os.path.join(root, entry)
            if entry.startswith("."):
                # A create or delete that did not finish: never a visible collection.
                shutil.rmtree(path, ignore_errors=True)
                continue
            with open(os.path.join(path, CONFIG_FILE), encoding="utf-8") as handle:
                config = json.load(handle)
            self._collections[entry] = Collection(entry, path, None, config, _dimensions(config))
            if optimize:
                self._optimize(self.get(entry))
        log.info("found %d collections (each opened when first used)", len(self._collections))

    def _load_shard(self, path: str, stored: dict[str, Any]) -> edge.EdgeShard:
        """Opens a shard with this server's search threads; its stored config comes along, since
        qdrant-edge takes a config on load only whole (and checks it against the segments)."""
        try:
            config = convert.edge_config(models.CreateCollection.model_validate(stored), self.search_threads)
            return edge.EdgeShard.load(path, config)
        except Exception as error:  # noqa: BLE001 - a config this version reads differently: open the shard as it is
            log.warning("opening %s with its own settings (default search threads): %s", path, error)
            return edge.EdgeShard.load(path)

    async def close(self) -> None:
        await self.run(self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        for collection in self._collections.values():
            self._close_shard(collection)
        self._collections.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    async def run(self, operation: Callable[..., T], *args: Any) -> T:
        """Runs ``operation(*args)`` on the engine thread, after any queued ones."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, operation, *args)

    # --- collections (engine thread only, like everything below)

    def get(self, name: str) -> Collection:
        """The collection, its shard open (opened now if it was closed); closes the idle others."""
        collection = self._collections.get(name)
        if collection is None:
            raise CollectionNotFound(name)
        now = self._clock()
        collection.last_used = now
        if collection.shard is None:
            started = time.perf_counter()
            self._open_shard(collection)
            log.info(
                "opened %s (%d points) in %.2f s", name, collection.points_at_open, time.perf_counter() - started
            )
        self._close_idle(now, keep=collection)
        return collection

    def _open_shard(self, collection: Collection) -> None:
        collection.shard = self._load_shard(os.path.join(collection.path, SHARD_DIR), collection.config)
        collection.points_at_open = collection.shard.info().points_count
        collection.written_since_open = 0

    def _close_idle(self, now: float, keep: Collection) -> None:
        """Closes the shards (but `keep`'s) no request has used for `idle_close_s`, then hands their memory
        back once."""
        closed = 0
        for other in self._collections.values():
            if other is not keep and other.shard is not None and now - other.last_used >= self.idle_close_s:
                self._close_shard(other)
                closed += 1
                log.info("closed %s after %.0f s unused", other.name, now - other.last_used)
        if closed:
            release_freed_memory()

    def is_open(self, name: str) -> bool:
        collection = self._collections.get(name)
        return collection is not None and collection.shard is not None

    @staticmethod
    def _close_shard(collection: Collection) -> None:
        if collection.shard is not None:
            collection.shard.flush()
            collection.shard.close()
            collection.shard = None

    def exists(self, name: str) -> bool:
        return name in self._collections

    def names(self) -> list[str]:
        return sorted(self._collections)

    def create_collection(self, name: str, body: models.CreateCollection) -> bool:
        check_collection_name(name)
        if name in self._collections:
            raise CollectionExists(name)
        config = convert.edge_config(body, self.search_threads)
        stored = to_jsonable_python(body, exclude_none=True)
        root = os.path.join(self.storage_dir, COLLECTIONS_DIR)
        # Built under a hidden name and renamed: a crash never leaves half a collection.
        staging = tempfile.mkdtemp(dir=root, prefix=".create-")
        try:
            with open(os.path.join(staging, CONFIG_FILE), "w", encoding="utf-8") as handle:
                json.dump(stored, handle)
            edge.EdgeShard.create(os.path.join(staging, SHARD_DIR), config).close()
            final = os.path.join(root, name)
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shard = self._load_shard(os.path.join(final, SHARD_DIR), stored)
        self._collections[name] = Collection(name, final, shard, stored, _dimensions(stored), last_used=self._clock())
        return True

    def delete_collection(self, name: str) -> bool:
        collection = self._collections.pop(name, None)
        if collection is None:
            return False
        if collection.shard is not None:
            collection.shard.close()
        doomed = os.path.join(os.path.dirname(collection.path), f".deleted-{uuid.uuid4().hex}")
        os.rename(collection.path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        release_freed_memory()
        return True

    def collection_info(self, name: str) -> models.CollectionInfo:
        collection = self.get(name)
        info = collection.shard.info()
        # Validated by qdrant-client's model: the answer has exactly a server's shape.
        return models.CollectionInfo.model_validate({
            "status": "green",
            "optimizer_status": "ok",
            "segments_count": info.segments_count,
            "points_count": info.points_count,
            "indexed_vectors_count": info.indexed_vectors_count,
            "config": {
                "params": {
                    "vectors": collection.config.get("vectors"),
                    "shard_number": 1,
                    "replication_factor": 1,
                    "write_consistency_factor": 1,
                    "on_disk_payload": collection.config.get("on_disk_payload", True),
                },
                "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000, "on_disk": False}
                | collection.config.get("hnsw_config", {}),
                # Qdrant's defaults; qdrant-edge optimises only when asked (see the module docstring).
                "optimizer_config": {
                    "deleted_threshold": 0.2,
                    "vacuum_min_vector_number": 1000,
                    "default_segment_number": 0,
                    "flush_interval_sec": 5,
                },
                "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
                "quantization_config": None,
                **({"metadata": collection.config["metadata"]} if "metadata" in collection.config else {}),
            },
            "payload_schema": {
                field: convert.payload_schema_json(index) for field, index in sorted(info.payload_schema.items())
            },
        })

    def optimize(self, name: str) -> bool:
        return self._optimize(self.get(name))

    def _optimize(self, collection: Collection) -> bool:
        changed = collection.shard.optimize()
        log.info("optimized %s: %s", collection.name, "indexed" if changed else "already optimal")
        return changed

    # --- payload indexes

    def create_payload_index(self, name: str, body: models.CreateFieldIndex) -> dict[str, Any]:
        collection = self.get(name)
        if body.field_schema is None:
            raise ValueError("Wrong input: field_schema is required")
        collection.shard.update(
            edge.UpdateOperation.create_field_index(body.field_name, convert.payload_index_schema(body.field_schema))
        )
        return _completed()

    def delete_payload_index(self, name: str, field: str) -> dict[str, Any]:
        self.get(name).shard.update(edge.UpdateOperation.delete_field_index(field))
        return _completed()

    # --- points

    def _check_vector(self, collection: Collection, vector: Any, using: str = "") -> None:
        if isinstance(vector, dict):
            for vector_name, value in vector.items():
                self._check_vector(collection, value, vector_name)
            return
        expected = collection.dimensions.get(using)
        if expected is None:
            raise ValueError(f"Wrong input: Not existing vector name error: {using}")
        if len(vector) != expected:
            raise ValueError(f"Wrong input: Vector dimension error: expected dim: {expected}, got {len(vector)}")

    def upsert(self, name: str, operation: models.PointsList | models.PointsBatch) -> dict[str, Any]:
        collection = self.get(name)
        if operation.update_filter is not None:
            raise convert.Unsupported("update_filter")
        points = convert.points_from_request(operation)
        # Every point is checked before any is written: a bad batch writes nothing.
        for point in points:
            self._check_vector(collection, point.vector)
        mode = None
        if operation.update_mode is not None:
            mode = {
                models.UpdateMode.UPSERT: edge.UpdateMode.Upsert,
                models.UpdateMode.INSERT_ONLY: edge.UpdateMode.InsertOnly,
                models.UpdateMode.UPDATE_ONLY: edge.UpdateMode.UpdateOnly,
            }[operation.update_mode]
        collection.shard.update(edge.UpdateOperation.upsert_points(points, update_mode=mode))
        collection.written_since_open += len(points)
        self._maybe_reopen(collection)
        return _completed()

    def _maybe_reopen(self, collection: Collection) -> None:
        """Reopens a shard once a quarter of its points (at least REOPEN_MIN_WRITES) came in since
        it was opened.

        Why: qdrant-edge searches points written since the shard was opened about twice as slowly
        as points it loaded from disk (100,000 points, the memory store's filter: 4.3-4.8 ms p50
        fresh, 1.7-2.4 ms once reopened; a flush alone does not do it), and the embedded engine
        never rebuilds a segment as a Qdrant server's optimiser would. Reopening (flush, close,
        load) takes ~0.2 s at 100,000 points on the engine thread, which every request queues
        behind; growing by a quarter between reopenings keeps that to about ten times per tenfold
        growth (each costing time in proportion to the points), and the unreopened share small."""
        grown = collection.written_since_open
        if grown < max(REOPEN_MIN_WRITES, collection.points_at_open // 4):
            return
        started = time.perf_counter()
        self._close_shard(collection)
        self._open_shard(collection)
        release_freed_memory()
        log.info(
            "reopened %s after %d writes (%d points) in %.2f s",
            collection.name,
            grown,
            collection.points_at_open,
            time.perf_counter() - started,
        )

    def delete(self, name: str, selector: models.PointIdsList | models.FilterSelector) -> dict[str, Any]:
        collection = self.get(name)
        if isinstance(selector, models.FilterSelector):
            operation = edge.UpdateOperation.delete_points_by_filter(convert.edge_filter(selector.filter))
        else:
            operation = edge.UpdateOperation.delete_points([convert.point_id(pid) for pid in selector.points])
        collection.shard.update(operation)
        return _completed()

    def retrieve(self, name: str, body: models.PointRequest) -> list[dict[str, Any]]:
        records = self.get(name).shard.retrieve(
            [convert.point_id(pid) for pid in body.ids],
            with_payload=convert.with_payload(body.with_payload, default=True),
            with_vector=convert.with_vector(body.with_vector),
        )
        return [convert.record_json(record) for record in records]

    def query(self, name: str, body: models.QueryRequest) -> dict[str, Any]:
        collection = self.get(name)
        if body.prefetch:
            raise convert.Unsupported("prefetch")
        if body.lookup_from is not None:
            raise convert.Unsupported("lookup_from")
        query = None
        if body.query is not None:
            query = convert.scoring_query(body.query, body.using)
            if isinstance(query, edge.Query):
                raw = body.query.nearest if isinstance(body.query, models.NearestQuery) else body.query
                self._check_vector(collection, raw, body.using or "")
        request = edge.QueryRequest(
            limit=body.limit if body.limit is not None else 10,
            offset=body.offset,
            query=query,
            filter=convert.edge_filter(body.filter),
            score_threshold=body.score_threshold,
            params=convert.search_params(body.params),
            with_payload=convert.with_payload(body.with_payload, default=False),
            with_vector=convert.with_vector(body.with_vector),
        )
        return {"points": [convert.scored_json(point) for point in collection.shard.query(request)]}

    def scroll(self, name: str, body: models.ScrollRequest) -> dict[str, Any]:
        collection = self.get(name)
        request = edge.ScrollRequest(
            offset=convert.point_id(body.offset) if body.offset is not None else None,
            limit=body.limit if body.limit is not None else 10,
            filter=convert.edge_filter(body.filter),
            with_payload=convert.with_payload(body.with_payload, default=True),
            with_vector=convert.with_vector(body.with_vector),
            order_by=convert.order_by(body.order_by),
        )
        records, next_offset = collection.shard.scroll(request)
        return {
            "points": [convert.record_json(record) for record in records],
            "next_page_offset": convert.next_offset_json(next_offset),
        }

    def count(self, name: str, body: models.CountRequest) -> dict[str, Any]:
        collection = self.get(name)
        # Counts are always exact here: the engine counts through the payload indexes.
        return {"count": collection.shard.count(edge.CountRequest(filter=convert.edge_filter(body.filter), exact=True))}


def _completed() -> dict[str, Any]:
    # Every write is applied (and in the WAL) before the engine answers.
    return {"operation_id": 0, "status": "completed"}
