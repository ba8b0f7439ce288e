"""The embedded engine of the memory server (stack/qdrant-local/qdrant_local_engine.py) on a real
qdrant-edge shard in a temporary folder: float16 collections, reopening a shard that grew, and
loading a stored collection with the server's search threads; vector files not loaded ahead of use."""

import asyncio
import math
import os
import random
import shutil
import tempfile
import unittest

from qdrant_client.http import models

import qdrant_local_engine
from qdrant_local_convert import Unsupported
from qdrant_local_engine import EdgeEngine

DIMENSION = 16


def unit_vector(rng: random.Random) -> list[float]:
    values = [rng.uniform(-1.0, 1.0) for _ in range(DIMENSION)]
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def create(datatype: str | None = "float16") -> models.CreateCollection:
    vectors = {"size": DIMENSION, "distance": "Cosine"}
    if datatype is not None:
        vectors["datatype"] = datatype
    return models.CreateCollection.model_validate({"vectors": vectors})


def points(start: int, count: int, rng: random.Random) -> models.PointsList:
    return models.PointsList.model_validate(
        {
            "points": [
                {"id": i, "vector": unit_vector(rng), "payload": {"project": f"p{i % 3}", "n": i}}
                for i in range(start, start + count)
            ]
        }
    )


def resident_kb(folder: str) -> int:
    """Resident memory of this process's mappings of files under ``folder`` (from /proc/self/smaps)."""
    total, counting = 0, False
    with open("/proc/self/smaps", encoding="utf-8") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a mapping's header line
                counting = len(fields) >= 6 and fields[5].startswith(folder)
            elif counting and fields[0] == "Rss:":
                total += int(fields[1])
    return total


def query(vector: list[float], project: str, limit: int = 10) -> models.QueryRequest:
    return models.QueryRequest.model_validate(
        {
            "query": vector,
            "filter": {"must": [{"key": "project", "match": {"value": project}}]},
            "limit": limit,
            "with_payload": True,
        }
    )


class EngineTest(unittest.TestCase):
    def setUp(self) -> None:
        self.storage = tempfile.mkdtemp(prefix="pantheon-edge-test-")
        self.loop = asyncio.new_event_loop()
        self.engine = self.open()
        self.rng = random.Random(7)

    def tearDown(self) -> None:
        self.loop.run_until_complete(self.engine.close())
        self.loop.close()
        shutil.rmtree(self.storage, ignore_errors=True)

    def open(self) -> EdgeEngine:
        engine = EdgeEngine(self.storage)
        self.loop.run_until_complete(engine.open())
        return engine

    def call(self, operation, *args):  # noqa: ANN001 - any engine operation
        return self.loop.run_until_complete(self.engine.run(operation, *args))

    def test_a_float16_collection_ranks_like_float32_and_reports_its_datatype(self) -> None:
        self.call(self.engine.create_collection, "half", create("float16"))
        self.call(self.engine.create_collection, "full", create(None))
        batch = points(0, 300, self.rng)
        self.call(self.engine.upsert, "half", batch)
        self.call(self.engine.upsert, "full", batch)
        for _ in range(20):
            probe = query(unit_vector(self.rng), "p1", limit=5)
            half = self.call(self.engine.query, "half", probe)["points"]
            full = self.call(self.engine.query, "full", probe)["points"]
            self.assertEqual([p["id"] for p in half][:1], [p["id"] for p in full][:1])
            for a, b in zip(half, full):
                self.assertAlmostEqual(a["score"], b["score"], delta=2e-3)
        info = self.call(self.engine.collection_info, "half")
        self.assertEqual(info.config.params.vectors.datatype, models.Datatype.FLOAT16)

    def test_collections_open_on_first_use_and_close_when_idle(self) -> None:
        for name in ("a", "b", "c"):
            self.call(self.engine.create_collection, name, create())
            self.call(self.engine.upsert, name, points(0, 40, self.rng))
        self.loop.run_until_complete(self.engine.close())
        now = [1000.0]
        self.engine = EdgeEngine(self.storage, idle_close_s=60.0, clock=lambda: now[0])
        self.loop.run_until_complete(self.engine.open())
        # A restart opens nothing: every collection is listed, none is loaded.
        self.assertEqual(self.engine.names(), ["a", "b", "c"])
        self.assertEqual([self.engine.is_open(n) for n in "abc"], [False, False, False])

        count = models.CountRequest.model_validate({"exact": True})
        self.assertEqual(self.call(self.engine.count, "a", count), {"count": 40})
        self.assertEqual([self.engine.is_open(n) for n in "abc"], [True, False, False])
        now[0] += 30
        self.call(self.engine.upsert, "b", points(100, 5, self.rng))  # "a" was used 30 s ago: stays open
        self.assertEqual([self.engine.is_open(n) for n in "abc"], [True, True, False])
        now[0] += 45
        with self.assertLogs("qdrant-local.engine", "INFO") as logs:
            self.call(self.engine.count, "c", count)  # "a" unused for 75 s: closed; "b" for 45 s: open
        self.assertIn("closed a after 75 s unused", "\n".join(logs.output))
        self.assertEqual([self.engine.is_open(n) for n in "abc"], [False, True, True])
        # A closed collection reopens with everything it held, writes since the restart included.
        now[0] += 120
        self.assertEqual(self.call(self.engine.count, "a", count), {"count": 40})
        self.assertEqual(self.call(self.engine.count, "b", count), {"count": 45})
        self.assertTrue(self.call(self.engine.delete_collection, "c"))  # closed by then: deleted all the same
        self.assertEqual(self.engine.names(), ["a", "b"])

    def test_datatypes_the_engine_does_not_serve_are_refused(self) -> None:
        with self.assertRaises(Unsupported):
            self.call(self.engine.create_collection, "bytes", create("uint8"))
        self.assertFalse(self.engine.exists("bytes"))

    def test_a_shard_that_grew_is_reopened_and_answers_the_same(self) -> None:
        self.addCleanup(setattr, qdrant_local_engine, "REOPEN_MIN_WRITES", qdrant_local_engine.REOPEN_MIN_WRITES)
        qdrant_local_engine.REOPEN_MIN_WRITES = 200
        self.call(self.engine.create_collection, "grows", create())
        self.call(
            self.engine.create_payload_index,
            "grows",
            models.CreateFieldIndex.model_validate({"field_name": "project", "field_schema": "keyword"}),
        )
        self.call(self.engine.upsert, "grows", points(0, 150, self.rng))
        collection = self.engine.get("grows")
        self.assertEqual((collection.points_at_open, collection.written_since_open), (0, 150))
        probes = [query(unit_vector(self.rng), f"p{i % 3}") for i in range(10)]
        before = [self.call(self.engine.query, "grows", probe) for probe in probes]

        with self.assertLogs("qdrant-local.engine", "INFO") as logs:
            self.call(self.engine.upsert, "grows", points(1000, 60, self.rng))  # 210 written: reopened
        self.assertRegex("\n".join(logs.output), r"reopened grows after 210 writes \(210 points\)")
        self.assertEqual((collection.points_at_open, collection.written_since_open), (210, 0))
        self.call(self.engine.delete, "grows", models.PointIdsList.model_validate({"points": list(range(1000, 1060))}))
        after = [self.call(self.engine.query, "grows", probe) for probe in probes]
        self.assertEqual(after, before)
        # The reopened shard keeps taking writes, and a restart finds all of them.
        self.call(self.engine.upsert, "grows", points(2000, 10, self.rng))
        count = models.CountRequest.model_validate({"exact": True})
        self.assertEqual(self.call(self.engine.count, "grows", count), {"count": 160})
        self.loop.run_until_complete(self.engine.close())
        with self.assertNoLogs("qdrant-local.engine", "WARNING"):  # loaded with its own config, no fallback
            self.engine = self.open()
        self.assertEqual(self.call(self.engine.count, "grows", count), {"count": 160})
        self.assertEqual(self.engine.get("grows").points_at_open, 160)
        self.assertEqual(
            self.call(self.engine.collection_info, "grows").config.params.vectors.datatype, models.Datatype.FLOAT16
        )

    def test_vectors_are_loaded_as_searches_touch_them_unless_the_collection_asks_for_ram(self) -> None:
        self.addCleanup(setattr, qdrant_local_engine, "REOPEN_MIN_WRITES", qdrant_local_engine.REOPEN_MIN_WRITES)
        qdrant_local_engine.REOPEN_MIN_WRITES = 1000
        in_ram = models.CreateCollection.model_validate(
            {"vectors": {"size": DIMENSION, "distance": "Cosine", "on_disk": False}}
        )
        self.call(self.engine.create_collection, "cold", create())
        self.call(self.engine.create_collection, "in-ram", in_ram)
        for name in ("cold", "in-ram"):
            self.call(self.engine.upsert, name, points(0, 1200, random.Random(3)))  # reopened after this write
            self.assertEqual(self.engine.get(name).points_at_open, 1200)

        def vector_chunks(name: str) -> list[str]:
            segments = os.path.join(self.engine.get(name).path, "shard", "segments")
            return [
                os.path.join(root, file)
                for root, _, files in os.walk(segments)
                for file in files
                if os.path.basename(root) == "vectors" and file.startswith("chunk_")
            ]

        def resident_vectors_kb(name: str) -> int:
            return sum(resident_kb(path) for path in vector_chunks(name))

        # qdrant-edge maps each vector file twice; by default it fills the mappings when it opens a
        # shard (here a whole 32 MB chunk, most of it not even written). The memory store's
        # collections (no on_disk) leave them to the searches.
        self.assertTrue(vector_chunks("cold"))
        self.assertGreater(resident_vectors_kb("in-ram"), 1024)
        self.assertEqual(resident_vectors_kb("cold"), 0)
        probe = models.QueryRequest.model_validate({"query": unit_vector(self.rng), "limit": 3})
        hits = self.call(self.engine.query, "cold", probe)
        self.assertEqual(len(hits["points"]), 3)
        self.assertGreater(resident_vectors_kb("cold"), 0)


if __name__ == "__main__":
    unittest.main()
