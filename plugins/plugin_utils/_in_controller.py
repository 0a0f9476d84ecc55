# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module's definition in the controller's process when the task runs on the controller anyway.

A module process costs about half a second here (a Python start, AnsiballZ, ansible's module_utils); a
verify.yml run starts several. Our modules only talk to the Kubernetes API and to HTTP endpoints and write
report files, so on a `local` connection their work gives the same result in the controller's process
(module_utils/_module.run_in_process).

The module runs as a module, as before, when running here could differ from what a module would do: another
connection (a delegated or remote host), become (another user's files and credentials), a task
`environment` (a module sees it in its environment, the controller's process does not), async, or a library
the controller's Python lacks (the module's interpreter may have it, and else says so itself).
"""

from __future__ import annotations

import importlib

from ansible.plugins.action import ActionBase
from ansible_collections.llmd.verify.plugins.module_utils._module import run_in_process


class InControllerAction(ActionBase):
    """The action of module MODULE (its name in plugins/modules): its DEFINITION run here, or the module."""

    MODULE = None
    DEFINITION = None
    # As ansible.builtin.normal: async is the module's (it runs as a module then, see runs_here).
    _supports_check_mode = True
    _supports_async = True

    def __init_subclass__(cls, **kwargs):
        # Ansible's strategy loads a task's action class in the controller's main process before it forks the
        # task's worker (to read BYPASS_HOST_LOOP), and a worker keeps nothing it imports. Importing the
        # module's libraries here, once, spares every later worker that import (kubernetes: about 0.4 s).
        super().__init_subclass__(**kwargs)
        cls.DEFINITION = importlib.import_module("ansible_collections.llmd.verify.plugins.modules." + cls.MODULE).DEFINITION
        try:
            cls.DEFINITION.preload()
        except ImportError:
            pass  # a library that is present but broken fails the task that needs it, with its error

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if not self.runs_here(self.DEFINITION):
            wrap_async = bool(self._task.async_val)
            result.update(self._execute_module(module_name="llmd.verify." + self.MODULE, module_args=self._task.args,
                                               task_vars=task_vars, wrap_async=wrap_async))
            if not wrap_async:
                self._remove_tmp_path(self._connection._shell.tmpdir)
            return result
        result.update(run_in_process("llmd.verify." + self.MODULE, self.DEFINITION, self._task.args,
                                     self._play_context.check_mode))
        return result

    def runs_here(self, definition):
        """Whether the module's work may run in this process (see the module docstring)."""
        return (self._connection.transport in ("local", "ansible.builtin.local")
                and not self._play_context.become and not any(self._task.environment or [])
                and not self._task.async_val
                and definition.missing_library() is None)
