# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type our module_utils raise, the one place that reports it, and how messages stay bounded.

A failure the user can act on is an LlmdError: a message saying what is wrong, a hint saying what
to do, and any structured details worth returning. Modules turn it into fail_json; lookups into
AnsibleLookupError. Anything else that escapes is a bug and should show its traceback.
"""

from __future__ import annotations

MESSAGE_EXCERPT = 500  # characters of an answer a message quotes at most


def listed(items, shown=3, separator="; ", total=None):
    """The first few items (problems, names, lines) in one line, and how many more there are: an answer may have
    thousands. total counts them where items holds only the first ones."""
    more = (len(items) if total is None else total) - min(shown, len(items))
    return separator.join(items[:shown]) + (" (and %d more)" % more if more > 0 else "")


class LlmdError(Exception):
    """A failure explained for the user: what went wrong (msg) and what to do about it (hint)."""

    def __init__(self, msg, hint=None, **details):
        super().__init__(msg)
        self.msg = msg
        self.hint = hint
        self.details = details

    def __str__(self):
        if self.hint:
            return "%s (hint: %s)" % (self.msg, self.hint)
        return self.msg


def fail_from_error(module, error, **result):
    """Report an LlmdError through AnsibleModule.fail_json, keeping any partial result."""
    payload = dict(result)
    payload.update(error.details)
    if error.hint:
        payload["hint"] = error.hint
    module.fail_json(msg=error.msg, **payload)
