# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a module is, apart from where it runs: its options, the libraries it needs and its work.

    DEFINITION = k8s_module(STACK_ARG_SPEC, stack_info)                 # work(api_client, params)
    DEFINITION = http_module(dict(wait_timeout=...), work)              # work(transport, params)
    DEFINITION = Definition(argument_spec, work, libraries=...)         # work(module)

    def main():
        run_module(DEFINITION)

A module's file runs it on the target through AnsibleModule (run_module); its action plugin runs the same
definition in the controller's process when the task runs there (run_in_process, called by
plugin_utils/_in_controller.py). Either way
work(module) sees only module.params, module.check_mode, module.warn and module.atomic_move; it returns the
result (with `changed` when it can change anything) or raises LlmdError, whose details join the failed result.
Anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import importlib
import json
import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.common.text.converters import jsonify
from ansible.module_utils.errors import UnsupportedError
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError, fail_from_error


class Definition:
    """A module's argument spec and constraints, its libraries ((name, present, import error) each) and work."""

    def __init__(self, argument_spec, work, libraries=(), **constraints):
        self.argument_spec = argument_spec
        self.work = work
        self.libraries = list(libraries)
        self.constraints = constraints  # mutually_exclusive, required_if, required_one_of, ...

    def missing_library(self):
        """(name, import error) of the first library this Python lacks, or None."""
        return next(((name, error) for name, present, error in self.libraries if not present), None)

    def preload(self):
        """Import the libraries now (the in-controller action does, in the process Ansible forks workers from)."""
        for name, present, _error in self.libraries:
            if present:
                importlib.import_module(name.replace("-", "_"))  # prometheus-client is prometheus_client


def k8s_module(options, work, **constraints):
    """A module of group/llmd.verify.k8s: kubernetes.core's auth options plus options; work(api_client, params)."""
    from ansible_collections.llmd.verify.plugins.module_utils._k8s_auth import k8s_auth_argument_spec
    from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR

    def run(module):
        from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import get_api_client
        return work(get_api_client(module.params), module.params)
    return Definition(k8s_auth_argument_spec(**options), run, [("kubernetes", HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR)],
                      **constraints)


def http_module(options, work, mutually_exclusive=()):
    """A module of group/llmd.verify.http: the endpoint's HTTP options, the API server proxy's, plus options;
    work(transport, params) with the transport those options open."""
    from ansible_collections.llmd.verify.plugins.module_utils._api_proxy import (
        API_PROXY_ARG_SPEC,
        API_PROXY_MUTUALLY_EXCLUSIVE,
        API_PROXY_REQUIRED_IF,
    )
    from ansible_collections.llmd.verify.plugins.module_utils._http import HAS_REQUESTS, HTTP_ARG_SPEC, REQUESTS_IMPORT_ERROR
    argument_spec = dict(HTTP_ARG_SPEC, **API_PROXY_ARG_SPEC)
    argument_spec.update(options)

    def run(module):
        from ansible_collections.llmd.verify.plugins.module_utils._api_proxy import open_transport
        return work(open_transport(module.params), module.params)
    return Definition(argument_spec, run, [("requests", HAS_REQUESTS, REQUESTS_IMPORT_ERROR)],
                      mutually_exclusive=API_PROXY_MUTUALLY_EXCLUSIVE + list(mutually_exclusive),
                      required_if=API_PROXY_REQUIRED_IF)


def not_secret(params):
    """Values of no_log options that are no secret, so that messages naming them stay readable: kubeconfig given
    as a path, and of a kubeconfig given as a dictionary all but its users' credentials (kubeconfig is no_log for
    those). Masked, the file's path or a cluster named "c" would turn every string that holds them into ********."""
    kubeconfig = params.get("kubeconfig")
    if isinstance(kubeconfig, str):
        return {kubeconfig}
    if not isinstance(kubeconfig, dict):
        return set()
    users = kubeconfig.get("users")
    credentials = [entry.get("user") for entry in users if isinstance(entry, dict)] if isinstance(users, list) else [users]
    return set(_strings(kubeconfig)) - set(_strings(credentials))


def _strings(value):
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def run_module(definition):
    """A module's main(): AnsibleModule with the definition's options, its libraries checked, its work run."""
    module = AnsibleModule(argument_spec=definition.argument_spec, supports_check_mode=True, **definition.constraints)
    module.no_log_values.difference_update(not_secret(module.params))
    missing = definition.missing_library()
    if missing:
        module.fail_json(msg=missing_required_lib(missing[0]), exception=missing[1])
    try:
        result = definition.work(module)
    except LlmdError as err:
        fail_from_error(module, err, changed=False)
    for warning in result.pop("warnings", None) or []:  # a result's warnings go through warn(): exit_json(warnings=) is
        module.warn(warning)                            # deprecated (ansible-core 2.23 removes it)
    result.setdefault("changed", False)
    module.exit_json(**result)


class ControllerModule:
    """What a definition's work uses of AnsibleModule, for run_in_process."""

    def __init__(self, params, check_mode):
        self.params = params
        self.check_mode = check_mode
        self.warnings = []

    def warn(self, warning):
        self.warnings.append(warning)

    @staticmethod
    def atomic_move(src, dest):
        os.replace(src, dest)  # same directory: _files writes its temporary file beside dest, mode already set


def run_in_process(name, definition, args, check_mode):
    """The result module `name` (its FQCN) of this definition returns for these args, without a module process:
    the options checked with its argument spec and the failure worded as AnsibleModule words them, its work
    run, its warnings under `warnings`, and the values of no_log options removed, as AnsibleModule removes them."""
    validated = ArgumentSpecValidator(definition.argument_spec, **definition.constraints).validate(args)
    if validated.error_messages:
        msg = validated.errors.msg
        if isinstance(validated.errors[0], UnsupportedError):
            msg = "Unsupported parameters for (%s) module: %s" % (name, msg)
        return remove_values({"failed": True, "changed": False, "msg": msg}, validated._no_log_values)
    validated._no_log_values.difference_update(not_secret(validated.validated_parameters))
    module = ControllerModule(validated.validated_parameters, check_mode)
    try:
        result = definition.work(module)
    except LlmdError as error:
        result = dict(error.details, failed=True, changed=False, msg=error.msg)
        if error.hint:
            result["hint"] = error.hint
    result.setdefault("changed", False)
    warnings = list(result.pop("warnings", None) or [])
    warnings += ["Both option %s and its alias %s are set." % (w["option"], w["alias"]) for w in validated._warnings]
    warnings += ["Alias '%s' is deprecated. See the module docs for more information" % d["name"]
                 for d in validated._deprecations]
    warnings += module.warnings
    if warnings:
        result["warnings"] = warnings
    # Through JSON as a module's result comes (tuples become lists, sets and datetimes as exit_json writes them).
    return json.loads(jsonify(remove_values(result, validated._no_log_values)))
