"""Serves Qdrant's REST API from Qdrant's own engine running in process
(qdrant-edge), for machines where no Qdrant server can be installed (the
embedded default and CI).

    .venv/bin/python scripts/qdrant-local/server.py --host 127.0.0.1 --port 6333 \
        --storage .state/qdrant [--api-key KEY] [--optimize]

The project's @qdrant/js-client-rest code (and qdrant-client in remote mode)
talks to it over real HTTP exactly as it would talk to a Qdrant server; setting
QDRANT_URL points the same code at a real Qdrant instead.

Healthy when ``GET /healthz`` answers 200: the port is only opened after the
storage has been loaded. ``--port 0`` picks a free port; the chosen address is
logged as ``qdrant-local listening on http://HOST:PORT``. All output goes to
stderr; SIGTERM and SIGINT stop it cleanly (in-flight requests finish, shards
are flushed and closed, the storage lock is released).

What the embedded engine does not do: sharding, replication, snapshots over
HTTP, quantisation, vector datatypes other than float32 and float16, sparse and
multi-vectors, geo filters; such requests are refused with 400, never ignored.
HNSW is built only with ``--optimize`` (at start, before listening):
qdrant-edge's optimiser blocks the engine while it runs; filtered reads go
through the payload indexes either way. A collection that grew by a quarter
since it was opened is reopened after the write that crossed the mark (~0.2 s
at 100,000 points; qdrant-edge searches loaded points twice as fast as fresh
ones); see qdrant_local_engine.py.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# The memory rules (read filter, isolation check, hashing embedder) are the Python runtime's own.
sys.path.insert(1, os.path.join(HERE, "..", "..", "ray-tasks"))

from graph_api import Graphs, LlmConfig, add_graph_routes  # noqa: E402
from memory_api import E5Service, add_memory_routes  # noqa: E402
from qdrant_local_api import build_app  # noqa: E402
from qdrant_local_engine import DEFAULT_SEARCH_THREADS, EdgeEngine, StorageLocked  # noqa: E402

log = logging.getLogger("qdrant-local")

# How long in-flight requests get to finish once a stop signal arrives.
SHUTDOWN_GRACE_SECONDS = 5.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6333, help="0 picks a free port")
    parser.add_argument("--storage", required=True, help="directory holding the collections")
    parser.add_argument("--api-key", default=None, help="require this key (api-key or Bearer header)")
    parser.add_argument("--embed-threads", type=int, default=1, help="threads of the e5 embedder")
    parser.add_argument(
        "--search-threads",
        type=int,
        default=DEFAULT_SEARCH_THREADS,
        help="search threads per collection (more only help with several segments, after --optimize)",
    )
    parser.add_argument(
        "--llm-url",
        default=None,
        help="OpenAI-compatible endpoint (…/v1) for LightRAG's document ingestion; key in PANTHEON_LLM_API_KEY",
    )
    parser.add_argument("--llm-model", default="default", help="model name sent to --llm-url")
    parser.add_argument(
        "--qdrant-url",
        default=None,
        help="a real Qdrant that grant reads search (key in QDRANT_API_KEY) instead of the embedded engine",
    )
    parser.add_argument("--optimize", action="store_true", help="build HNSW indexes before listening")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    engine = EdgeEngine(args.storage, args.search_threads)
    try:
        await engine.open(optimize=args.optimize)
    except StorageLocked as error:
        log.error("cannot open storage %s: %s", args.storage, error)
        await engine.close()
        return 1

    embedder = E5Service(args.embed_threads)
    app = build_app(engine, args.api_key)
    remote = None
    if args.qdrant_url:
        from qdrant_client import QdrantClient

        remote = QdrantClient(
            url=args.qdrant_url, api_key=os.environ.get("QDRANT_API_KEY") or None, check_compatibility=False
        )
    add_memory_routes(app, engine, embedder, remote)
    llm = None
    if args.llm_url:
        llm = LlmConfig(url=args.llm_url, model=args.llm_model, api_key=os.environ.get("PANTHEON_LLM_API_KEY") or None)
    graphs = Graphs(engine.storage_dir, embedder, llm)
    add_graph_routes(app, graphs)
    # Per-request access lines only at DEBUG: a benchmark makes tens of thousands.
    access_log = logging.getLogger("qdrant-local.access") if log.isEnabledFor(logging.DEBUG) else None
    runner = web.AppRunner(app, access_log=access_log, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, shutdown_timeout=SHUTDOWN_GRACE_SECONDS)
    try:
        await site.start()
    except OSError as error:
        log.error("cannot listen on %s:%s: %s", args.host, args.port, error)
        await runner.cleanup()
        await graphs.close()
        embedder.close()
        await engine.close()
        return 1

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    host, port = runner.addresses[0][:2]
    log.info(
        "qdrant-local listening on http://%s:%s (storage %s%s)",
        host,
        port,
        engine.storage_dir,
        ", api key required" if args.api_key else "",
    )
    await stop.wait()
    log.info("stopping")
    await runner.cleanup()
    await graphs.close()
    embedder.close()
    await engine.close()
    log.info("stopped")
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # LightRAG logs every storage step at INFO; its warnings and errors still show.
    logging.getLogger("lightrag").setLevel(logging.WARNING)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
