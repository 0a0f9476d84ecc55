# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks' target from what the endpoint role found, for the roles: the logic is module_utils._target's."""

from __future__ import annotations

from ansible_collections.llmd.verify.plugins.module_utils._target import needs_port_forward, reach_target


class FilterModule:
    def filters(self):
        return {"reach_target": reach_target, "needs_port_forward": needs_port_forward}
