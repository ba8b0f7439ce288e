"""Qdrant's REST API, the part of it the project uses, over a LocalEngine.

Request bodies are validated with qdrant-client's own pydantic models (the
same models its remote client sends), and answers have Qdrant's shapes:
``{"result": ..., "status": "ok", "time": seconds}`` on success and
``{"status": {"error": "..."}, "time": seconds}`` with Qdrant's status codes on
failure (400 wrong input, 404 unknown collection, 409 existing collection).
Query parameters such as ``wait``, ``ordering``, ``timeout`` and
``consistency`` are accepted and ignored: local mode applies every write before
it answers, so every write is reported ``completed``.

The older ``POST .../points/search`` is not served: qdrant-client 1.20 has no
model left to validate it with, and @qdrant/js-client-rest 1.19 searches
through ``.../points/query``.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import time
from typing import Any, Awaitable, Callable, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python
from qdrant_client.http import models

from qdrant_local_engine import LocalEngine

log = logging.getLogger("qdrant-local.api")

ModelT = TypeVar("ModelT", bound=BaseModel)

# Qdrant's own default for `service.max_request_size_mb`.
MAX_REQUEST_BYTES = 32 * 1024 * 1024

# Reachable without an API key, like on a real Qdrant (probes and version).
UNAUTHENTICATED_PATHS = frozenset({"/", "/healthz", "/livez", "/readyz"})

ENGINE_KEY: web.AppKey[LocalEngine] = web.AppKey("engine", LocalEngine)


class QdrantError(Exception):
    """An error answered to the caller as Qdrant would answer it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def not_found(collection: str) -> QdrantError:
    return QdrantError(404, f"Not found: Collection `{collection}` doesn't exist!")


def wrong_input(message: str) -> QdrantError:
    text = message if message.startswith("Wrong input") else f"Wrong input: {message}"
    return QdrantError(400, text)


def _ok(result: Any, started: float) -> web.Response:
    body = {"result": to_jsonable_python(result), "status": "ok", "time": time.perf_counter() - started}
    return web.json_response(body, dumps=_dumps)


def _error(status: int, message: str, started: float) -> web.Response:
    body = {"status": {"error": message}, "time": time.perf_counter() - started}
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _describe_validation_error(error: ValidationError) -> str:
    parts = []
    for detail in error.errors()[:5]:
        location = ".".join(str(item) for item in detail["loc"]) or "body"
        parts.append(f"{location}: {detail['msg']}")
    more = len(error.errors()) - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "Format error in JSON body: " + "; ".join(parts)


Handler = Callable[[web.Request], Awaitable[Any]]


def qdrant_endpoint(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wraps a handler returning a result into Qdrant's response envelope."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            return _ok(await handler(request), started)
        except QdrantError as error:
            return _error(error.status, error.message, started)
        except ValidationError as error:
            return _error(400, _describe_validation_error(error), started)
        except ValueError as error:
            # Local mode reports every rejected input as ValueError.
            return _error(400, wrong_input(str(error)).message, started)
        except Exception as error:  # noqa: BLE001 - answered as Qdrant does, and logged
            log.exception("%s %s failed", request.method, request.path)
            return _error(500, f"Service internal error: {error}", started)

    return wrapped


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        raise QdrantError(400, "Format error in JSON body: EOF while parsing a value at line 1 column 0")
    try:
        return json.loads(raw)
    except ValueError as error:
        raise QdrantError(400, f"Format error in JSON body: {error}") from error


async def _parse(request: web.Request, model: type[ModelT]) -> ModelT:
    return model.model_validate(await _json_body(request))


def _engine(request: web.Request) -> LocalEngine:
    return request.app[ENGINE_KEY]


def _collection_name(request: web.Request) -> str:
    return request.match_info["collection_name"]


def _require_collection(engine: LocalEngine, name: str) -> None:
    if not engine.client.collection_exists(name):
        raise not_found(name)


def _dense_vector_size(engine: LocalEngine, name: str, using: str | None) -> int | None:
    """The dimension a dense query on ``using`` must have, when it is a dense vector."""
    vectors = engine.client.get_collection(name).config.params.vectors
    if isinstance(vectors, models.VectorParams):
        return vectors.size if not using else None
    if isinstance(vectors, dict):
        params = vectors.get(using or "")
        return params.size if params is not None else None
    return None


def _check_dense_query(engine: LocalEngine, name: str, query: Any, using: str | None) -> None:
    # Local mode reports a wrong-sized query vector as a numpy shape error; Qdrant
    # answers this message, which callers recognise.
    if isinstance(query, models.NearestQuery):
        query = query.nearest
    if not isinstance(query, list) or not query or not all(isinstance(x, (int, float)) for x in query):
        return
    expected = _dense_vector_size(engine, name, using)
    if expected is not None and expected != len(query):
        raise wrong_input(f"Vector dimension error: expected dim: {expected}, got {len(query)}")


# --- service endpoints


async def root(request: web.Request) -> web.Response:
    info = await _engine(request).run(lambda: _engine(request).client.info())
    # Qdrant answers the version object itself, without the result envelope.
    return web.json_response(to_jsonable_python(info))


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="healthz check passed")


async def livez(_request: web.Request) -> web.Response:
    return web.Response(text="livez check passed")


async def readyz(_request: web.Request) -> web.Response:
    return web.Response(text="all shards are ready")


# --- collections


@qdrant_endpoint
async def list_collections(request: web.Request) -> Any:
    engine = _engine(request)
    return await engine.run(lambda: engine.client.get_collections())


@qdrant_endpoint
async def get_collection(request: web.Request) -> Any:
    engine, name = _engine(request), _collection_name(request)

    def op() -> Any:
        _require_collection(engine, name)
        info = engine.client.get_collection(name)
        points = info.points_count or 0
        # Report the requested indexes the way Qdrant does (see the engine docstring).
        schema = {}
        for field, requested in engine.payload_indexes(name).items():
            if isinstance(requested, dict):
                schema[field] = {"data_type": requested.get("type"), "params": requested, "points": points}
            else:
                schema[field] = {"data_type": requested, "points": points}
        info_json = to_jsonable_python(info)
        info_json["payload_schema"] = schema
        return info_json

    return await engine.run(op)


@qdrant_endpoint
async def collection_exists(request: web.Request) -> Any:
    engine, name = _engine(request), _collection_name(request)
    exists = await engine.run(lambda: engine.client.collection_exists(name))
    return models.CollectionExistence(exists=exists)


@qdrant_endpoint
async def create_collection(request: web.Request) -> Any:
    engine, name = _engine(request), _collection_name(request)
    body = await _parse(request, models.CreateCollection)

    def op() -> bool:
        if engine.client.collection_exists(name):
            raise QdrantError(409, f"Wrong input: Collection `{name}` already exists!")
        # Local mode keeps only vectors, sparse vectors and metadata; HNSW, WAL,
        # quantisation and sharding settings do not apply to an exact in-process scan.
        return engine.client.create_collection(
            collection_name=name,
            vectors_config=body.vectors,
            sparse_vectors_config=body.sparse_vectors,
            metadata=body.metadata,
        )

    return await engine.run(op)


@qdrant_endpoint
async def delete_collection(request: web.Request) -> Any:
    engine, name = _engine(request), _collection_name(request)

    def op() -> bool:
        existed = engine.client.delete_collection(name)
        engine.forget_collection_indexes(name)
        return bool(existed)

    return await engine.run(op)


@qdrant_endpoint
async def create_payload_index(request: web.Request) -> Any:
    engine, name = _engine(request), _collection_name(request)
    body = await _parse(request, models.CreateFieldIndex)

    def op() -> Any:
        _require_collection(engine, name)
        # Still handed to local mode: text indexes with `scoring` do change queries there.
        result = engine.client.create_payload_index(name, body.field_name, field_schema=body.field_schema)
        engine.record_payload_index(name, body.field_name, body.field_schema)
        return result

    return await engine.run(op)


@qdrant_endpoint
async def delete_payload_index(request: web.Request) -> Any:
    engine, name = _engine(request), _collection_name(request)
    field = request.match_info["field_name"]

    def op() -> Any:
        _require_collection(engine, name)
        result = engine.client.delete_payload_index(name, field)
        engine.forget_payload_index(name, field)
        return result

    return await engine.run(op)


# --- points


@qdrant_endpoint
async def upsert_points(request: web.Request) -> Any:
    engine, name = _engine(request), _collection_name(request)
    body = await _json_body(request)
    # Pick the variant by its key so that errors name the fields of that variant
    # instead of listing both union branches.
    operation: models.PointsList | models.PointsBatch
    if isinstance(body, dict) and "batch" in body:
        operation = models.PointsBatch.model_validate(body)
    else:
        operation = models.PointsList.model_validate(body)

    def op() -> Any:
        _require_collection(engine, name)
        points = operation.batch if isinstance(operation, models.PointsBatch) else operation.points
        return engine.client.upsert(
            collection_name=name,
            points=points,
            update_filter=getattr(operation, "update_filter", None),
            update_mode=getattr(operation, "update_mode", None),
        )

    return await engine.run(op)


@qdrant_endpoint
async def retrieve_points(request: web.Request) -> Any:
    engine, name = _engine(request), _collection_name(request)
    body = await _parse(request, models.PointRequest)

    def op() -> Any:
        _require_collection(engine, name)
        return engine.client.retrieve(
            collection_name=name,
            ids=body.ids,
            with_payload=body.with_payload if body.with_payload is not None else True,
            with_vectors=body.with_vector if body.with_vector is not None else False,
        )

    return await engine.run(op)


@qdrant_endpoint
async def delete_points(request: web.Request) -> Any:
    engine, name = _engine(request), _collection_name(request)
    body = await _json_body(request)
    selector: models.PointIdsList | models.FilterSelector
    if isinstance(body, dict) and "filter" in body:
        selector = models.FilterSelector.model_validate(body)
    else:
        selector = models.PointIdsList.model_validate(body)

    def op() -> Any:
        _require_collection(engine, name)
        return engine.client.delete(collection_name=name, points_selector=selector)

    return await engine.run(op)


@qdrant_endpoint
async def query_points(request: web.Request) -> Any:
    engine, name = _engine(request), _collection_name(request)
    body = await _parse(request, models.QueryRequest)

    def op() -> Any:
        _require_collection(engine, name)
        _check_dense_query(engine, name, body.query, body.using)
        return engine.client.query_points(
            collection_name=name,
            query=body.query,
            using=body.using,
            prefetch=body.prefetch,
            query_filter=body.filter,
            search_params=body.params,
            limit=body.limit if body.limit is not None else 10,
            offset=body.offset,
            with_payload=body.with_payload if body.with_payload is not None else False,
            with_vectors=body.with_vector if body.with_vector is not None else False,
            score_threshold=body.score_threshold,
            lookup_from=body.lookup_from,
        )

    return await engine.run(op)


@qdrant_endpoint
async def scroll_points(request: web.Request) -> Any:
    engine, name = _engine(request), _collection_name(request)
    body = await _parse(request, models.ScrollRequest)

    def op() -> Any:
        _require_collection(engine, name)
        points, next_offset = engine.client.scroll(
            collection_name=name,
            scroll_filter=body.filter,
            limit=body.limit if body.limit is not None else 10,
            order_by=body.order_by,
            offset=body.offset,
            with_payload=body.with_payload if body.with_payload is not None else True,
            with_vectors=body.with_vector if body.with_vector is not None else False,
        )
        return models.ScrollResult(points=points, next_page_offset=next_offset)

    return await engine.run(op)


@qdrant_endpoint
async def count_points(request: web.Request) -> Any:
    engine, name = _engine(request), _collection_name(request)
    body = await _parse(request, models.CountRequest)

    def op() -> Any:
        _require_collection(engine, name)
        return engine.client.count(collection_name=name, count_filter=body.filter, exact=True)

    return await engine.run(op)


def _api_key_middleware(api_key: str) -> Any:
    expected = api_key.encode()

    @web.middleware
    async def check_api_key(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path in UNAUTHENTICATED_PATHS:
            return await handler(request)
        presented = request.headers.get("api-key")
        if presented is None:
            bearer = request.headers.get("authorization", "")
            presented = bearer[len("Bearer ") :] if bearer.startswith("Bearer ") else None
        # Same answers as Qdrant's auth layer: plain text, 401 without a key, 403 with a wrong one.
        if presented is None:
            return web.Response(status=401, text="Must provide an API key or an Authorization bearer token")
        if not hmac.compare_digest(presented.encode(), expected):
            return web.Response(status=403, text="Invalid API key or JWT")
        return await handler(request)

    return check_api_key


def build_app(engine: LocalEngine, api_key: str | None) -> web.Application:
    middlewares = [_api_key_middleware(api_key)] if api_key else []
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=middlewares)
    app[ENGINE_KEY] = engine
    collection = "/collections/{collection_name}"
    app.router.add_get("/", root)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/collections", list_collections)
    app.router.add_get(collection, get_collection)
    app.router.add_put(collection, create_collection)
    app.router.add_delete(collection, delete_collection)
    app.router.add_get(f"{collection}/exists", collection_exists)
    app.router.add_put(f"{collection}/index", create_payload_index)
    app.router.add_delete(collection + "/index/{field_name}", delete_payload_index)
    app.router.add_put(f"{collection}/points", upsert_points)
    app.router.add_post(f"{collection}/points", retrieve_points)
    app.router.add_post(f"{collection}/points/delete", delete_points)
    app.router.add_post(f"{collection}/points/query", query_points)
    app.router.add_post(f"{collection}/points/scroll", scroll_points)
    app.router.add_post(f"{collection}/points/count", count_points)
    return app
