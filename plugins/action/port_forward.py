# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs llmd.verify.port_forward state=absent in the controller's process when the task runs there
(plugin_utils/_in_controller). state=present stays a module: its daemon is forked from the module's own
process, not from an Ansible worker with the controller's open pipes and threads."""

from __future__ import annotations

from ansible_collections.llmd.verify.plugins.plugin_utils._in_controller import InControllerAction


class ActionModule(InControllerAction):
    MODULE = "port_forward"

    def runs_here(self, definition):
        return self._task.args.get("state") == "absent" and super().runs_here(definition)
