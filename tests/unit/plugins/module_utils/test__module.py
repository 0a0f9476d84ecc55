# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""run_in_process answers as AnsibleModule would: its option errors, no_log values removed, warnings, failures.
(Every module's own tests run both ways too: tests/unit/plugins/modules/conftest.py.)"""

from __future__ import annotations

from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._module import Definition, run_in_process

SPEC = dict(token=dict(type="str", no_log=True), count=dict(type="int", default=1), mode=dict(type="str", aliases=["m"]))


def echo(module):
    if module.params["count"] < 0:
        raise LlmdError("count %d is below 0 (token %s)" % (module.params["count"], module.params["token"]),
                        hint="give 0 or more", attempts=3)
    module.warn("check mode" if module.check_mode else "for real")
    return {"seen": "token=%s count=%d" % (module.params["token"], module.params["count"])}


def run(args, check_mode=False, definition=None):
    return run_in_process("llmd.verify.echo", definition or Definition(SPEC, echo), args, check_mode)


def test_a_result_with_defaults_changed_false_and_the_no_log_value_hidden():
    result = run({"token": "s3cr3t-value"})
    assert result == {"seen": "token=******** count=1", "changed": False, "warnings": ["for real"]}


def test_check_mode_reaches_the_work():
    assert run({}, check_mode=True)["warnings"] == ["check mode"]


def test_an_unknown_option_is_refused_as_ansiblemodule_words_it():
    result = run({"bogus": 1})
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("Unsupported parameters for (llmd.verify.echo) module: bogus. Supported parameters")


def test_a_wrong_type_is_refused_without_running_the_work():
    result = run({"count": "many", "token": "s3cr3t-value"})
    assert result["failed"] is True and "count" in result["msg"] and "s3cr3t-value" not in str(result)


def test_an_llmd_error_fails_with_its_message_hint_and_details_and_no_secret():
    result = run({"count": -1, "token": "s3cr3t-value"})
    assert result == {"failed": True, "changed": False, "msg": "count -1 is below 0 (token ********)",
                      "hint": "give 0 or more", "attempts": 3}


def test_a_constraint_of_the_definition_is_checked():
    definition = Definition(SPEC, echo, mutually_exclusive=[("token", "mode")])
    result = run({"token": "s3cr3t-value", "mode": "fast"}, definition=definition)
    assert result["failed"] is True and "mutually exclusive" in result["msg"]


def test_an_option_and_its_alias_both_set_is_a_warning():
    result = run({"mode": "a", "m": "b"})
    assert "Both option mode and its alias m are set." in result["warnings"]


def test_the_works_own_warnings_come_first():
    definition = Definition(SPEC, lambda module: {"warnings": ["from the result"]})
    assert run({}, definition=definition)["warnings"] == ["from the result"]
