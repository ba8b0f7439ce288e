"""Strict JSON for outputs and bridge answers (ray-tasks/pantheon_runtime/strict_json.py)."""

import json
import math
import unittest

from pantheon_runtime.strict_json import MAX_DEPTH, NotStrictJson, encode


class StrictJson(unittest.TestCase):
    def assertNotJson(self, value, pattern):
        with self.assertRaisesRegex(NotStrictJson, pattern):
            encode(value, "output")

    def test_plain_json_round_trips(self):
        value = {"a": [1, 2.5, "x", None, True], "b": {"c": []}, "big": 2**70}
        self.assertEqual(json.loads(encode(value)), value)

    def test_nan_and_infinity_are_named_with_their_place(self):
        self.assertNotJson({"scores": [1.0, math.nan]}, r"output\.scores\[1\] is nan")
        self.assertNotJson({"x": math.inf}, r"output\.x is inf")
        self.assertNotJson([-math.inf], r"output\[0\] is -inf")

    def test_cycles_are_named(self):
        cyclic = {"a": []}
        cyclic["a"].append(cyclic)
        self.assertNotJson(cyclic, r"output\.a\[0\] refers back .* \(a cycle\)")

    def test_a_shared_value_is_not_a_cycle(self):
        shared = [1, 2]
        self.assertEqual(json.loads(encode({"x": shared, "y": shared})), {"x": [1, 2], "y": [1, 2]})

    def test_values_json_cannot_carry_are_named(self):
        self.assertNotJson({"s": {1, 2}}, r"output\.s is a builtins\.set")
        self.assertNotJson({"o": object()}, r"output\.o is a builtins\.object")
        self.assertNotJson({"b": b"bytes"}, r"output\.b is a builtins\.bytes")

    def test_non_string_keys_are_refused_rather_than_rewritten(self):
        self.assertNotJson({"m": {1: "one"}}, r"output\.m has a key of type int")
        self.assertNotJson({None: 1}, r"output has a key of type NoneType")

    def test_keys_that_are_not_identifiers_are_quoted_in_the_place(self):
        self.assertNotJson({"a b": math.nan}, r'output\["a b"\] is nan')

    def test_nesting_is_bounded_by_name_not_by_recursion_error(self):
        deep = []
        for _ in range(MAX_DEPTH + 10):
            deep = [deep]
        self.assertNotJson(deep, f"nested more than {MAX_DEPTH} levels")
        ok = []
        for _ in range(MAX_DEPTH - 1):
            ok = [ok]
        encode(ok)


if __name__ == "__main__":
    unittest.main()
