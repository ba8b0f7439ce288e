"""Knowledge-graph memory: LightRAG, one graph per project (shared) and per agent (private).

``POST /pantheon/graph/retain`` (API key)
    Stores structured facts a step returned: ``{project, agent, scope, key,
    entities: [{name, type, description}], relations: [{source, target,
    description, keywords}], sources: [text]}`` through LightRAG's
    ``ainsert_custom_kg``. ``key`` identifies the write (the worker derives it
    from the workflow, the step and the content): a retried step that sends the
    same key again changes nothing.

``POST /pantheon/graph/ingest`` (API key; only when an LLM is configured)
    A document for LightRAG's own LLM extraction (``ainsert``), with the
    OpenAI-compatible chat endpoint the operator configured (``--llm-url``).

``POST /pantheon/graph/recall`` (API key)
    Graph context for a query: ``{project, agent, scopes, query}`` →
    ``{context}``, LightRAG's entities, relations and source chunks of the
    graphs the read may see (the project's shared graph, the agent's private
    one). The query text itself is the keyword set (LightRAG would otherwise
    ask an LLM for keywords), so recall never needs an LLM.

Isolation is by storage: every graph is its own LightRAG workspace (its own
files under ``<storage>/lightrag/``), named from the project and, for private
graphs, the agent; a read opens only the workspaces its scopes name.

LightRAG runs offline here: embeddings come from the e5 service (as passages:
LightRAG does not tell stored text from queries), the tokenizer is a UTF-8
byte tokenizer (LightRAG's default would download tiktoken's files at run
time), graph in NetworkX (GraphML files), vectors and key-value data in its
file-backed stores.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import logging
import os
import sys
import types
from typing import Any, Literal

import numpy as np
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from memory_api import E5Service, _read
from pantheon_runtime.memory import check_identifier

log = logging.getLogger("qdrant-local.graph")

LEDGER_FILE = "pantheon_retained_keys.json"
MAX_FACTS = 200
E5_RELEVANT_COSINE = 0.8


class ByteTokenizer:
    """UTF-8 bytes as tokens: exact, thread-safe, nothing to download."""

    def encode(self, content: str) -> list[int]:
        return list(content.encode("utf-8"))

    def decode(self, tokens: list[int]) -> str:
        return bytes(tokens).decode("utf-8", errors="ignore")


class Entity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=256)
    type: str = Field(default="concept", min_length=1, max_length=64)
    description: str = Field(min_length=1, max_length=4000)


class Relation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=256)
    target: str = Field(min_length=1, max_length=256)
    description: str = Field(min_length=1, max_length=4000)
    keywords: str = Field(default="", max_length=512)


class RetainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: str
    agent: str
    scope: Literal["shared", "private"]
    key: str = Field(min_length=1, max_length=256)
    entities: list[Entity] = Field(default_factory=list, max_length=MAX_FACTS)
    relations: list[Relation] = Field(default_factory=list, max_length=MAX_FACTS)
    sources: list[str] = Field(default_factory=list, max_length=MAX_FACTS)

    @field_validator("project", "agent")
    @classmethod
    def _identifier(cls, value: str, info: Any) -> str:
        return check_identifier(info.field_name, value)


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: str
    agent: str
    scope: Literal["shared", "private"]
    key: str = Field(min_length=1, max_length=256)
    text: str = Field(min_length=1, max_length=200_000)

    @field_validator("project", "agent")
    @classmethod
    def _identifier(cls, value: str, info: Any) -> str:
        return check_identifier(info.field_name, value)


class GraphRecallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: str
    agent: str
    scopes: list[Literal["shared", "private"]] = Field(min_length=1, max_length=2)
    query: str = Field(min_length=1, max_length=8000)

    @field_validator("project", "agent")
    @classmethod
    def _identifier(cls, value: str, info: Any) -> str:
        return check_identifier(info.field_name, value)


def workspace_name(project: str, scope: str, agent: str) -> str:
    """A file-system-safe workspace per graph; the hash keeps distinct owners apart whatever their names."""
    owner = json.dumps([project, scope, agent if scope == "private" else None])
    digest = hashlib.sha256(owner.encode()).hexdigest()[:24]
    return f"{scope}_{digest}"


class LlmConfig(BaseModel):
    url: str
    model: str
    api_key: str | None = None


async def _chat(llm: LlmConfig | None, prompt: str, system_prompt: str | None, history_messages: Any) -> str:
    """One chat completion from the operator's OpenAI-compatible endpoint (what LightRAG's extraction calls)."""
    if llm is None:
        raise RuntimeError("no LLM is configured for graph ingestion (memory server --llm-url)")
    import aiohttp

    messages = (
        ([{"role": "system", "content": system_prompt}] if system_prompt else [])
        + list(history_messages or [])
        + [{"role": "user", "content": prompt}]
    )
    headers = {"authorization": f"Bearer {llm.api_key}"} if llm.api_key else {}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{llm.url.rstrip('/')}/chat/completions",
            json={"model": llm.model, "messages": messages, "temperature": 0},
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=240),
        ) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"LLM endpoint answered {response.status}: {body}")
            return str(body["choices"][0]["message"]["content"])


class _DeferredModule(types.ModuleType):
    """Stands in sys.modules for a module until one of its names is used, then loads it."""

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


def defer_pypinyin() -> None:
    """Makes ``import pypinyin`` cheap: the module is loaded when one of its names is first used.

    LightRAG imports pypinyin when it is imported (lightrag/utils.py), only to sort Chinese file
    names in its paginated document listings, which this server never serves; pypinyin's
    dictionaries take ~55 MB of resident memory. LightRAG still sorts with it if it ever needs to.
    (importlib's LazyLoader does not do here: on Python 3.11 the import statement itself reads the
    module's ``__spec__``, which loads it.)"""
    if "pypinyin" in sys.modules:
        return
    spec = importlib.util.find_spec("pypinyin")
    if spec is None:
        return  # not installed: LightRAG falls back to plain sorting by itself
    stand_in = _DeferredModule("pypinyin")
    stand_in.__spec__ = spec
    sys.modules["pypinyin"] = stand_in


class Graphs:
    """The LightRAG instances of one storage folder, opened on first use."""

    def __init__(self, storage_dir: str, embedder: E5Service, llm: LlmConfig | None) -> None:
        self.root = os.path.join(storage_dir, "lightrag")
        os.makedirs(self.root, exist_ok=True)
        # Plain closures, not bound methods: LightRAG deep-copies its configuration,
        # and a bound method would drag the embedder's native handle into the copy.
        async def embed(texts: list[str], **_: Any) -> np.ndarray:
            return await embedder.embed(list(texts), "passage")

        async def complete(prompt: str, system_prompt: str | None = None, history_messages: Any = None, **_: Any) -> str:
            return await _chat(llm, prompt, system_prompt, history_messages)

        self._embed = embed
        self._complete = complete
        self._llm = llm
        self._instances: dict[str, Any] = {}
        self._opening = asyncio.Lock()
        # One writer per workspace: the ledger check and the insert must not interleave.
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, workspace: str) -> Any:
        async with self._opening:
            if workspace not in self._instances:
                defer_pypinyin()
                from lightrag import LightRAG
                from lightrag.utils import EmbeddingFunc, Tokenizer

                rag = LightRAG(
                    working_dir=self.root,
                    workspace=workspace,
                    embedding_func=EmbeddingFunc(embedding_dim=384, max_token_size=2048, func=self._embed),
                    llm_model_func=self._complete,
                    tokenizer=Tokenizer("utf8-bytes", ByteTokenizer()),
                    graph_storage="NetworkXStorage",
                    vector_storage="NanoVectorDBStorage",
                    kv_storage="JsonKVStorage",
                    # e5 rates unrelated texts around 0.7: LightRAG's default floor (0.2) would let anything in.
                    vector_db_storage_cls_kwargs={"cosine_better_than_threshold": E5_RELEVANT_COSINE},
                )
                # LightRAG sets its own logger up at import; keep its INFO chatter out of the server log.
                logging.getLogger("lightrag").setLevel(logging.WARNING)
                await rag.initialize_storages()
                self._instances[workspace] = rag
                self._locks[workspace] = asyncio.Lock()
            return self._instances[workspace]

    def _ledger_path(self, workspace: str) -> str:
        return os.path.join(self.root, workspace, LEDGER_FILE)

    def _retained(self, workspace: str) -> set[str]:
        try:
            with open(self._ledger_path(workspace), encoding="utf-8") as handle:
                return set(json.load(handle))
        except FileNotFoundError:
            return set()

    def _remember(self, workspace: str, keys: set[str]) -> None:
        path = self._ledger_path(workspace)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(sorted(keys), handle)
        os.replace(tmp, path)

    async def _once(self, workspace: str, key: str, write: Any) -> bool:
        rag = await self.get(workspace)
        async with self._locks[workspace]:
            keys = self._retained(workspace)
            if key in keys:
                return False
            await write(rag)
            self._remember(workspace, keys | {key})
            return True

    async def retain(self, request: RetainRequest) -> dict[str, Any]:
        workspace = workspace_name(request.project, request.scope, request.agent)
        source_id = f"pantheon-{hashlib.sha256(request.key.encode()).hexdigest()[:16]}"
        chunks = [{"content": text, "source_id": source_id} for text in request.sources]
        entities = [
            {"entity_name": e.name, "entity_type": e.type, "description": e.description, "source_id": source_id}
            for e in request.entities
        ]
        relations = [
            {
                "src_id": r.source,
                "tgt_id": r.target,
                "description": r.description,
                "keywords": r.keywords or r.description,
                "weight": 1.0,
                "source_id": source_id,
            }
            for r in request.relations
        ]
        custom_kg = {"chunks": chunks, "entities": entities, "relationships": relations}
        stored = await self._once(workspace, request.key, lambda rag: rag.ainsert_custom_kg(custom_kg))
        return {"stored": stored, "entities": len(entities), "relations": len(relations)}

    async def ingest(self, request: IngestRequest) -> dict[str, Any]:
        if self._llm is None:
            raise web.HTTPConflict(
                text=json.dumps({"status": {"error": "graph ingestion needs an LLM: start the memory server with --llm-url"}}),
                content_type="application/json",
            )
        workspace = workspace_name(request.project, request.scope, request.agent)
        doc_id = f"doc-{hashlib.sha256(request.key.encode()).hexdigest()[:16]}"
        stored = await self._once(workspace, request.key, lambda rag: rag.ainsert(request.text, ids=[doc_id]))
        return {"stored": stored}

    async def recall(self, request: GraphRecallRequest) -> dict[str, Any]:
        defer_pypinyin()
        from lightrag import QueryParam

        contexts = []
        for scope in dict.fromkeys(request.scopes):
            workspace = workspace_name(request.project, scope, request.agent)
            if not os.path.isdir(os.path.join(self.root, workspace)):
                continue  # nothing was ever retained in this graph
            rag = await self.get(workspace)
            param = QueryParam(
                mode="hybrid",
                only_need_context=True,
                hl_keywords=[request.query],
                ll_keywords=[request.query],
                enable_rerank=False,
            )
            context = await rag.aquery(request.query, param=param)
            if isinstance(context, str) and context.strip() and "entity" in context:
                contexts.append({"scope": scope, "context": context})
        return {"contexts": contexts}

    async def close(self) -> None:
        for rag in self._instances.values():
            await rag.finalize_storages()
        self._instances.clear()


def add_graph_routes(app: web.Application, graphs: Graphs) -> None:
    async def retain(request: web.Request) -> web.Response:
        body: RetainRequest = await _read(request, RetainRequest)
        return web.json_response({"result": await graphs.retain(body), "status": "ok"})

    async def ingest(request: web.Request) -> web.Response:
        body: IngestRequest = await _read(request, IngestRequest)
        return web.json_response({"result": await graphs.ingest(body), "status": "ok"})

    async def recall(request: web.Request) -> web.Response:
        body: GraphRecallRequest = await _read(request, GraphRecallRequest)
        return web.json_response({"result": await graphs.recall(body), "status": "ok"})

    app.router.add_post("/pantheon/graph/retain", retain)
    app.router.add_post("/pantheon/graph/ingest", ingest)
    app.router.add_post("/pantheon/graph/recall", recall)
