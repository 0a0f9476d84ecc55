# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input for every module's arguments: each main() driven with arguments generated from its own argument spec.

Each option is left out, given a value of its type (any content), or a value of any other shape. Whatever the
arguments, the module exits (fail_json with a clear message, or exit_json); it never raises. Everything it could
reach stays on this machine: the kubeconfig names https://127.0.0.1:1 (nothing listens), endpoints and urls
http://127.0.0.1:1, reports go to a temporary directory, port_forward runs in check mode (no daemon is forked).
"""

from __future__ import annotations

import importlib
import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible.module_utils import basic
from ansible_collections.llmd.verify.plugins.module_utils import _k8s_client
from ansible_collections.llmd.verify.tests.unit.plugins.bad_input import JSON, PROPERTIES, TEXT, assert_clear_message
from ansible_collections.llmd.verify.tests.unit.plugins.modules import module_runner

MODULES = ("gateway_endpoint_info", "inference_check", "metrics_info", "models_info", "pod_logs_info", "port_forward",
           "stack_info", "verify_report", "verify_summary")
NOWHERE = "http://127.0.0.1:1"
# Options whose values would reach beyond this test: always set to what stays on this machine (see the docstring).
PINNED = ("kubeconfig", "host", "endpoint", "urls", "dest", "proxy", "ca_cert", "client_cert", "client_key",
          "ca_path", "url_ca_path", "url_client_cert", "url_client_key", "kubectl_binary", "resolve")
# Numbers stay small so that no wait or follow outlasts an example; waits left out get a short one, not their default.
NUMBERS = {"int": st.integers(-3, 1), "float": st.floats(-1, 0.3)}
SHORT = {"wait_timeout": 0, "timeout": 2}
STRINGS = TEXT | st.sampled_from(["", "0", "80", "http", "auto", "decode", "vllm", "-1", "1e999", "a\nb", "a=b,c"])


class _Captured(Exception):
    pass


def argument_spec(module):
    """The argument_spec and the other AnsibleModule arguments a module's main() passes."""
    def capture(self, *args, **kwargs):
        raise _Captured(kwargs)
    original = basic.AnsibleModule.__init__
    basic.AnsibleModule.__init__ = capture
    try:
        module.main()
    except _Captured as captured:
        return captured.args[0]
    finally:
        basic.AnsibleModule.__init__ = original
    raise AssertionError("%s.main() built no AnsibleModule" % module.__name__)


def _of_type(spec):
    if spec.get("choices"):
        choices = st.sampled_from(list(spec["choices"]))
        return st.lists(choices, max_size=2) if spec.get("type") == "list" else choices
    kind = spec.get("type", "str")
    if kind in NUMBERS:
        return NUMBERS[kind]
    if kind == "bool":
        return st.booleans()
    if kind == "list":
        return st.lists(_of_type({"type": spec.get("elements", "str")}), max_size=3)
    if kind == "dict":
        return st.dictionaries(STRINGS, STRINGS | JSON, max_size=3)
    if kind == "raw":
        return JSON
    return STRINGS


def arguments(spec, pinned):
    """Generated module arguments: each option absent, of its type, or of any shape; PINNED ones as pinned."""
    options = {}
    for name, option in spec.items():
        if name in PINNED:
            continue
        # ansible-core's own validation raises TypeError for a list of non-dicts or a number given to a dict
        # option with suboptions (noise_filters): no module can catch that, so such options get dicts only.
        shapes = st.dictionaries(STRINGS, JSON, max_size=3) if option.get("options") else JSON
        options[name] = st.sampled_from(["absent", "typed", "typed", "any"]).flatmap(
            lambda how, name=name, option=option, shapes=shapes: st.just(SHORT.get(name)) if how == "absent"
            else _of_type(option) if how == "typed" else shapes)
    return st.fixed_dictionaries(options).map(
        lambda args: dict({name: value for name, value in args.items() if value is not None}, **pinned))


@pytest.fixture(scope="module")
def nowhere(tmp_path_factory):
    """A kubeconfig for an API server that is not there, and directories for reports and forwards."""
    base = tmp_path_factory.mktemp("bad-input")
    kubeconfig = base / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "nowhere",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "nowhere", "context": {"cluster": "c", "user": "u", "namespace": "llm-d"}}],
        "users": [{"name": "u", "user": {"token": "not-a-secret"}}]}))
    (base / "run").mkdir()
    return base


@pytest.mark.parametrize("name", MODULES)
@settings(PROPERTIES, max_examples=20,
          suppress_health_check=list(PROPERTIES.suppress_health_check) + [HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_arguments_exit_with_a_result_or_a_clear_failure(name, nowhere, capsys, monkeypatch, data):
    module = importlib.import_module("ansible_collections.llmd.verify.plugins.modules." + name)
    spec = argument_spec(module)["argument_spec"]
    pinned = {option: value for option, value in (
        ("kubeconfig", str(nowhere / "kubeconfig")), ("endpoint", NOWHERE), ("urls", [NOWHERE + "/metrics"]),
        ("dest", str(nowhere / "reports"))) if option in spec}
    args = data.draw(arguments(spec, pinned), label="arguments")
    if name == "port_forward":
        args["_ansible_check_mode"] = True
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(nowhere / "run"))
    monkeypatch.setattr(_k8s_client, "_clients", {})
    capsys.readouterr()
    code, result = module_runner.run_module(module, args, capsys)
    assert code in (0, 1)
    assert "Traceback (most recent call last)" not in json.dumps(result)
    if code:
        assert result.get("failed") is True
        assert_clear_message(result["msg"], args)


@pytest.mark.parametrize("timeout", [0, -1, float("nan")])
def test_a_timeout_of_zero_or_below_is_refused_clearly_not_by_urllib3s_value_error(nowhere, capsys, timeout):
    module = importlib.import_module("ansible_collections.llmd.verify.plugins.modules.models_info")
    code, result = module_runner.run_module(module, {"endpoint": NOWHERE, "timeout": timeout, "wait_timeout": 0}, capsys)
    assert code == 1 and result["msg"] == "timeout must be a number of seconds above 0, got %r" % float(timeout)
    assert result["hint"] == "for example timeout: 30"


@pytest.mark.parametrize("args, option", [({"api_key": "t\u0100ken"}, "api_key"), ({"headers": {"X-Team": "caf\u00e9\u2603"}}, "header X-Team")])
def test_a_header_python_cannot_send_is_named_not_a_unicode_encode_error(nowhere, capsys, args, option):
    module = importlib.import_module("ansible_collections.llmd.verify.plugins.modules.models_info")
    code, result = module_runner.run_module(module, dict(args, endpoint=NOWHERE, wait_timeout=0), capsys)
    assert code == 1 and result["msg"] == "%s holds characters an HTTP header cannot carry (only Latin-1)" % option
    assert "t\u0100ken" not in json.dumps(result, ensure_ascii=False)


def test_a_kubeconfig_is_readable_in_messages_but_its_credentials(nowhere, capsys):
    # kubeconfig is no_log for the credentials of a kubeconfig given as a dictionary; the rest is no secret and
    # stays readable: a file's path, an inline kubeconfig's server and names.
    module = importlib.import_module("ansible_collections.llmd.verify.plugins.modules.stack_info")
    path = str(nowhere / "kubeconfig")
    code, result = module_runner.run_module(module, {"kubeconfig": path, "context": "no-such-context", "namespace": "llm-d"},
                                            capsys)
    assert code == 1 and path in result["msg"] and "********" not in json.dumps(result)
    inline = yaml.safe_load((nowhere / "kubeconfig").read_text())
    code, result = module_runner.run_module(module, {"kubeconfig": inline, "namespace": "llm-d"}, capsys)
    assert code == 1 and result["msg"].startswith("cannot reach the Kubernetes API server at https://127.0.0.1:1: ")
    inline["users"][0]["user"]["token"] = inline["current-context"] = "inline-token-value"  # it reaches the message
    code, result = module_runner.run_module(module, {"kubeconfig": inline, "namespace": "llm-d"}, capsys)
    assert code == 1 and "inline-token-value" not in json.dumps(result) and "name ******** in" in result["msg"]
