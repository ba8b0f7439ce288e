"""Agent memory for Python Ray tasks: a read handle scoped to one agent of one project.

A step's task gets a ``ScopedMemory`` for reads during execution. It is scoped
the same way as the TypeScript store (activities/memory/store.ts): every read
filters by the project, private reads also by the agent, and only the scopes
the agent declared can be read. Project and agent are fixed when the handle is
made; no method takes them.

    memory = ScopedMemory(project="acme", agent="researcher", scopes=["shared", "private"])
    for hit in memory.recall("what do we know about the supplier?", top_k=5):
        print(hit.score, hit.text)

It talks to the Qdrant REST endpoint with qdrant-client in remote mode
(QDRANT_URL, QDRANT_API_KEY) and embeds queries with ``HashNgramEmbedder``,
the same algorithm as the TypeScript default embedder, bit for bit.

This is a fence against mistakes, not against hostile code: a task that builds
its own Qdrant client can read anything the endpoint's key allows. Where agent
code is untrusted, give each agent its own credentials (a Qdrant JWT scoped to
the collection and, with a payload filter, to its project) instead of the
shared key.
"""

from __future__ import annotations

import math
import os
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

# Same limits and names as workflows/schemas/memory.ts and activities/memory/.
MEMORY_SCOPES = ("shared", "private")
MAX_MEMORY_TEXT_CHARS = 8000
MAX_RECALL_TOP_K = 100
DEFAULT_RECALL_TOP_K = 5
DEFAULT_COLLECTION_PREFIX = "pantheon_memory"
DEFAULT_QDRANT_URL = "http://127.0.0.1:6333"


class HashNgramEmbedder:
    """Feature hashing of words, character trigrams and word bigrams, L2-normalised.

    Offline and lexical: texts sharing words and word fragments come out close.
    The steps are documented in activities/memory/embedder.ts; this is the same
    algorithm, and test/fixtures/memory-embedder-vectors.json holds vectors both
    implementations must reproduce exactly.
    """

    name = "hash-ngram-v1"

    def __init__(self, dimension: int = 384) -> None:
        if not isinstance(dimension, int) or not 2 <= dimension <= 65536:
            raise ValueError(f"dimension must be an integer from 2 to 65536, got {dimension!r}")
        self.dimension = dimension

    def embed(self, texts: Iterable[str]) -> list[list[float]]:
        return [self.embed_one(text) for text in texts]

    def embed_one(self, text: str) -> list[float]:
        vector = [0.0] * self.dimension
        for feature, weight in hash_ngram_features(text).items():
            hashed = feature_hash(feature)
            sign = -1.0 if hashed >= 0x80000000 else 1.0
            vector[hashed % self.dimension] += sign * math.sqrt(weight)
        sum_of_squares = 0.0
        for value in vector:
            sum_of_squares += value * value
        if sum_of_squares == 0.0:
            return vector
        norm = math.sqrt(sum_of_squares)
        return [value / norm for value in vector]


def _tokens(text: str) -> list[str]:
    # A token is a maximal run of letters, digits and combining marks (Unicode
    # categories L*, N*, M*), like /[\p{L}\p{N}\p{M}]+/u in JavaScript.
    tokens: list[str] = []
    current: list[str] = []
    for char in unicodedata.normalize("NFKC", text).lower():
        if unicodedata.category(char)[0] in "LNM":
            current.append(char)
        elif current:
            tokens.append("".join(current))
            current = []
    if current:
        tokens.append("".join(current))
    return tokens


def hash_ngram_features(text: str) -> dict[str, float]:
    """Features with their summed weights, in order of first appearance (dicts keep it)."""
    weights: dict[str, float] = {}

    def add(feature: str, weight: float) -> None:
        weights[feature] = weights.get(feature, 0.0) + weight

    tokens = _tokens(text)
    for index, token in enumerate(tokens):
        add(f"w:{token}", 1.0)
        padded = f"<{token}>"
        for start in range(len(padded) - 2):
            add(f"c:{padded[start:start + 3]}", 0.5)
        if index + 1 < len(tokens):
            add(f"b:{token} {tokens[index + 1]}", 0.5)
    return weights


def feature_hash(feature: str) -> int:
    """FNV-1a (32-bit) over UTF-8, then murmur3's fmix32."""
    hashed = 0x811C9DC5
    for byte in feature.encode("utf-8"):
        hashed = ((hashed ^ byte) * 0x01000193) & 0xFFFFFFFF
    hashed ^= hashed >> 16
    hashed = (hashed * 0x85EBCA6B) & 0xFFFFFFFF
    hashed ^= hashed >> 13
    hashed = (hashed * 0xC2B2AE35) & 0xFFFFFFFF
    hashed ^= hashed >> 16
    return hashed


def memory_collection_name(prefix: str, embedder: HashNgramEmbedder) -> str:
    return f"{prefix}__{embedder.name}__{embedder.dimension}"


@dataclass(frozen=True)
class MemoryHit:
    id: str
    score: float
    text: str
    scope: str
    project: str
    agent: str
    pipeline: str
    step: str
    created_at: str
    provenance: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)


def _check_query(query: Any) -> str:
    if not isinstance(query, str):
        raise TypeError(f"query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise ValueError("query must not be empty")
    if len(query.encode("utf-16-le")) // 2 > MAX_MEMORY_TEXT_CHARS:
        raise ValueError(f"query must be at most {MAX_MEMORY_TEXT_CHARS} characters")
    if not any(unicodedata.category(char)[0] in "LNM" for char in query):
        raise ValueError("query must contain at least one letter or digit")
    return query


def _check_identifier(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value or value.strip() != value or len(value) > 256:
        raise ValueError(f"{name} must be a non-empty string of at most 256 characters without outer spaces")
    return value


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "")
    if raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, got {value}")
    return value or None


class ScopedMemory:
    """Reads of one agent of one project. See the module docstring."""

    def __init__(
        self,
        *,
        project: str,
        agent: str,
        scopes: Sequence[str] = MEMORY_SCOPES,
        url: str | None = None,
        api_key: str | None = None,
        collection_prefix: str | None = None,
        ttl_seconds: int | None = None,
        embedder: HashNgramEmbedder | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self._project = _check_identifier("project", project)
        self._agent = _check_identifier("agent", agent)
        scopes = tuple(scopes)
        unknown = [scope for scope in scopes if scope not in MEMORY_SCOPES]
        if unknown or not scopes or len(set(scopes)) != len(scopes):
            raise ValueError(f"scopes must be distinct values of {MEMORY_SCOPES}, got {list(scopes)}")
        self._scopes = scopes
        self._embedder = embedder or HashNgramEmbedder()
        prefix = collection_prefix or env.get("PANTHEON_MEMORY_COLLECTION_PREFIX") or DEFAULT_COLLECTION_PREFIX
        self._collection = memory_collection_name(prefix, self._embedder)
        self._ttl_seconds = ttl_seconds if ttl_seconds is not None else _env_int(env, "PANTHEON_MEMORY_TTL_SECONDS")
        self._url = url or env.get("QDRANT_URL") or DEFAULT_QDRANT_URL
        self._api_key = api_key if api_key is not None else (env.get("QDRANT_API_KEY") or None)
        self._client: Any = None
        self._collection_exists = False

    @classmethod
    def from_context(cls, context: Mapping[str, Any], **overrides: Any) -> "ScopedMemory":
        """From a step's memory context, as the orchestrator passes it to the task:
        ``{"project", "agent", "scopes"?, "qdrantUrl"?, "collectionPrefix"?, "ttlSeconds"?}``.

        The API key is deliberately not part of the context (task arguments end up
        in Temporal's history): it comes from QDRANT_API_KEY in the task's environment.
        """
        settings: dict[str, Any] = {
            "url": context.get("qdrantUrl"),
            "collection_prefix": context.get("collectionPrefix"),
            "ttl_seconds": context.get("ttlSeconds"),
        }
        settings.update(overrides)
        return cls(
            project=context["project"],
            agent=context["agent"],
            scopes=context.get("scopes", MEMORY_SCOPES),
            **settings,
        )

    @property
    def project(self) -> str:
        return self._project

    @property
    def agent(self) -> str:
        return self._agent

    @property
    def scopes(self) -> tuple[str, ...]:
        return self._scopes

    @property
    def collection(self) -> str:
        return self._collection

    def recall(
        self,
        query: str,
        *,
        top_k: int = DEFAULT_RECALL_TOP_K,
        scopes: Sequence[str] | None = None,
        pipeline: str | None = None,
        min_score: float | None = None,
    ) -> list[MemoryHit]:
        """The shared memory of the project and the agent's own private memory
        (as far as its scopes allow) closest to ``query``, best first."""
        _check_query(query)
        if not isinstance(top_k, int) or not 1 <= top_k <= MAX_RECALL_TOP_K:
            raise ValueError(f"top_k must be an integer from 1 to {MAX_RECALL_TOP_K}, got {top_k!r}")
        wanted = self._scopes if scopes is None else tuple(scopes)
        refused = [scope for scope in wanted if scope not in self._scopes]
        if refused or not wanted:
            raise PermissionError(f"scopes {list(wanted)} are not within this handle's scopes {list(self._scopes)}")
        if pipeline is not None:
            _check_identifier("pipeline", pipeline)

        client = self._qdrant()
        if not self._collection_exists:
            # Until something is retained with this embedder there is nothing to read.
            self._collection_exists = client.collection_exists(self._collection)
            if not self._collection_exists:
                return []
        response = client.query_points(
            collection_name=self._collection,
            query=self._embedder.embed_one(query),
            query_filter=self._read_filter(wanted, pipeline),
            limit=top_k,
            with_payload=True,
            score_threshold=min_score,
        )
        return [self._readable_hit(point, wanted, pipeline) for point in response.points]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> "ScopedMemory":
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    def _qdrant(self) -> Any:
        if self._client is None:
            from qdrant_client import QdrantClient  # imported late: only tasks that read memory need it

            self._client = QdrantClient(url=self._url, api_key=self._api_key, check_compatibility=False)
        return self._client

    def _read_filter(self, scopes: Sequence[str], pipeline: str | None) -> Any:
        """The same filter as buildReadFilter in activities/memory/filters.ts."""
        from qdrant_client import models

        def match(key: str, value: str) -> Any:
            return models.FieldCondition(key=key, match=models.MatchValue(value=value))

        must: list[Any] = [match("project", self._project)]
        if pipeline is not None:
            must.append(match("pipeline", pipeline))
        if self._ttl_seconds:
            not_before_ms = int(time.time() * 1000) - self._ttl_seconds * 1000
            must.append(models.FieldCondition(key="createdAtMs", range=models.Range(gte=not_before_ms)))
        branches = [
            [match("scope", "shared")] if scope == "shared" else [match("scope", "private"), match("agent", self._agent)]
            for scope in dict.fromkeys(scopes)
        ]
        if len(branches) == 1:
            must.extend(branches[0])
        else:
            must.append(models.Filter(should=[models.Filter(must=branch) for branch in branches]))
        return models.Filter(must=must)

    def _readable_hit(self, point: Any, scopes: Sequence[str], pipeline: str | None) -> MemoryHit:
        payload = point.payload or {}
        scope = payload.get("scope")
        # Defence in depth, as in the TypeScript store: a result that breaks the
        # isolation rule means the filter or the server is wrong.
        readable = (
            payload.get("project") == self._project
            and scope in scopes
            and (scope == "shared" or payload.get("agent") == self._agent)
            and (pipeline is None or payload.get("pipeline") == pipeline)
        )
        if not readable:
            raise RuntimeError(f"memory isolation violated: point {point.id} returned for a read it does not match")
        return MemoryHit(
            id=str(point.id),
            score=float(point.score),
            text=str(payload.get("text", "")),
            scope=str(scope),
            project=str(payload.get("project")),
            agent=str(payload.get("agent")),
            pipeline=str(payload.get("pipeline")),
            step=str(payload.get("step")),
            created_at=str(payload.get("createdAt")),
            provenance=dict(payload.get("provenance") or {}),
            metadata=dict(payload.get("metadata") or {}),
        )
