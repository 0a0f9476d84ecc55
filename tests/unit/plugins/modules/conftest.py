# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every module test twice: as the module runs on a host, and as its action plugin runs it in the controller.
The two must give the same result for the same arguments."""

from __future__ import annotations

import pytest

from ansible_collections.llmd.verify.tests.unit.plugins.modules import module_runner


@pytest.fixture(autouse=True, params=module_runner.PATHS)
def module_path(request):
    module_runner.PATH["now"] = request.param
    yield request.param
    module_runner.PATH["now"] = "module"
