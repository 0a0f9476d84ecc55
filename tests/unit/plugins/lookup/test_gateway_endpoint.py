# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lookup agrees with the module, against the same local stub API server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("kubernetes")

from ansible_collections.llmd.verify.plugins.modules import gateway_endpoint_info  # noqa: E402
from ansible_collections.llmd.verify.tests.unit.plugins.modules.module_runner import run_module  # noqa: E402

# The stub API server (cluster) and the isolation from this machine's kubeconfig: fixtures of tests/unit/conftest.py.
pytestmark = pytest.mark.usefixtures("isolated")

# The lookup runs in a fresh interpreter: Ansible's collection loader must import the collection itself.
LOOKUP = """
import json, sys
from ansible.plugins.loader import init_plugin_loader, lookup_loader
init_plugin_loader([sys.argv[1]])
print(json.dumps(lookup_loader.get("llmd.verify.gateway_endpoint").run([], {}, **json.loads(sys.argv[2]))))
"""
COLLECTIONS_ROOT = os.path.dirname(__file__).rsplit(os.sep + "ansible_collections" + os.sep, 1)[0]


def _pythonpath_without_collections():
    """Keep the path that provides ansible (ansible-test injects it) but let the lookup's own loader find us."""
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    return os.pathsep.join(p for p in paths if p and not os.path.isdir(os.path.join(p, "ansible_collections")))


def lookup(**options):
    env = dict(os.environ, PYTHONPATH=_pythonpath_without_collections())
    done = subprocess.run([sys.executable, "-c", LOOKUP, COLLECTIONS_ROOT, json.dumps(options)], capture_output=True,
                          text=True, timeout=60, check=False, env=env)
    return json.loads(done.stdout) if done.returncode == 0 else done.stderr


def test_the_lookup_returns_the_module_endpoint(cluster, capsys):
    args = {"host": cluster.url, "api_key": "k", "namespace": "llm-d"}
    code, result = run_module(gateway_endpoint_info, args, capsys)
    assert code == 0
    assert lookup(**args) == [result["endpoint"]]


def test_the_lookup_fails_cleanly_on_an_unavailable_mode(cluster):
    assert "mode route is not available" in lookup(host=cluster.url, api_key="k", namespace="llm-d", mode="route")
