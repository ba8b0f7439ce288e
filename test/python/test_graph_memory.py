"""The memory server's knowledge graphs (stack/qdrant-local/graph_api.py) with a real LightRAG and
the real e5 embedder, in a temporary folder, no server started: LightRAG runs without loading
pypinyin (~55 MB of dictionaries it imports only to sort Chinese file names in document listings),
and still sorts by pinyin when asked."""

import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

# A fresh interpreter: whether pypinyin is loaded depends on everything imported before.
SCRIPT = r"""
import asyncio, sys
from graph_api import GraphRecallRequest, Graphs, RetainRequest
from memory_api import E5Service

async def main(storage):
    embedder = E5Service(1)
    graphs = Graphs(storage, embedder, None)
    try:
        facts = RetainRequest(
            project="acme", agent="analyst", scope="private", key="k1",
            entities=[
                {"name": "Forgeworks", "type": "organization", "description": "Forgeworks makes gears."},
                {"name": "Plant 3", "type": "location", "description": "Plant 3 is a factory site."},
            ],
            relations=[{"source": "Forgeworks", "target": "Plant 3", "description": "Forgeworks produces in Plant 3."}],
            sources=["Forgeworks makes gears in Plant 3."],
        )
        assert (await graphs.retain(facts))["stored"] is True
        question = GraphRecallRequest(
            project="acme", agent="analyst", scopes=["private"], query="Where does Forgeworks produce?"
        )
        found = await graphs.recall(question)
        assert "Forgeworks" in found["contexts"][0]["context"], found
        print("pypinyin:", type(sys.modules["pypinyin"]).__name__)
        from lightrag.utils import get_pinyin_sort_key
        print("sort key:", get_pinyin_sort_key("中文 Abc"), type(sys.modules["pypinyin"]).__name__)
    finally:
        await graphs.close()
        embedder.close()

asyncio.run(main(sys.argv[1]))
"""


class GraphMemoryTest(unittest.TestCase):
    def test_lightrag_works_without_loading_pypinyin_until_it_sorts(self) -> None:
        with tempfile.TemporaryDirectory(prefix="pantheon-graph-test-") as storage:
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "PYTHONPATH": os.pathsep.join(
                    [os.path.join(ROOT, "stack", "qdrant-local"), os.path.join(ROOT, "ray-tasks")]
                ),
                "PYTHONDONTWRITEBYTECODE": "1",
            }
            result = subprocess.run(
                [sys.executable, "-c", SCRIPT, storage], capture_output=True, text=True, env=env, timeout=180
            )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("pypinyin: _DeferredModule\n", result.stdout)
        self.assertIn("sort key: zhongwen abc module\n", result.stdout)


if __name__ == "__main__":
    unittest.main()
