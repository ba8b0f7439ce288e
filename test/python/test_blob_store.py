"""The blob store for outputs too large for history (ray-tasks/pantheon_runtime/blob_store.py)."""

import hashlib
import json
import tempfile
import unittest
from pathlib import Path

from pantheon_runtime.blob_store import BlobNotFound, BlobStore, BlobTooLarge, configured_store, is_ref


class BlobStoreTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.store = BlobStore(Path(self.dir.name), max_bytes=1_000_000)

    def tearDown(self):
        self.dir.cleanup()

    def test_a_reference_names_the_content_and_resolves_to_the_value(self):
        text = json.dumps({"rows": list(range(1000)), "note": "é"})
        ref = self.store.put(text)
        self.assertEqual(ref["$blob"], "sha256:" + hashlib.sha256(text.encode()).hexdigest())
        self.assertEqual(ref["bytes"], len(text.encode()))
        self.assertEqual(ref["preview"], text[:200])
        self.assertTrue(is_ref(ref))
        self.assertEqual(self.store.resolve({"a": [ref], "b": 1}), {"a": [json.loads(text)], "b": 1})

    def test_writing_the_same_content_twice_keeps_one_file(self):
        first = self.store.put('"same"')
        second = self.store.put('"same"')
        self.assertEqual(first, second)
        files = [p for p in Path(self.dir.name).rglob("*") if p.is_file()]
        self.assertEqual(len(files), 1)

    def test_a_path_picks_part_of_the_referenced_value(self):
        ref = self.store.put(json.dumps({"review": {"approved": True}}))
        self.assertEqual(self.store.resolve({**ref, "path": "review.approved"}), True)
        self.assertIsNone(self.store.resolve({**ref, "path": "review.missing"}))

    def test_a_missing_blob_and_a_malformed_name_are_named(self):
        missing = {"$blob": "sha256:" + "0" * 64, "bytes": 2, "preview": ""}
        with self.assertRaisesRegex(BlobNotFound, "not in the store"):
            self.store.resolve([missing])
        with self.assertRaisesRegex(BlobNotFound, "not a blob reference"):
            self.store.get_text("sha256:../../etc/passwd")

    def test_only_exact_references_are_resolved(self):
        ref = self.store.put('"x"')
        for lookalike in (
            {"$blob": ref["$blob"]},  # no size or preview
            {**ref, "extra": 1},  # a key the store never writes
            {**ref, "$blob": "sha256:../x"},
            {**ref, "bytes": "2"},
        ):
            self.assertFalse(is_ref(lookalike), lookalike)
            self.assertEqual(self.store.resolve(lookalike), lookalike)

    def test_content_above_the_limit_is_refused(self):
        with self.assertRaisesRegex(BlobTooLarge, "above the blob store's 1000000-byte limit"):
            self.store.put("x" * 1_000_001)

    def test_the_store_is_configured_by_the_environment_or_absent(self):
        self.assertIsNone(configured_store({}))
        store = configured_store({"PANTHEON_BLOB_DIR": self.dir.name, "PANTHEON_MAX_BLOB_BYTES": "5"})
        self.assertEqual((store.root, store.max_bytes), (Path(self.dir.name), 5))


if __name__ == "__main__":
    unittest.main()
