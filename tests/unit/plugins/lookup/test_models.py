# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The models lookup refuses a certificate it cannot verify unless validate_certs is false."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("cryptography")
pytest.importorskip("requests")

# The lookup runs in a fresh interpreter: Ansible's collection loader must import the collection itself.
LOOKUP = """
import json, sys
from ansible.plugins.loader import init_plugin_loader, lookup_loader
init_plugin_loader([sys.argv[1]])
print(json.dumps(lookup_loader.get("llmd.verify.models").run(json.loads(sys.argv[2]), {}, **json.loads(sys.argv[3]))))
"""
COLLECTIONS_ROOT = os.path.dirname(__file__).rsplit(os.sep + "ansible_collections" + os.sep, 1)[0]


def lookup(terms, **options):
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p and not os.path.isdir(os.path.join(p, "ansible_collections"))))
    done = subprocess.run([sys.executable, "-c", LOOKUP, COLLECTIONS_ROOT, json.dumps(terms), json.dumps(options)],
                          capture_output=True, text=True, timeout=60, check=False, env=env)
    return json.loads(done.stdout) if done.returncode == 0 else done.stderr


# https: the self-signed HTTPS stand-in, a fixture of tests/unit/conftest.py.
def test_the_models_lookup_verifies_tls_by_default(https):
    assert "TLS failed" in lookup([https])
    assert lookup([https], validate_certs=False) == ["random"]
