# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check records from task results, for the verify role: the logic is module_utils._checks'."""

from __future__ import annotations

from ansible_collections.llmd.verify.plugins.module_utils._checks import checks_of, failure_check, prefill_check


class FilterModule:
    def filters(self):
        return {"checks": checks_of, "failure_check": failure_check, "prefill_check": prefill_check}
