"""The blob store for outputs too large for history (ray-tasks/pantheon_runtime/blob_store.py)."""

import hashlib
import json
import os
import tempfile
import unittest
from unittest import mock
from pathlib import Path

from pantheon_runtime.blob_store import (
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    S3BlobStore,
    configured_store,
    is_ref,
    parse_s3_url,
)


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
        self.assertIsNone(configured_store(None, {}))
        store = configured_store(None, {"PANTHEON_BLOB_DIR": self.dir.name, "PANTHEON_MAX_BLOB_BYTES": "5"})
        self.assertEqual((store.root, store.max_bytes), (Path(self.dir.name), 5))

    def test_a_worker_named_s3_store_comes_before_the_directory(self):
        env = {"PANTHEON_BLOB_DIR": self.dir.name, "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9", "AWS_REGION": "eu-west-1"}
        store = configured_store("s3://outputs/team-a/runs/", env)
        self.assertIsInstance(store, S3BlobStore)
        self.assertEqual((store.bucket, store.prefix, store.where()), ("outputs", "team-a/runs", "s3://outputs/team-a/runs"))
        self.assertEqual(store.client.meta.endpoint_url, "http://127.0.0.1:9")
        self.assertEqual(store.client.meta.region_name, "eu-west-1")
        # One client per store and process: a second step reuses it.
        self.assertIs(configured_store("s3://outputs/team-a/runs/", env), store)
        for bad in ("outputs", "s3://", "file:///tmp"):
            with self.assertRaisesRegex(ValueError, "is not an s3://bucket"):
                parse_s3_url(bad)


class BlobPinsTest(unittest.TestCase):
    """Pins: which workflows wrote a blob, for the collector's retention (stack/blob-store.ts reads them)."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.root = Path(self.dir.name)
        self.store = BlobStore(self.root, max_bytes=1_000_000)

    def tearDown(self):
        self.dir.cleanup()

    def pins_of(self, ref):
        hexdigest = ref["$blob"].removeprefix("sha256:")
        folder = self.root / "pins" / hexdigest[:2] / hexdigest
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []

    def test_a_put_with_a_workflow_pins_the_blob_for_it(self):
        ref = self.store.put('"big"', "pipeline-abc")
        hexdigest = ref["$blob"].removeprefix("sha256:")
        named = hashlib.sha256(b"pipeline-abc").hexdigest()
        pin = self.root / "pins" / hexdigest[:2] / hexdigest / named
        self.assertEqual(pin.read_text("utf-8"), "pipeline-abc")
        self.assertEqual(pin, self.store.pin_path(hexdigest, "pipeline-abc"))
        self.assertEqual(self.store.get_text(ref["$blob"]), '"big"')

    def test_pinning_is_idempotent_and_leaves_no_temporary_files(self):
        first = self.store.put('"big"', "wf/with/slashes")
        second = self.store.put('"big"', "wf/with/slashes")
        self.assertEqual(first, second)
        self.assertEqual(self.pins_of(first), [hashlib.sha256(b"wf/with/slashes").hexdigest()])
        names = [p.name for p in self.root.rglob("*")]
        self.assertFalse([n for n in names if n.startswith(".incoming-")], names)

    def test_each_workflow_that_writes_the_same_content_pins_it(self):
        ref = self.store.put('"same"', "wf-1")
        self.store.put('"same"', "wf-2")
        expected = sorted(hashlib.sha256(w.encode()).hexdigest() for w in ("wf-1", "wf-2"))
        self.assertEqual(self.pins_of(ref), expected)
        blobs = [p for p in self.root.rglob("*") if p.is_file() and "pins" not in p.parts]
        self.assertEqual(len(blobs), 1)

    def test_a_put_without_a_workflow_pins_nothing(self):
        ref = self.store.put('"unpinned"')
        self.assertEqual(self.pins_of(ref), [])
        self.assertFalse((self.root / "pins").exists())

    def test_writing_stored_content_again_counts_as_a_use(self):
        ref = self.store.put('"again"', "wf-1")
        hexdigest = ref["$blob"].removeprefix("sha256:")
        blob = self.root / hexdigest[:2] / hexdigest
        pin = self.store.pin_path(hexdigest, "wf-1")
        os.utime(blob, (1_000, 1_000))
        os.utime(pin, (1_000, 1_000))
        self.store.put('"again"', "wf-1")
        # The collector's retention runs from the last write, and it leaves a blob or pin touched since it listed them.
        self.assertGreater(blob.stat().st_mtime, 1_000)
        self.assertGreater(pin.stat().st_mtime, 1_000)

    def test_a_blob_removed_under_a_put_is_written_again(self):
        ref = self.store.put('"gone"', "wf-1")
        hexdigest = ref["$blob"].removeprefix("sha256:")
        (self.root / hexdigest[:2] / hexdigest).unlink()
        self.store.put('"gone"', "wf-1")
        self.assertEqual(self.store.get_text(ref["$blob"]), '"gone"')

    def test_a_pin_directory_removed_between_mkdir_and_the_write_is_made_again(self):
        real_mkstemp = tempfile.mkstemp
        calls = []

        def racing_mkstemp(*args, **kwargs):
            calls.append(kwargs["dir"])
            if len(calls) == 1:  # a collector's rmdir of the empty pin directory wins the race once
                Path(kwargs["dir"]).rmdir()
            return real_mkstemp(*args, **kwargs)

        with mock.patch("pantheon_runtime.blob_store.tempfile.mkstemp", racing_mkstemp):
            ref = self.store.put('"raced"', "wf-1")
        self.assertEqual(self.pins_of(ref), [hashlib.sha256(b"wf-1").hexdigest()])
        self.assertEqual(self.store.get_text(ref["$blob"]), '"raced"')


if __name__ == "__main__":
    unittest.main()
