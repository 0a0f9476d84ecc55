# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module with given arguments and read what it returned, on ansible-core 2.18 to 2.21: as a module
(its main()), or as its action plugin runs it in the controller (run_in_process), as PATH says.
tests/unit/plugins/modules/conftest.py runs every test of a module both ways."""

from __future__ import annotations

import contextlib
import json

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes
from ansible_collections.llmd.verify.plugins.module_utils._module import run_in_process

try:  # ansible-core 2.19+
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core 2.18
    from unittest import mock

    @contextlib.contextmanager
    def patch_module_args(args):
        with mock.patch.object(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))):
            yield


PATHS = ("module", "controller")
PATH = {"now": "module"}


def run_module(module, args, capsys):
    """(exit code, result) of the module called with args, the way PATH["now"] says."""
    if PATH["now"] == "controller":
        return run_in_controller(module, args)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as caught:
            module.main()
    result = json.loads(capsys.readouterr().out)
    result.pop("invocation", None)  # the module's own echo of its arguments; the controller's result has none
    return caught.value.code, result


def run_in_controller(module, args):
    """(exit code, result) of the module's DEFINITION as its action plugin runs it in the controller."""
    check_mode = bool(args.get("_ansible_check_mode"))
    args = dict((key, value) for key, value in args.items() if not key.startswith("_ansible_"))
    result = run_in_process("llmd.verify." + module.__name__.rsplit(".", 1)[-1], module.DEFINITION, args, check_mode)
    return (1 if result.get("failed") else 0), result
