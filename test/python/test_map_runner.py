"""A map step's items (ray-tasks/pantheon_runtime/map_runner.py) without Ray: asyncio futures stand in
for the items' Ray tasks, so the order, retry and stop rules are checked on their own."""

import asyncio
import json
import time
import unittest

from pantheon_runtime.map_runner import MapItemsFailed, MapRun, failure_record, retries_item
from pantheon_runtime.runner import StepOutputRejected, map_item_runner
from pantheon_runtime.task_refs import TaskRefRefused


def classify(err: BaseException) -> dict:
    kind = "rejected" if isinstance(err, PermissionError) else "application"
    return {"kind": kind, "type": type(err).__name__, "message": str(err)}


class Items:
    """Runs items as asyncio futures: `fail` maps an item to how many of its tries raise (or -1: always)."""

    def __init__(self, fail=None, error=ValueError) -> None:
        self.fail = fail or {}
        self.error = error
        self.tries: dict = {}
        self.most_in_flight = 0
        self.batches: list = []

    def submit(self, _index, item):
        self.tries[item] = self.tries.get(item, 0) + 1
        return asyncio.ensure_future(self._run(item, self.tries[item]))

    async def wait_some(self, handles, batch):
        self.most_in_flight = max(self.most_in_flight, len(handles))
        self.batches.append(batch)
        done, _ = await asyncio.wait(handles, return_when=asyncio.FIRST_COMPLETED)
        return [(h, h.exception() is None, h.exception() or h.result()) for h in done]

    async def _run(self, item, attempt):
        await asyncio.sleep(0.001 * (item % 3))  # finish out of order
        failing = self.fail.get(item, 0)
        if failing == -1 or attempt <= failing:
            raise self.error(f"item {item} try {attempt}")
        return json.dumps({"item": item})


def run(map_run: MapRun, items: Items) -> str:
    return asyncio.run(map_run.run(items.submit, items.wait_some, classify))


class MapRuns(unittest.TestCase):
    def test_outputs_come_back_in_item_order_within_the_concurrency(self):
        items = Items()
        text = run(MapRun(items=list(range(50)), concurrency=4), items)
        self.assertEqual(json.loads(text), [{"item": i} for i in range(50)])
        self.assertLessEqual(items.most_in_flight, 4)
        self.assertEqual(set(items.tries.values()), {1})

    def test_a_failing_item_is_tried_again_up_to_its_attempts(self):
        items = Items(fail={7: 2})
        map_run = MapRun(items=list(range(10)), concurrency=3, max_attempts=3)
        self.assertEqual(len(json.loads(run(map_run, items))), 10)
        self.assertEqual(items.tries[7], 3)
        self.assertEqual(map_run.progress()["itemAttempts"], 12)

    def test_items_that_fail_for_good_are_reported_by_index(self):
        items = Items(fail={3: -1, 8: -1})
        map_run = MapRun(items=list(range(10)), concurrency=2, max_attempts=2, max_failed=10)
        with self.assertRaises(MapItemsFailed) as raised:
            run(map_run, items)
        record = raised.exception.record
        self.assertEqual([f["index"] for f in record["failedItems"]], [3, 8])
        self.assertEqual(record["failedItems"][0]["attempts"], 2)
        self.assertEqual((record["failedCount"], record["notStarted"]), (2, 0))
        self.assertEqual(map_run.progress()["succeeded"], 8)

    def test_the_first_failure_stops_new_items_by_default(self):
        items = Items(fail={0: -1})
        map_run = MapRun(items=list(range(100)), concurrency=1, max_attempts=1)
        with self.assertRaises(MapItemsFailed) as raised:
            run(map_run, items)
        self.assertEqual(raised.exception.record["notStarted"], 99)
        self.assertEqual(list(items.tries), [0])

    def test_refused_items_and_the_steps_non_retryable_types_are_not_retried(self):
        refused = Items(fail={1: -1}, error=PermissionError)
        with self.assertRaises(MapItemsFailed):
            run(MapRun(items=[0, 1, 2], concurrency=1, max_attempts=5), refused)
        self.assertEqual(refused.tries[1], 1)
        listed = Items(fail={1: -1})
        with self.assertRaises(MapItemsFailed):
            run(MapRun(items=[0, 1, 2], concurrency=1, max_attempts=5, non_retryable=frozenset({"ValueError"})), listed)
        self.assertEqual(listed.tries[1], 1)

    def test_items_an_earlier_generation_finished_are_not_run_again(self):
        items = Items()
        carried = {i: json.dumps({"item": i}) for i in range(0, 10, 2)}
        text = run(MapRun(items=list(range(10)), concurrency=2, carried=carried), items)
        self.assertEqual(json.loads(text), [{"item": i} for i in range(10)])
        self.assertEqual(sorted(items.tries), [1, 3, 5, 7, 9])


class Window(unittest.TestCase):
    def test_a_fixed_concurrency_is_the_window(self):
        self.assertEqual(MapRun(items=[1], concurrency=7).window(0.0), 7)

    def test_adaptive_adds_one_lookahead_of_the_rate_items_finish_at(self):
        map_run = MapRun(items=[1], concurrency=4, adaptive=True)
        self.assertEqual(map_run.window(100.0), 4)
        map_run._finished_at.extend(100.0 + i / 1000 for i in range(2000))  # 1,000 items/s over 2 s
        self.assertEqual(map_run.window(102.0), 4 + 100)
        # Long-finished items no longer count: the rate (and the lookahead) falls back.
        self.assertEqual(map_run.window(110.0), 4)

    def test_a_map_waits_for_half_its_lookahead_before_refilling(self):
        adaptive = MapRun(items=[1], concurrency=4, adaptive=True)
        self.assertEqual(adaptive.batch(104), 50)  # 100 queued in Ray: refill when half have finished
        self.assertEqual(adaptive.batch(5), 1)
        self.assertEqual(adaptive.batch(4), 1)
        self.assertEqual(MapRun(items=[1], concurrency=4).batch(104), 1)  # a fixed concurrency: refill at once

    def test_the_run_asks_for_the_batch_of_what_is_in_flight(self):
        items = Items()
        map_run = MapRun(items=list(range(30)), concurrency=2, adaptive=True)
        map_run._finished_at.extend(time.monotonic() for _ in range(200))  # 100 items/s: a lookahead of 10
        text = run(map_run, items)
        self.assertEqual(items.batches[0], (12 - 2) // 2)  # 12 in flight first: 2 running, 10 queued
        self.assertEqual(json.loads(text), [{"item": i} for i in range(30)])


class ItemFunction(unittest.TestCase):
    LIMITS = {"allowed_packages": ["pantheon_tasks"], "max_result_bytes": 64, "memory_guard": "off"}

    def test_an_item_runs_the_task_with_the_maps_bound_args_and_limits(self):
        run_item = map_item_runner("pantheon_tasks.testkit:text", ["y"], {}, self.LIMITS)
        self.assertEqual(run_item(3), '"yyy"')
        with self.assertRaises(StepOutputRejected):  # the bound limits hold for every item
            run_item(100)

    def test_the_allowlist_bound_with_the_map_still_refuses_other_packages(self):
        with self.assertRaises(TaskRefRefused):
            map_item_runner("json:dumps", [], {}, self.LIMITS)(1)


class RetryRule(unittest.TestCase):
    def test_module_qualified_types_match_the_short_name(self):
        failure = {"kind": "application", "type": "mypkg.errors.Fatal"}
        self.assertFalse(retries_item(failure, 1, 3, frozenset({"Fatal"})))
        self.assertTrue(retries_item(failure, 1, 3, frozenset({"ValueError"})))
        self.assertFalse(retries_item(failure, 3, 3, frozenset()))

    def test_the_record_lists_at_most_a_hundred_items_and_counts_all(self):
        failures = {i: {"type": "ValueError", "message": "no", "kind": "application", "attempts": 1} for i in range(250)}
        record = failure_record(failures, 1000, 5)
        self.assertEqual(len(record["failedItems"]), 100)
        self.assertEqual(record["failedCount"], 250)
        self.assertIn("250 of 1000 items failed", record["message"])
        self.assertIn("5 items were not started", record["message"])


if __name__ == "__main__":
    unittest.main()
