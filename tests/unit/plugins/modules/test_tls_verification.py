# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every plugin that reads over HTTPS refuses a certificate it cannot verify, unless told not to verify.

The server has a self-signed certificate for 127.0.0.1: nothing trusts it, so a verifying client must fail
the handshake; with verification turned off (validate_certs, or url_validate_certs for metrics_info, whose
validate_certs is the Kubernetes API server's) the same read succeeds. The models lookup's test is in tests/unit/plugins/lookup/test_models.py (lookups
need the controller's ansible.plugins, which module unit tests do not have).
"""

from __future__ import annotations

import pytest

from ansible_collections.llmd.verify.plugins.modules import inference_check, metrics_info, models_info
from ansible_collections.llmd.verify.tests.unit.plugins.modules.module_runner import run_module

pytest.importorskip("cryptography")
pytest.importorskip("requests")


# https: the self-signed HTTPS stand-in, a fixture of tests/unit/conftest.py.
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
