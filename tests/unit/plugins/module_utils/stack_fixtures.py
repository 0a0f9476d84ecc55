# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Namespaces recorded from the sandbox's real control plane (fixtures/stack/*.json), as stack_info reads them.

Each file holds what `kubectl get --raw` returned for /apis, the cluster's GatewayClasses and one list per kind
in the scenario's namespace (managedFields dropped); null where the kind is not served.
"""

from __future__ import annotations

import copy
import json
import os

from ansible_collections.llmd.verify.plugins.module_utils import _stack

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "stack")
_cache = {}


def recorded(scenario):
    """The recorded file of a scenario (a fresh copy)."""
    if scenario not in _cache:
        with open(os.path.join(HERE, scenario + ".json")) as handle:
            _cache[scenario] = json.load(handle)
    return copy.deepcopy(_cache[scenario])


def previous_log(name="crashloop-vllm-previous.log"):
    with open(os.path.join(HERE, name)) as handle:
        return [line for line in handle.read().splitlines() if line.strip()]


def raw(scenario, mutate=None):
    """read_objects()' answer for a recorded scenario; mutate(raw) may edit the wire objects first."""
    data = recorded(scenario)
    served = _stack.served_groups(data["apis"])
    result = {key: (data.get(key) or {}).get("items") if data.get(key) is not None else None for key in _stack.READS}
    result["crds"] = {family: gv in served for family, gv in _stack.CRD_FAMILIES.items()}
    result["refused"] = []
    if mutate:
        mutate(result)
    return result


def inventory(scenario, mutate=None, guide=None):
    return _stack.build_inventory(raw(scenario, mutate), recorded(scenario)["namespace"], guide=guide)


def named(items, prefix):
    """The first wire object whose name starts with prefix."""
    return next(item for item in items if item["metadata"]["name"].startswith(prefix))
