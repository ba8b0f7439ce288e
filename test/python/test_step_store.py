"""The dispatcher's table (ray-tasks/pantheon_runtime/step_store.py): same work only, retention by
workflow, outputs within a byte budget. The clock is the test's, so "hours later" takes no time."""

import json
import os
import tempfile
import unittest

from pantheon_runtime.step_store import Entry, OutputStore, StepTable, decide, fingerprint

HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def entry(key="wf/a", run="r1", attempt=1, work="fp1", state="pending", generation=1) -> Entry:
    return Entry(
        key=key, run=run, attempt=attempt, generation=generation, ref=None, submitted_at=0.0,
        workflow=key.rsplit("/", 1)[0], fingerprint=work, task="pantheon_tasks.testkit:echo", state=state,
    )


class Fingerprints(unittest.TestCase):
    def test_task_arguments_and_resources_each_change_it(self):
        base = fingerprint("m:f", [1], {"x": 1}, {"cpus": 1})
        self.assertEqual(base, fingerprint("m:f", [1], {"x": 1}, {"cpus": 1}))
        for other in (
            fingerprint("m:g", [1], {"x": 1}, {"cpus": 1}),
            fingerprint("m:f", [2], {"x": 1}, {"cpus": 1}),
            fingerprint("m:f", [1], {"x": 2}, {"cpus": 1}),
            fingerprint("m:f", [1], {"x": 1}, {"cpus": 2}),
        ):
            self.assertNotEqual(base, other)

    def test_key_order_does_not_change_it(self):
        self.assertEqual(fingerprint("m:f", [], {"a": 1, "b": 2}, None), fingerprint("m:f", [], {"b": 2, "a": 1}, {}))


class SameWorkOnly(unittest.TestCase):
    def test_running_work_is_attached_to_only_with_the_same_fingerprint(self):
        running = entry(state="running")
        self.assertEqual(decide(running, "r1", 2, "fp1"), "attach")
        self.assertEqual(decide(running, "r1", 2, "fp2"), "conflict")
        # Another run attaches to running work too, and so must ask for the same work.
        self.assertEqual(decide(running, "r2", 1, "fp1"), "attach")
        self.assertEqual(decide(running, "r2", 1, "fp2"), "conflict")

    def test_a_success_is_attached_to_by_its_run_with_the_same_work(self):
        done = entry(state="succeeded")
        self.assertEqual(decide(done, "r1", 3, "fp1"), "attach")
        self.assertEqual(decide(done, "r1", 3, "fp2"), "conflict")

    def test_the_same_run_may_not_start_other_work_under_a_failed_key(self):
        failed = entry(state="failed", attempt=1)
        self.assertEqual(decide(failed, "r1", 2, "fp1"), "new")
        self.assertEqual(decide(failed, "r1", 2, "fp2"), "conflict")

    def test_a_new_run_starts_afresh_with_any_work_once_the_key_is_finished(self):
        for state in ("succeeded", "failed", "cancelled"):
            self.assertEqual(decide(entry(state=state), "r2", 1, "fp2"), "new")

    def test_an_unknown_key_is_new(self):
        self.assertEqual(decide(None, "r1", 1, "fp1"), "new")


class Retention(unittest.TestCase):
    def setUp(self) -> None:
        self.spill = tempfile.mkdtemp(prefix="step-store-test-")
        self.clock = Clock()
        self.table = StepTable(OutputStore(1024 * 1024, self.spill), clock=self.clock)

    def finish(self, e: Entry, output) -> None:
        self.table.put(e)
        e.state = "succeeded"
        self.table.finish(e, {"ok": True, "node": "n1"}, json.dumps(output))

    def test_a_retry_hours_later_attaches_while_the_workflow_is_open(self):
        done = entry()
        self.finish(done, {"answer": 42})
        self.clock.now += 30 * HOUR
        # The worker's sweep asks Temporal about every run with finished entries: this one is open.
        runs = self.table.finished_runs(min_age_s=60)
        self.assertEqual(runs, [{"workflowId": "wf", "runId": "r1", "keys": 1}])
        still_open = {("wf", "r1")}
        for run in runs:
            if (run["workflowId"], run["runId"]) not in still_open:
                self.table.release(run["workflowId"], run["runId"])
        kept = self.table.get("wf/a")
        self.assertIs(kept, done)
        self.assertEqual(decide(kept, "r1", 4, "fp1"), "attach")
        self.assertEqual(self.table.outcome(kept)["output"], {"answer": 42})

    def test_a_closed_run_is_released_and_its_key_starts_afresh(self):
        self.finish(entry(), "old")
        self.assertEqual(self.table.release("wf", "r1"), 1)
        self.assertIsNone(self.table.get("wf/a"))
        self.assertEqual(self.table.stats()["outputs"]["inMemory"], 0)
        self.assertEqual(decide(self.table.get("wf/a"), "r1", 2, "fp1"), "new")

    def test_active_work_and_fresh_entries_are_never_listed_or_released(self):
        running = entry(key="wf/run", state="running")
        self.table.put(running)
        self.finish(entry(key="wf/fresh"), 1)
        self.assertEqual(self.table.finished_runs(min_age_s=60), [])
        self.assertEqual(self.table.release("wf", "r1"), 1)  # only the finished one
        self.assertIs(self.table.get("wf/run"), running)

    def test_runs_are_told_apart(self):
        self.finish(entry(key="wf/a", run="r1"), 1)
        self.finish(entry(key="wf2/a", run="r9"), 2)
        self.clock.now += HOUR
        self.assertCountEqual(
            self.table.finished_runs(60),
            [{"workflowId": "wf", "runId": "r1", "keys": 1}, {"workflowId": "wf2", "runId": "r9", "keys": 1}],
        )
        self.table.release("wf", "r1")
        self.assertIsNotNone(self.table.get("wf2/a"))


class OutputBudget(unittest.TestCase):
    def setUp(self) -> None:
        self.spill = os.path.join(tempfile.mkdtemp(prefix="step-store-test-"), "spill")
        os.makedirs(self.spill)
        with open(os.path.join(self.spill, "left-by-an-earlier-dispatcher.json"), "w") as stale:
            stale.write("{}")
        self.store = OutputStore(100, self.spill)

    def test_an_earlier_dispatchers_spill_is_cleared(self):
        self.assertFalse(os.path.exists(os.path.join(self.spill, "left-by-an-earlier-dispatcher.json")))

    def test_outputs_beyond_the_budget_are_spilled_oldest_first_and_read_back(self):
        texts = {f"wf/s{i}": json.dumps("x" * 40 + str(i)) for i in range(5)}
        for key, text in texts.items():
            self.store.put(key, text)
            self.assertLessEqual(self.store.memory_bytes, 100)
        stats = self.store.stats()
        self.assertEqual(stats["inMemory"] + stats["spilled"], 5)
        self.assertGreaterEqual(stats["spilled"], 3)
        self.assertEqual(len(os.listdir(self.spill)), stats["spilled"])
        for key, text in texts.items():
            self.assertEqual(self.store.get(key), text)
        self.store.drop("wf/s0")
        self.assertIsNone(self.store.get("wf/s0"))
        self.assertEqual(len(os.listdir(self.spill)), self.store.stats()["spilled"])

    def test_an_output_larger_than_the_budget_goes_straight_to_disk(self):
        big = json.dumps("y" * 500)
        self.store.put("wf/big", big)
        self.assertEqual(self.store.memory_bytes, 0)
        self.assertEqual(self.store.get("wf/big"), big)


if __name__ == "__main__":
    unittest.main()
