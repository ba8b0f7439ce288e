"""The Ray side's task fence (ray-tasks/pantheon_runtime/task_refs.py): per function, from its own allowlist."""

import pickle
import sys
import unittest

from pantheon_runtime.task_refs import (
    AGENT_HOST_TASK,
    DEFAULT_ALLOWLIST,
    TaskRefRefused,
    check_definition,
    configured_allowlist,
    parse_allowlist,
    resolve_task,
)

ALLOWED = ("taskfixture", "sideeffects")


class AllowlistConfig(unittest.TestCase):
    def test_unset_or_empty_is_the_default_without_the_test_kit(self):
        self.assertEqual(configured_allowlist({}), DEFAULT_ALLOWLIST)
        self.assertEqual(parse_allowlist(" , "), DEFAULT_ALLOWLIST)
        self.assertNotIn("pantheon_tasks.testkit", DEFAULT_ALLOWLIST)
        self.assertNotIn("pantheon_tasks", DEFAULT_ALLOWLIST)

    def test_entries_are_read_from_the_environment(self):
        env = {"PANTHEON_ALLOWED_TASK_PACKAGES": "pantheon_tasks.examples, pantheon_tasks.testkit"}
        self.assertEqual(configured_allowlist(env), ("pantheon_tasks.examples", "pantheon_tasks.testkit"))

    def test_a_private_or_malformed_entry_is_a_configuration_error(self):
        for raw in ("pantheon_tasks._hidden", "__main__", "os;rm", "a..b"):
            with self.subTest(raw=raw), self.assertRaisesRegex(ValueError, "PANTHEON_ALLOWED_TASK_PACKAGES"):
                parse_allowlist(raw)


class Refused(unittest.TestCase):
    def assertRefused(self, ref, pattern, field="task"):
        for check in (check_definition, resolve_task):
            with self.subTest(ref=ref, check=check.__name__):
                with self.assertRaises(TaskRefRefused) as caught:
                    check(ref, ALLOWED, field)
                self.assertEqual(caught.exception.field, field)
                self.assertTrue(str(caught.exception).startswith(f"{field}: "), str(caught.exception))
                self.assertRegex(str(caught.exception), pattern)

    def test_dunders_and_private_names_are_refused_by_their_form(self):
        for ref in (
            "taskfixture.mod:__setattr__",
            "taskfixture.mod:__delattr__",
            "taskfixture.mod:__getattr__",
            "taskfixture.mod:_private",
            "taskfixture._hidden:public",
            "taskfixture.__init__:public",
        ):
            self.assertRefused(ref, "public names")

    def test_names_the_module_imported_are_refused(self):
        self.assertRefused("taskfixture.mod:join", "not a function defined in taskfixture.mod|defined in posixpath")
        # Even a function of another allowed module is not this module's task.
        self.assertRefused("taskfixture.mod:echo", "not a function defined in taskfixture.mod|defined in pantheon_tasks")

    def test_classes_and_other_objects_are_refused(self):
        self.assertRefused("taskfixture.mod:Thing", "not a function|a type")
        self.assertRefused("taskfixture.mod:constant", "not a function|an int")
        self.assertRefused("taskfixture.mod:missing", "not a function defined|names nothing")

    def test_modules_outside_the_allowlist_are_refused(self):
        self.assertRefused("os:system", "outside the allowed modules")
        self.assertRefused("taskfixturex.mod:public", "outside the allowed modules")
        self.assertRefused("pantheon_tasks.testkit:echo", "outside the allowed modules")

    def test_malformed_references_are_refused(self):
        for ref in ("taskfixture.mod", "taskfixture.mod:public:x", "taskfixture.mod:pub lic", 42, None):
            self.assertRefused(ref, "is not of the form")

    def test_the_field_is_named(self):
        self.assertRefused("os:system", "outside", field="kwargs.task")

    def test_a_definition_rebound_to_an_import_is_caught_when_resolved(self):
        check_definition("taskfixture.mod:rebound", ALLOWED)  # the source has a top-level def
        with self.assertRaisesRegex(TaskRefRefused, "defined in posixpath"):
            resolve_task("taskfixture.mod:rebound", ALLOWED)

    def test_refusals_survive_pickling_as_ray_sends_them(self):
        with self.assertRaises(TaskRefRefused) as caught:
            resolve_task("os:system", ALLOWED, "kwargs.task")
        copy = pickle.loads(pickle.dumps(caught.exception))
        self.assertEqual((str(copy), copy.field), (str(caught.exception), "kwargs.task"))


class Allowed(unittest.TestCase):
    def test_public_functions_defined_in_an_allowed_module(self):
        for ref in ("taskfixture.mod:public", "taskfixture.mod:public_async"):
            check_definition(ref, ALLOWED)
            self.assertEqual(resolve_task(ref, ALLOWED).__name__, ref.split(":")[1])

    def test_the_agent_host_is_always_allowed(self):
        check_definition(AGENT_HOST_TASK, ("taskfixture",))
        self.assertEqual(resolve_task(AGENT_HOST_TASK, ("taskfixture",)).__name__, "run_agent")

    def test_checking_the_definition_runs_none_of_the_package_code(self):
        check_definition("sideeffects.tasks:run", ALLOWED)
        self.assertNotIn("sideeffects", sys.modules)
        with self.assertRaisesRegex(TaskRefRefused, "not a function defined"):
            check_definition("sideeffects.tasks:other", ALLOWED)


if __name__ == "__main__":
    unittest.main()
