# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugins: one per module, each running its module's definition in the controller only where a
module process would do the same, and the module itself everywhere else."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from unittest import mock

import pytest

from ansible_collections.llmd.verify.plugins.module_utils._module import Definition
from ansible_collections.llmd.verify.plugins.plugin_utils._in_controller import InControllerAction

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, "plugins", "modules")) if name.endswith(".py"))


def action_of(module, args=None, transport="local", become=False, environment=None, async_val=0):
    plugin = importlib.import_module("ansible_collections.llmd.verify.plugins.action." + module).ActionModule
    task = mock.MagicMock(args=args or {}, environment=environment if environment is not None else [{}],
                          async_val=async_val)
    action = plugin(task, mock.MagicMock(transport=transport), mock.MagicMock(become=become, check_mode=False),
                    loader=None, templar=None, shared_loader_obj=None)
    return action, importlib.import_module("ansible_collections.llmd.verify.plugins.modules." + module).DEFINITION


@pytest.mark.parametrize("module", MODULES)
def test_every_module_has_its_action_and_definition(module):
    action, definition = action_of(module)
    assert action.MODULE == module and isinstance(definition, Definition)


@pytest.mark.parametrize("module", MODULES)
def test_a_local_task_runs_in_the_controller(module):
    action, definition = action_of(module)
    assert action.runs_here(definition)


@pytest.mark.parametrize("setting", [dict(transport="ssh"), dict(become=True), dict(environment=[{"HTTPS_PROXY": "x"}]),
                                     dict(async_val=30)])
def test_what_a_module_process_would_see_differently_makes_it_a_module(setting):
    action, definition = action_of("stack_info", **setting)
    assert not action.runs_here(definition)


def test_a_library_the_controller_lacks_makes_it_a_module():
    action, definition = action_of("stack_info")
    definition = Definition({}, None, [("kubernetes", False, "ModuleNotFoundError: No module named 'kubernetes'")])
    assert not action.runs_here(definition)


@pytest.mark.parametrize("module", MODULES)
def test_loading_an_action_imports_its_modules_libraries(module):
    # Ansible loads the action class in the process it forks the task's worker from: what it imports then,
    # every later worker has.
    code = "import sys; import ansible_collections.llmd.verify.plugins.action.%s; print(' '.join(sys.modules))" % module
    collections = os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([collections, os.environ.get("PYTHONPATH", "")]))
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env).stdout
    libraries = {name.replace("-", "_") for name, _present, _error in action_of(module)[1].libraries}
    assert libraries <= set(loaded.split())


def test_a_library_that_cannot_be_imported_is_left_to_the_task():
    definition = Definition({}, None, [("no-such-library", True, None)])
    with pytest.raises(ImportError):
        definition.preload()
    with mock.patch.object(importlib.import_module("ansible_collections.llmd.verify.plugins.modules.stack_info"),
                           "DEFINITION", definition):
        class Broken(InControllerAction):  # pylint: disable=unused-variable
            MODULE = "stack_info"


def test_the_module_runs_with_the_tasks_arguments_where_the_controller_may_not():
    action, _definition = action_of("verify_report", {"dest": "/tmp/x"}, become=True)
    with mock.patch.object(action, "_execute_module", return_value={"changed": False, "ok": True}) as execute:
        result = action.run(task_vars={})
    execute.assert_called_once_with(module_name="llmd.verify.verify_report", module_args={"dest": "/tmp/x"},
                                    task_vars={}, wrap_async=False)
    assert result["ok"] is True


def test_an_async_task_runs_the_module_wrapped_for_async():
    # Ansible refused the task at once ("does not support async") before the action said it does.
    action, _definition = action_of("models_info", {"endpoint": "http://127.0.0.1:1"}, async_val=30)
    assert action._supports_async  # pylint: disable=protected-access
    with mock.patch.object(action, "_execute_module", return_value={"started": 1}) as execute:
        action.run(task_vars={})
    assert execute.call_args.kwargs["wrap_async"] is True


def test_in_the_controller_the_report_is_written_and_nothing_starts(tmp_path):
    action, _definition = action_of("verify_report", {"dest": str(tmp_path), "checks": [
        {"name": "models", "status": "passed", "time": 0.1}]})
    with mock.patch.object(action, "_execute_module") as execute:
        result = action.run(task_vars={})
    execute.assert_not_called()
    assert result["changed"] is True and result["ok"] is True
    assert os.path.isfile(str(tmp_path / "localhost" / "report.md"))
    assert oct(os.stat(str(tmp_path / "localhost" / "report.md")).st_mode & 0o777) == "0o644"
