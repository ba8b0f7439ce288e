"""The admission ledger's rules (ray-tasks/pantheon_runtime/admission.py), with a clock the test holds."""

import random
import unittest

from pantheon_runtime.admission import EPSILON, Ledger, Node, label_matches, request_of

GROUP = "pantheon.io/group"


def cpu_nodes(*cpus, group="cpu", **extra):
    return [Node(f"n{i}", group, {"CPU": float(c), **extra}, {GROUP: group}) for i, c in enumerate(cpus)]


def over_capacity(ledger: Ledger, with_units: bool = False) -> list:
    """Nodes where admitted steps (and units, if asked) take more than the node has."""
    bad = []
    for node in ledger.nodes.values():
        for name, amount in ledger.used(node.id, with_units).items():
            if amount > node.total.get(name, 0.0) + EPSILON:
                bad.append((node.id, name, amount))
    return bad


class UnitsTest(unittest.TestCase):
    def test_workers_together_reserve_no_more_than_the_group_has(self):
        ledger = Ledger()
        ledger.set_nodes(cpu_nodes(2, 2))
        granted = [ledger.reserve("cpu", f"worker-{i % 3}", now=0) for i in range(6)]
        self.assertEqual(sum(g is not None for g in granted), 4)
        self.assertEqual(over_capacity(ledger, with_units=True), [])

    def test_units_and_steps_on_different_nodes_never_let_an_extra_poll_in(self):
        # Two nodes of 2 CPUs, four idle polls: a step is placed best fit, maybe not where the unit it
        # replaced was counted; the group as a whole is still full.
        ledger = Ledger()
        ledger.set_nodes(cpu_nodes(2, 2))
        for _ in range(4):
            self.assertIsNotNone(ledger.reserve("cpu", "w", now=0))
        for i in range(4):
            ledger.bind(f"wf/s{i}", "cpu", {"CPU": 1.0}, {}, 3, "w")
            ledger.admit()
            self.assertIsNone(ledger.reserve("cpu", "w", now=0))
        self.assertEqual(ledger.waiting("cpu"), [])

    def test_a_group_without_nodes_grants_nothing(self):
        ledger = Ledger()
        ledger.set_nodes(cpu_nodes(4, group="gpu"))
        self.assertIsNone(ledger.reserve("cpu", "w", now=0))

    def test_a_unit_given_back_is_free_again(self):
        ledger = Ledger()
        ledger.set_nodes(cpu_nodes(1))
        self.assertIsNotNone(ledger.reserve("cpu", "w", now=0))
        self.assertIsNone(ledger.reserve("cpu", "v", now=0))
        self.assertTrue(ledger.give_back("cpu", "w"))
        self.assertIsNotNone(ledger.reserve("cpu", "v", now=0))

    def test_a_lease_not_renewed_loses_its_units_within_the_bound(self):
        ledger = Ledger(lease_s=10)
        ledger.set_nodes(cpu_nodes(2))
        ledger.reserve("cpu", "dead", now=0)
        ledger.reserve("cpu", "alive", now=0)
        ledger.renew("alive", {"cpu": 1}, now=8)
        self.assertIsNone(ledger.reserve("cpu", "new", now=9))
        self.assertEqual(ledger.expire(now=10.5), ["dead"])
        self.assertIsNotNone(ledger.reserve("cpu", "new", now=10.5))

    def test_renew_rebuilds_an_unknown_lease_from_the_workers_count(self):
        ledger = Ledger()
        ledger.set_nodes(cpu_nodes(4))
        # A restarted dispatcher knows nothing; the worker says it holds two units.
        self.assertEqual(ledger.renew("w", {"cpu": 2}, now=0), {"cpu": 2})
        self.assertEqual(ledger.used("n0"), {"CPU": 2.0})

    def test_renew_of_a_known_lease_keeps_the_ledgers_count(self):
        ledger = Ledger()
        ledger.set_nodes(cpu_nodes(4))
        ledger.reserve("cpu", "w", now=0)
        ledger.reserve("cpu", "w", now=0)
        # The worker's count was taken before the second grant reached it: the ledger's stands.
        self.assertEqual(ledger.renew("w", {"cpu": 1}, now=1), {})
        self.assertEqual(ledger.used("n0"), {"CPU": 2.0})

    def test_a_released_holder_gets_no_unit_and_no_lease_back(self):
        # A worker shutting down releases its lease while a poll's reservation (or a renewal) is still
        # on its way: granting it would bring the lease back, held for a whole lease after the exit.
        ledger = Ledger()
        ledger.set_nodes(cpu_nodes(2))
        ledger.reserve("cpu", "leaving", now=0)
        ledger.drop_holder("leaving")
        self.assertIsNone(ledger.reserve("cpu", "leaving", now=1))
        self.assertEqual(ledger.renew("leaving", {"cpu": 1}, now=1), {})
        self.assertNotIn("leaving", ledger.leases)
        self.assertEqual(ledger.used("n0"), {})
        self.assertIsNotNone(ledger.reserve("cpu", "other", now=1))


class StepsTest(unittest.TestCase):
    def test_a_step_takes_its_exact_request_in_place_of_the_unit(self):
        ledger = Ledger()
        ledger.set_nodes(cpu_nodes(4))
        ledger.reserve("cpu", "w", now=0)
        step = ledger.bind("wf/a", "cpu", {"CPU": 3.0}, {GROUP: "cpu"}, 3, "w")
        self.assertEqual(ledger.admit(), [step])
        self.assertEqual(step.placed, {"n0": 1})
        self.assertEqual(ledger.used("n0"), {"CPU": 3.0})
        self.assertIsNotNone(ledger.reserve("cpu", "w", now=0))
        self.assertIsNone(ledger.reserve("cpu", "w", now=0))

    def test_a_step_that_does_not_fit_waits_and_holds_back_new_units(self):
        ledger = Ledger()
        ledger.set_nodes(cpu_nodes(4))
        for i in range(3):
            ledger.reserve("cpu", "w", now=0)
            ledger.bind(f"wf/small{i}", "cpu", {"CPU": 1.0}, {}, 3, "w")
        ledger.admit()
        ledger.reserve("cpu", "w", now=0)
        big = ledger.bind("wf/big", "cpu", {"CPU": 4.0}, {}, 3, "w")
        self.assertEqual(ledger.admit(), [])
        # One CPU is free, but the big step came first: no poll brings in another small one.
        self.assertIsNone(ledger.reserve("cpu", "v", now=0))
        for i in range(3):
            ledger.end(f"wf/small{i}", 0)
        self.assertEqual(ledger.admit(), [big])
        self.assertEqual(over_capacity(ledger), [])

    def test_units_of_idle_polls_do_not_hold_back_a_big_step(self):
        ledger = Ledger()
        ledger.set_nodes(cpu_nodes(4))
        for holder in ("idle1", "idle2", "idle3", "w"):
            self.assertIsNotNone(ledger.reserve("cpu", holder, now=0))
        big = ledger.bind("wf/big", "cpu", {"CPU": 4.0}, {}, 3, "w")
        self.assertEqual(ledger.admit(), [big])
        # The idle polls still count for new polls: none is granted until they are given back.
        self.assertIsNone(ledger.reserve("cpu", "other", now=0))
        # A task one of them brings in waits here for room, never in Ray.
        late = ledger.bind("wf/late", "cpu", {"CPU": 1.0}, {}, 3, "idle1")
        self.assertEqual(ledger.admit(), [])
        self.assertEqual(ledger.waiting("cpu"), [late])
        self.assertEqual(over_capacity(ledger), [])

    def test_waiting_steps_are_placed_by_priority_then_arrival(self):
        ledger = Ledger()
        ledger.set_nodes(cpu_nodes(1))
        ledger.bind("wf/running", "cpu", {"CPU": 1.0}, {}, 3, None)
        ledger.admit()
        low = ledger.bind("wf/low", "cpu", {"CPU": 1.0}, {}, 5, None)
        urgent = ledger.bind("wf/urgent", "cpu", {"CPU": 1.0}, {}, 1, None)
        self.assertEqual(ledger.waiting("cpu"), [urgent, low])
        ledger.end("wf/running", 0)
        self.assertEqual(ledger.admit(), [urgent])

    def test_a_step_no_node_could_hold_is_demand_and_blocks_nobody(self):
        ledger = Ledger()
        ledger.set_nodes(cpu_nodes(2, 2))
        ledger.bind("wf/huge", "cpu", {"CPU": 8.0}, {}, 1, None)
        self.assertEqual(ledger.admit(), [])
        self.assertIsNotNone(ledger.reserve("cpu", "w", now=0))
        self.assertEqual(
            ledger.demand(), [{"resources": {"CPU": 8.0}, "labels": {GROUP: "in(cpu)"}, "count": 1}]
        )

    def test_gpus_and_custom_resources_are_counted(self):
        ledger = Ledger()
        ledger.set_nodes(
            [
                Node("gpu0", "gpu", {"CPU": 4.0, "GPU": 1.0, "accel": 1.0}, {GROUP: "gpu"}),
                Node("gpu1", "gpu", {"CPU": 4.0, "GPU": 1.0, "accel": 1.0}, {GROUP: "gpu"}),
            ]
        )
        request = request_of({"num_cpus": 1, "num_gpus": 1, "resources": {"accel": 1}})
        steps = [ledger.bind(f"wf/g{i}", "gpu", request, {}, 3, None) for i in range(3)]
        admitted = ledger.admit()
        self.assertEqual(admitted, steps[:2])
        self.assertEqual({next(iter(s.placed)) for s in admitted}, {"gpu0", "gpu1"})
        self.assertEqual(over_capacity(ledger), [])

    def test_placement_honours_the_label_selector_and_avoided_nodes(self):
        ledger = Ledger()
        ledger.set_nodes(cpu_nodes(2, 2, 2))
        step = ledger.bind("wf/a", "cpu", {"CPU": 1.0}, {GROUP: "cpu", "ray.io/node-id": "!in(n0,n1)"}, 3, None)
        ledger.admit()
        self.assertEqual(step.placed, {"n2": 1})

    def test_an_older_generation_ending_leaves_the_newer_allocation(self):
        ledger = Ledger()
        ledger.set_nodes(cpu_nodes(2))
        ledger.bind("wf/a", "cpu", {"CPU": 1.0}, {}, 3, None, generation=1)
        ledger.bind("wf/a", "cpu", {"CPU": 2.0}, {}, 3, None, generation=2)
        ledger.admit()
        self.assertIsNone(ledger.end("wf/a", 1))
        self.assertEqual(ledger.used("n0"), {"CPU": 2.0})

    def test_a_map_gets_what_fits_up_to_its_count(self):
        ledger = Ledger()
        ledger.set_nodes(cpu_nodes(2, 3))
        ledger.bind("wf/other", "cpu", {"CPU": 1.0}, {}, 3, None)
        ledger.admit()
        mapped = ledger.bind("wf/map", "cpu", {"CPU": 1.0}, {}, 3, None, count=64)
        ledger.admit()
        self.assertEqual(sum(mapped.placed.values()), 4)
        self.assertEqual(over_capacity(ledger), [])


class SelectorTest(unittest.TestCase):
    def test_ray_label_selector_forms(self):
        labels = {GROUP: "cpu", "zone": "a"}
        self.assertTrue(label_matches({GROUP: "cpu"}, "n", labels))
        self.assertFalse(label_matches({GROUP: "gpu"}, "n", labels))
        self.assertTrue(label_matches({"zone": "in(a,b)"}, "n", labels))
        self.assertFalse(label_matches({"zone": "!in(a,b)"}, "n", labels))
        self.assertTrue(label_matches({"zone": "!b"}, "n", labels))
        self.assertFalse(label_matches({"ray.io/node-id": "!in(n)"}, "n", labels))


class PropertyTest(unittest.TestCase):
    def test_no_sequence_of_operations_allocates_more_than_a_node_has(self):
        rng = random.Random(20261203)
        for _ in range(200):
            ledger = Ledger(lease_s=5)
            ledger.set_nodes(cpu_nodes(*[rng.choice([1, 2, 4]) for _ in range(rng.randint(1, 4))]))
            holders = [f"w{i}" for i in range(3)]
            live: list = []
            now = 0.0
            for step_no in range(60):
                now += rng.random()
                op = rng.random()
                holder = rng.choice(holders)
                if op < 0.35:
                    node = ledger.reserve("cpu", holder, now)
                    if node is not None:
                        # A poll is granted only where units and steps together leave room for it.
                        total = sum(n.total["CPU"] for n in ledger.nodes.values())
                        used = sum(ledger.used(n).get("CPU", 0.0) for n in ledger.nodes)
                        self.assertLessEqual(used, total + EPSILON)
                elif op < 0.6:
                    key = f"wf/s{step_no}"
                    ledger.bind(key, "cpu", {"CPU": float(rng.choice([0.5, 1, 2, 4, 8]))}, {}, rng.randint(1, 5), holder)
                    live.append(key)
                elif op < 0.75 and live:
                    ledger.end(live.pop(rng.randrange(len(live))), 0)
                elif op < 0.85:
                    ledger.give_back("cpu", holder)
                elif op < 0.95:
                    ledger.renew(holder, {"cpu": rng.randint(0, 2)}, now)
                else:
                    ledger.expire(now)
                ledger.admit()
                self.assertEqual(over_capacity(ledger), [])
                # After admit(), the first feasible waiting step does not fit anywhere.
                feasible = [s for s in ledger.waiting("cpu") if ledger._feasible(s)]
                if feasible:
                    head = feasible[0]
                    self.assertFalse(any(ledger._fits(head.request, ledger.free(n)) for n in ledger.nodes))


if __name__ == "__main__":
    unittest.main()
