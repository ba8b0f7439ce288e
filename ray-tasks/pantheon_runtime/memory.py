"""Agent memory for Python Ray tasks: a read handle bound to one agent of one project by a grant.

The orchestrator, not the task, decides whose memory a step reads: before an
agent step the worker asks the memory server for a *read grant* for the
project and agent the workflow fixed, and the agent host builds this handle
from it. The grant is signed by the memory server with a key only the server
holds; every read sends it, and the server builds the isolation filter from
the grant alone (the project, and for private memory the agent). The handle
has no parameter for a project, an agent, a collection or a server URL: the
URL comes from the task's environment (PANTHEON_MEMORY_URL, set by the stack
for every Ray process), and the grant cannot be altered without the server
refusing it.

    def write_report(topic, memory=None):              # the agent host passes `memory`
        for hit in memory.recall(f"report on {topic}", top_k=3):
            print(hit.score, hit.text)

Queries are embedded by the memory server's embedder service, the same one
the worker used to store the memories (``e5-small-v1`` by default, or the
hashing embedder below when the operator chose it).

The trust boundary that remains: a task runs arbitrary Python on a Ray node,
so hostile code can talk to anything the node can reach. It cannot forge a
grant, but it can call Qdrant's REST API directly when that API does not
require a key it lacks. docs/memory.md explains how a keyed memory server and
per-agent Qdrant credentials close that.
"""

from __future__ import annotations

import json
import math
import os
import unicodedata
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

# Same limits and names as workflows/schemas/memory.ts and activities/memory/.
MEMORY_SCOPES = ("shared", "private")
MAX_MEMORY_TEXT_CHARS = 8000
MAX_RECALL_TOP_K = 100
DEFAULT_RECALL_TOP_K = 5
DEFAULT_MEMORY_URL = "http://127.0.0.1:6333"
MEMORY_URL_ENV = "PANTHEON_MEMORY_URL"
REQUEST_TIMEOUT_SECONDS = 30.0


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


def memory_collection_name(prefix: str, embedder_name: str, dimension: int = 384) -> str:
    """One collection per embedder and dimension, as activities/memory/store.ts names it."""
    return f"{prefix}__{embedder_name}__{dimension}"


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


def check_identifier(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value or value.strip() != value or len(value) > 256:
        raise ValueError(f"{name} must be a non-empty string of at most 256 characters without outer spaces")
    return value


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


def read_filter(
    project: str, agent: str, scopes: Sequence[str], pipeline: str | None, not_before_ms: int | None
) -> Any:
    """The same filter as buildReadFilter in activities/memory/filters.ts (used by the memory server)."""
    from qdrant_client import models

    def match(key: str, value: str) -> Any:
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))

    must: list[Any] = [match("project", project)]
    if pipeline is not None:
        must.append(match("pipeline", pipeline))
    if not_before_ms is not None:
        must.append(models.FieldCondition(key="createdAtMs", range=models.Range(gte=not_before_ms)))
    branches = [
        [match("scope", "shared")] if scope == "shared" else [match("scope", "private"), match("agent", agent)]
        for scope in dict.fromkeys(scopes)
    ]
    if len(branches) == 1:
        must.extend(branches[0])
    else:
        must.append(models.Filter(should=[models.Filter(must=branch) for branch in branches]))
    return models.Filter(must=must)


def readable_hit(
    point: Mapping[str, Any], project: str, agent: str, scopes: Sequence[str], pipeline: str | None
) -> dict[str, Any]:
    """A scored point as the memory hit an agent may see (camelCase, as MemoryHit in TypeScript).

    Defence in depth, as in the TypeScript store: a result that breaks the
    isolation rule means the filter or the engine is wrong, and never reaches a task."""
    payload = point.get("payload") or {}
    scope = payload.get("scope")
    readable = (
        payload.get("project") == project
        and scope in scopes
        and (scope == "shared" or payload.get("agent") == agent)
        and (pipeline is None or payload.get("pipeline") == pipeline)
    )
    if not readable:
        raise RuntimeError(f"memory isolation violated: point {point.get('id')} returned for a read it does not match")
    hit = {
        "id": str(point.get("id")),
        "score": float(point.get("score", 0.0)),
        "text": str(payload.get("text", "")),
        "scope": str(scope),
        "project": str(payload.get("project")),
        "agent": str(payload.get("agent")),
        "pipeline": str(payload.get("pipeline")),
        "step": str(payload.get("step")),
        "createdAt": str(payload.get("createdAt")),
        "provenance": dict(payload.get("provenance") or {}),
    }
    if payload.get("metadata"):
        hit["metadata"] = dict(payload["metadata"])
    return hit


class MemoryServiceError(RuntimeError):
    """The memory server refused or failed a request; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"memory server answered {status}: {message}")
        self.status = status


def memory_url(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return (env.get(MEMORY_URL_ENV) or DEFAULT_MEMORY_URL).rstrip("/")


def _post(path: str, body: dict[str, Any], env: Mapping[str, str] | None = None) -> Any:
    request = urllib.request.Request(
        memory_url(env) + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")
        try:
            text = json.loads(text)["status"]["error"]
        except (ValueError, KeyError, TypeError):
            pass
        raise MemoryServiceError(error.code, text) from None


def embed(texts: Sequence[str], kind: str = "query", env: Mapping[str, str] | None = None) -> list[list[float]]:
    """Embeds texts with the memory server's embedder service (e5): ``kind`` is
    "query" for what is searched with and "passage" for what is searched."""
    if kind not in ("query", "passage"):
        raise ValueError(f"kind must be 'query' or 'passage', got {kind!r}")
    answer = _post("/v1/embeddings", {"input": list(texts), "input_type": kind}, env)
    return [item["embedding"] for item in sorted(answer["data"], key=lambda item: item["index"])]


class ScopedMemory:
    """Reads of one agent of one project, as its grant allows. See the module docstring."""

    def __init__(self, grant: Mapping[str, Any], env: Mapping[str, str] | None = None) -> None:
        token = grant.get("token") if isinstance(grant, Mapping) else None
        if not isinstance(token, str) or not token:
            raise ValueError("a memory handle needs the grant the orchestrator issued for the step")
        self._token = token
        self._project = str(grant.get("project", ""))
        self._agent = str(grant.get("agent", ""))
        self._scopes = tuple(grant.get("scopes") or MEMORY_SCOPES)
        self._env = env

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> "ScopedMemory":
        """From a step's memory context as the orchestrator passes it to the agent host:
        ``{"project", "agent", "scopes", "recalled", "grant": {"token", ...}}``."""
        grant = context.get("grant")
        if not isinstance(grant, Mapping):
            raise ValueError("the step's memory context carries no grant")
        return cls({**grant, "project": context.get("project"), "agent": context.get("agent"), "scopes": context.get("scopes")})

    @property
    def project(self) -> str:
        """For information only: the server reads the project from the grant."""
        return self._project

    @property
    def agent(self) -> str:
        return self._agent

    @property
    def scopes(self) -> tuple[str, ...]:
        return self._scopes

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
        (as far as the grant's scopes allow) closest to ``query``, best first."""
        _check_query(query)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_RECALL_TOP_K:
            raise ValueError(f"top_k must be an integer from 1 to {MAX_RECALL_TOP_K}, got {top_k!r}")
        wanted = self._scopes if scopes is None else tuple(scopes)
        refused = [scope for scope in wanted if scope not in self._scopes]
        if refused or not wanted:
            raise PermissionError(f"scopes {list(wanted)} are not within this handle's scopes {list(self._scopes)}")
        if pipeline is not None:
            check_identifier("pipeline", pipeline)
        body: dict[str, Any] = {"grant": self._token, "query": query, "topK": top_k, "scopes": list(wanted)}
        if pipeline is not None:
            body["pipeline"] = pipeline
        if min_score is not None:
            body["minScore"] = min_score
        answer = _post("/pantheon/memory/recall", body, self._env)
        return [
            MemoryHit(
                id=hit["id"],
                score=hit["score"],
                text=hit["text"],
                scope=hit["scope"],
                project=hit["project"],
                agent=hit["agent"],
                pipeline=hit["pipeline"],
                step=hit["step"],
                created_at=hit["createdAt"],
                provenance=hit["provenance"],
                metadata=hit.get("metadata", {}),
            )
            for hit in answer["result"]["memories"]
        ]

    def close(self) -> None:
        """Nothing to release (each read is one HTTP request); kept for `with` blocks."""

    def __enter__(self) -> "ScopedMemory":
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()
