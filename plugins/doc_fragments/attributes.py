# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """Uniform C(attributes) for every module of the collection."""

    # Every module: extend with llmd.verify.attributes, then set support under attributes.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
"""

    # Modules whose action plugin runs their work in the controller: extend with llmd.verify.attributes.in_controller.
    IN_CONTROLLER = r"""
options: {}
attributes:
  action:
    support: full
    details:
      - When the task runs on the controller (a C(local) connection, as for C(localhost)), the module's work
        runs in the controller's process, with the same options, result and errors, and without starting a
        module process.
      - It runs as a module, on the task's host, with another connection, with C(become), with a task or play
        C(environment), with C(async), or when the controller's Python lacks a library the module needs.
"""

    # Modules that only read: extend with llmd.verify.attributes and llmd.verify.attributes.info_module.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
"""
