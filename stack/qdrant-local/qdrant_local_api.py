"""Qdrant's REST API, the part of it the project uses, over an EdgeEngine.

The endpoints are one table (``ROUTES``): method, path, how the body is read,
and the engine operation it runs. Request bodies are validated with
qdrant-client's own pydantic models (the same models its remote client sends),
and answers have Qdrant's shapes: ``{"result": ..., "status": "ok", "time":
seconds}`` on success and ``{"status": {"error": "..."}, "time": seconds}``
with Qdrant's status codes on failure (400 wrong input, 404 unknown
collection, 409 existing collection). Query parameters such as ``wait``,
``ordering``, ``timeout`` and ``consistency`` are accepted and ignored: every
write is applied before the engine answers, so it is reported ``completed``.

The older ``POST .../points/search`` is not served: @qdrant/js-client-rest
and qdrant-client both search through ``.../points/query``.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, Awaitable, Callable

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json
from qdrant_client.http import models

from qdrant_local_engine import CollectionExists, CollectionNotFound, EdgeEngine

log = logging.getLogger("qdrant-local.api")

# Qdrant's own default for `service.max_request_size_mb`.
MAX_REQUEST_BYTES = 32 * 1024 * 1024

# Reachable without an API key, like on a real Qdrant (probes and version), and the
# memory endpoints that bring their own authentication (see memory_api.py).
UNAUTHENTICATED_PATHS = frozenset({"/", "/healthz", "/livez", "/readyz", "/pantheon/memory/recall", "/v1/embeddings"})

ENGINE_KEY: web.AppKey[EdgeEngine] = web.AppKey("engine", EdgeEngine)

# The REST API level served: that of the qdrant-client whose models validate the requests.
REST_API_VERSION = version("qdrant-client")
ENGINE_VERSION = version("qdrant-edge-py")


class QdrantError(Exception):
    """An error answered to the caller as Qdrant would answer it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json_response(body: Any, status: int = 200) -> web.Response:
    # pydantic-core writes the models and plain values in one pass, in Rust: a recall's answer
    # in ~6 µs instead of ~30 µs through to_jsonable_python and json.dumps.
    return web.Response(body=to_json(body), status=status, content_type="application/json")


def _ok(result: Any, started: float) -> web.Response:
    return _json_response({"result": result, "status": "ok", "time": time.perf_counter() - started})


def _error(status: int, message: str, started: float) -> web.Response:
    return _json_response({"status": {"error": message}, "time": time.perf_counter() - started}, status)


def _describe_validation_error(error: ValidationError) -> str:
    parts = []
    for detail in error.errors()[:5]:
        location = ".".join(str(item) for item in detail["loc"]) or "body"
        parts.append(f"{location}: {detail['msg']}")
    more = len(error.errors()) - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "Format error in JSON body: " + "; ".join(parts)


def _as_qdrant_error(error: Exception) -> QdrantError | None:
    if isinstance(error, QdrantError):
        return error
    if isinstance(error, CollectionNotFound):
        return QdrantError(404, f"Not found: Collection `{error.name}` doesn't exist!")
    if isinstance(error, CollectionExists):
        return QdrantError(409, f"Wrong input: Collection `{error.name}` already exists!")
    if isinstance(error, ValidationError):
        return QdrantError(400, _describe_validation_error(error))
    if type(error) is Exception and not str(error).startswith("Service"):
        # qdrant-edge raises plain Exceptions; all but its service errors are refused requests,
        # e.g. order_by on a field without a range index, as a server would answer them.
        return QdrantError(400, f"Bad request: {error}")
    if isinstance(error, ValueError):
        text = str(error)
        return QdrantError(400, text if text.startswith("Wrong input") else f"Wrong input: {text}")
    return None


# --- request bodies


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        raise QdrantError(400, "Format error in JSON body: EOF while parsing a value at line 1 column 0")
    try:
        return json.loads(raw)
    except ValueError as error:
        raise QdrantError(400, f"Format error in JSON body: {error}") from error


BodyReader = Callable[[Any], Any]


def model(cls: type[BaseModel]) -> BodyReader:
    return cls.model_validate


def by_key(key: str, with_key: type[BaseModel], without: type[BaseModel]) -> BodyReader:
    """Picks a union's variant by a key it must have, so errors name that variant's fields."""

    def read(body: Any) -> Any:
        chosen = with_key if isinstance(body, dict) and key in body else without
        return chosen.model_validate(body)

    return read


# --- the table


@dataclass(frozen=True)
class Call:
    """What an operation gets: the path's parts and the validated body."""

    collection: str
    params: dict[str, str]
    body: Any


Operation = Callable[[EdgeEngine, Call], Any]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    operation: Operation
    body: BodyReader | None = None


C = "/collections/{collection_name}"

ROUTES: tuple[Route, ...] = (
    Route("GET", "/collections", lambda e, c: {"collections": [{"name": n} for n in e.names()]}),
    Route("GET", C, lambda e, c: e.collection_info(c.collection)),
    Route("PUT", C, lambda e, c: e.create_collection(c.collection, c.body), model(models.CreateCollection)),
    Route("DELETE", C, lambda e, c: e.delete_collection(c.collection)),
    Route("GET", f"{C}/exists", lambda e, c: {"exists": e.exists(c.collection)}),
    Route("PUT", f"{C}/index", lambda e, c: e.create_payload_index(c.collection, c.body), model(models.CreateFieldIndex)),
    Route("DELETE", C + "/index/{field_name}", lambda e, c: e.delete_payload_index(c.collection, c.params["field_name"])),
    Route("PUT", f"{C}/points", lambda e, c: e.upsert(c.collection, c.body), by_key("batch", models.PointsBatch, models.PointsList)),
    Route("POST", f"{C}/points", lambda e, c: e.retrieve(c.collection, c.body), model(models.PointRequest)),
    Route("POST", f"{C}/points/delete", lambda e, c: e.delete(c.collection, c.body), by_key("filter", models.FilterSelector, models.PointIdsList)),
    Route("POST", f"{C}/points/query", lambda e, c: e.query(c.collection, c.body), model(models.QueryRequest)),
    Route("POST", f"{C}/points/scroll", lambda e, c: e.scroll(c.collection, c.body), model(models.ScrollRequest)),
    Route("POST", f"{C}/points/count", lambda e, c: e.count(c.collection, c.body), model(models.CountRequest)),
)  # fmt: skip


def endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    """One Qdrant endpoint: read and validate the body, run the operation on the engine thread, wrap the answer."""

    async def handle(request: web.Request) -> web.Response:
        started = time.perf_counter()
        engine = request.app[ENGINE_KEY]
        try:
            body = route.body(await _json_body(request)) if route.body is not None else None
            params = dict(request.match_info)
            call = Call(collection=params.pop("collection_name", ""), params=params, body=body)
            result = await engine.run(route.operation, engine, call)
            return _ok(result, started)
        except Exception as error:  # noqa: BLE001 - answered as Qdrant does, and logged when unexpected
            answer = _as_qdrant_error(error)
            if answer is None:
                log.exception("%s %s failed", request.method, request.path)
                answer = QdrantError(500, f"Service internal error: {error}")
            return _error(answer.status, answer.message, started)

    return handle


# --- service endpoints


async def root(_request: web.Request) -> web.Response:
    # Qdrant answers the version object itself, without the result envelope.
    return web.json_response(
        {"title": "qdrant - vector search engine", "version": REST_API_VERSION, "engine": f"qdrant-edge {ENGINE_VERSION}"}
    )


def _text(text: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(_request: web.Request) -> web.Response:
        return web.Response(text=text)

    return handle


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


def build_app(engine: EdgeEngine, api_key: str | None) -> web.Application:
    middlewares = [_api_key_middleware(api_key)] if api_key else []
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=middlewares)
    app[ENGINE_KEY] = engine
    app.router.add_get("/", root)
    app.router.add_get("/healthz", _text("healthz check passed"))
    app.router.add_get("/livez", _text("livez check passed"))
    app.router.add_get("/readyz", _text("all shards are ready"))
    for route in ROUTES:
        app.router.add_route(route.method, route.path, endpoint(route))
    return app
