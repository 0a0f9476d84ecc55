# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: gateway_endpoint
short_description: The URL of an llm-d deployment's gateway
version_added: 0.1.0
description:
  - Returns the endpoint URL that M(llmd.verify.gateway_endpoint_info) resolves with the same options, for use
    anywhere in a playbook. Its warnings are shown as warnings.
  - Use the module when you also need how the endpoint was found, C(connect_address) or how to reach a
    ClusterIP target.
author:
  - llmd.verify contributors (@llm-d)
extends_documentation_fragment:
  - llmd.verify.gateway_endpoint
  - llmd.verify.k8s_auth
requirements:
  - kubernetes >= 24.2.0 (the Python client)
seealso:
  - module: llmd.verify.gateway_endpoint_info
"""

EXAMPLES = r"""
- name: Use the Gateway's address
  ansible.builtin.debug:
    msg: "{{ lookup('llmd.verify.gateway_endpoint', namespace='llm-d', mode='gateway') }}"

- name: Whatever the exposure, with a given kubeconfig and context
  ansible.builtin.set_fact:
    llmd_endpoint: "{{ lookup('llmd.verify.gateway_endpoint', namespace='llm-d', kubeconfig='~/.kube/prod', context='prod') }}"
"""

RETURN = r"""
_raw:
  description: The endpoint URL, one element.
  type: list
  elements: str
"""

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.llmd.verify.plugins.module_utils._endpoint import ENDPOINT_ARG_SPEC, resolve_endpoint
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._k8s_auth import k8s_auth_argument_spec
from ansible_collections.llmd.verify.plugins.module_utils._k8s_client import get_api_client

display = Display()


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleLookupError("llmd.verify.gateway_endpoint takes no terms, only options such as namespace=")
        self.set_options(var_options=variables, direct=kwargs)
        spec = k8s_auth_argument_spec(**ENDPOINT_ARG_SPEC)
        given = {name: self.get_option(name) for name in spec if self.get_option(name) is not None}
        # The module's own validation: the K8S_AUTH_* fallbacks and types apply exactly as in the module.
        validated = ArgumentSpecValidator(spec).validate(given)
        if validated.error_messages:
            raise AnsibleLookupError("llmd.verify.gateway_endpoint: %s" % "; ".join(validated.error_messages))
        try:
            result = resolve_endpoint(get_api_client(validated.validated_parameters), validated.validated_parameters)
        except LlmdError as err:
            # from None: Ansible would append the chained client exception (headers and all) to the message.
            raise AnsibleLookupError(str(err)) from None
        for warning in result["warnings"]:
            display.warning(warning)
        return [result["endpoint"]]
