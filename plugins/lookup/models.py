# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: models
short_description: The model ids an llm-d endpoint serves
version_added: 0.1.0
description:
  - Asks C(GET /v1/models) at each endpoint given as a term (or at O(endpoint), or through the Kubernetes API
    server proxy with O(transport=api_proxy)) and returns the served model ids.
  - The same code as M(llmd.verify.models_info), so both agree; it waits for a not-ready endpoint only when
    O(wait_timeout) is set.
author:
  - llmd.verify contributors (@llm-d)
extends_documentation_fragment:
  - llmd.verify.http_client
  - llmd.verify.http_client.api_proxy
options:
  _terms:
    description: Endpoint URLs. When none is given, O(endpoint) (or the O(transport=api_proxy) target) is asked.
    type: list
    elements: str
    required: false
  wait_timeout:
    description:
      - Seconds to keep retrying while an endpoint is not ready yet, on the same answers as
        M(llmd.verify.models_info) (connection refused, 502, 503, 504, the EPP's 500 C(no pods available in
        datastore), C(no healthy upstream), ...). V(0) asks once.
    type: float
    default: 0
requirements:
  - requests
  - kubernetes (for O(transport=api_proxy))
seealso:
  - module: llmd.verify.models_info
"""

EXAMPLES = r"""
- name: Ask the first served model
  ansible.builtin.debug:
    msg: "{{ query('llmd.verify.models', 'http://127.0.0.1:8000') | first }}"

- name: Through the Kubernetes API server, to a standalone EPP
  ansible.builtin.set_fact:
    served: "{{ query('llmd.verify.models', transport='api_proxy', namespace='llm-d', service='optimized-baseline-epp', port='80') }}"
"""

RETURN = r"""
_raw:
  description: The served model ids of every endpoint asked, in order.
  type: list
  elements: str
"""

import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.llmd.verify.plugins.module_utils._api_proxy import API_PROXY_ARG_SPEC, open_transport
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._http import HTTP_ARG_SPEC
from ansible_collections.llmd.verify.plugins.module_utils._openai import wait_for_models

# The env fallbacks the modules get from their argument spec.
ENV_FALLBACKS = {"kubeconfig": "K8S_AUTH_KUBECONFIG", "context": "K8S_AUTH_CONTEXT"}


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        params = {name: self.get_option(name) for name in list(HTTP_ARG_SPEC) + list(API_PROXY_ARG_SPEC)}
        for name, variable in ENV_FALLBACKS.items():
            if params[name] is None and os.environ.get(variable):
                params[name] = os.environ[variable]
        if params["transport"] == "api_proxy" and terms:
            raise AnsibleLookupError("llmd.verify.models: give endpoint terms or transport=api_proxy, not both")
        if params["transport"] == "api_proxy" and not params["namespace"]:
            raise AnsibleLookupError("llmd.verify.models: transport=api_proxy needs namespace and service or pod")
        if params["transport"] == "api_proxy" and not (params["service"] or params["pod"]):
            raise AnsibleLookupError("llmd.verify.models: transport=api_proxy needs service or pod")
        ids = []
        for endpoint in terms or [params["endpoint"]]:
            try:
                transport = open_transport(dict(params, endpoint=endpoint))
                ids.extend(wait_for_models(transport, self.get_option("wait_timeout"))["ids"])
            except LlmdError as err:
                raise AnsibleLookupError("llmd.verify.models: %s" % err) from err
        return ids
