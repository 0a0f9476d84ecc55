# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every plugin that reads over HTTPS refuses a certificate it cannot verify, unless told not to verify.

The server has a self-signed certificate for 127.0.0.1: nothing trusts it, so a verifying client must fail
the handshake; with verification turned off (validate_certs, or url_validate_certs for metrics_info, whose
validate_certs is the Kubernetes API server's) the same read succeeds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.llmd.verify.plugins.modules import inference_check, metrics_info, models_info
from ansible_collections.llmd.verify.tests.unit.plugins.module_utils.stub_servers import (
    MODELS,
    VLLM_METRICS,
    StubServer,
    completion,
    self_signed_tls,
)
from ansible_collections.llmd.verify.tests.unit.plugins.modules.module_runner import run_module

pytest.importorskip("cryptography")
pytest.importorskip("requests")


def app(request):
    if request["path"].startswith("/metrics"):
        return VLLM_METRICS
    return MODELS if request["method"] == "GET" else completion()


@pytest.fixture
def https(tmp_path, monkeypatch):
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(variable, raising=False)
    with StubServer(app, tls=self_signed_tls(tmp_path)) as server:
        yield server.url


def test_metrics_info_urls_verify_tls_by_default(https, capsys):
    code, result = run_module(metrics_info, {"urls": [https + "/metrics"]}, capsys)
    assert code == 1 and "TLS failed" in result["msg"] and "CERTIFICATE_VERIFY_FAILED" in result["msg"]
    # The Kubernetes option validate_certs (here: false) is for the API server only, never for the urls.
    code, result = run_module(metrics_info, {"urls": [https + "/metrics"], "validate_certs": False}, capsys)
    assert code == 1 and "TLS failed" in result["msg"]
    code, result = run_module(metrics_info, {"urls": [https + "/metrics"], "url_validate_certs": False}, capsys)
    assert code == 0 and result["targets"]["url/%s/metrics" % https]["status"] == 200


def test_metrics_info_urls_trust_the_given_ca(https, tmp_path, capsys):
    code, result = run_module(metrics_info, {"urls": [https + "/metrics"], "url_ca_path": str(tmp_path / "self.pem")}, capsys)
    assert code == 0, result.get("msg")


def test_models_info_verifies_tls_by_default(https, capsys):
    code, result = run_module(models_info, {"endpoint": https, "wait_timeout": 0}, capsys)
    assert code == 1 and "TLS failed" in result["msg"]
    code, result = run_module(models_info, {"endpoint": https, "validate_certs": False}, capsys)
    assert code == 0 and result["ids"] == ["random"]


def test_inference_check_verifies_tls_by_default(https, capsys):
    code, result = run_module(inference_check, {"endpoint": https, "model": "random"}, capsys)
    assert code == 1 and "TLS failed" in result["msg"]
    code, result = run_module(inference_check, {"endpoint": https, "model": "random", "validate_certs": False}, capsys)
    assert code == 0 and result["text"] == "hi"


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


def test_the_models_lookup_verifies_tls_by_default(https):
    assert "TLS failed" in lookup([https])
    assert lookup([https], validate_certs=False) == ["random"]
