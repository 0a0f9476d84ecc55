# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs llmd.verify.port_forward in the controller's process when the task runs there (plugin_utils/_in_controller).
A forward's daemon is then forked from the Ansible worker, and keeps nothing of it (module_utils/_port_forward)."""

from __future__ import annotations

from ansible_collections.llmd.verify.plugins.plugin_utils._in_controller import InControllerAction


class ActionModule(InControllerAction):
    MODULE = "port_forward"
