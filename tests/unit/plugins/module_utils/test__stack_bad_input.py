# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input for stack_info's inventory and rules (_stack, _stack_rules): objects the API server accepts, any content.

The API server checks each field's type against its schema, not what a string or a number says: a recorded
scenario's objects get some of their leaves replaced by values of the same JSON type and any content (a route
timeout of "forever", a port of -1, a duration of "1h1h", an empty name), and some lists emptied or repeated.
The inventory and the problems must come out, each problem with a clear message and hint.
"""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.llmd.verify.plugins.module_utils import _stack, _stack_rules
from ansible_collections.llmd.verify.tests.unit.plugins.bad_input import PROPERTIES, TEXT, assert_clear_message
from ansible_collections.llmd.verify.tests.unit.plugins.module_utils.stack_fixtures import raw

SCENARIOS = ("sim", "optimized-baseline", "inference-scheduling", "crashloop")
KINDS = tuple(_stack.READS)
STRINGS = TEXT | st.sampled_from(["", "0", "-1", "1h1h", "30s", "forever", "80", "http", "True", "llm-d.ai/role",
                                  "decode", "inference.networking.x-k8s.io", "InferencePool", "--port", "--port=x"])
NUMBERS = st.integers(-2 ** 40, 2 ** 40) | st.sampled_from([0, -1, 65536, 80, 8000])


def _leaves(value, path=()):
    """Every (path, value) of value's scalars, and of its lists (to empty or repeat them)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, path + (key,))
    elif isinstance(value, list):
        yield path, value
        for index, item in enumerate(value):
            yield from _leaves(item, path + (index,))
    else:
        yield path, value


def _replacement(value):
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, (int, float)):
        return NUMBERS
    if isinstance(value, str):
        return STRINGS
    if isinstance(value, list):
        return st.sampled_from([[], value + value, value[:1] * 3])
    return st.none()


def _set(objects, path, value):
    target = objects
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@PROPERTIES
@given(st.sampled_from(SCENARIOS), st.data())
def test_any_content_the_api_server_accepts_gives_an_inventory_and_clear_problems(scenario, data):
    wire = raw(scenario)
    for _change in range(data.draw(st.integers(1, 4), label="changes")):
        kind = data.draw(st.sampled_from([key for key in KINDS if wire.get(key)]), label="kind")
        # Names stay: the API server allows only DNS names there.
        leaves = [(path, value) for path, value in _leaves(wire[kind]) if path and path[-2:] != ("metadata", "name")]
        path, value = data.draw(st.sampled_from(leaves), label="leaf")
        _set(wire[kind], path, copy.deepcopy(data.draw(_replacement(value), label=repr(path))))
    guide = data.draw(st.none() | STRINGS, label="guide")
    inventory = _stack.build_inventory(wire, "llm-d", guide=guide)
    params = {"namespace": "llm-d", "guide": guide, "model": data.draw(st.none() | STRINGS, label="model"),
              "expect_routing_sidecar": data.draw(st.none() | st.booleans(), label="sidecar"),
              "min_route_timeout": data.draw(st.integers(0, 10 ** 6), label="timeout")}
    for problem in _stack_rules.find_problems(inventory, params):
        assert problem["severity"] in _stack_rules.SEVERITIES
        assert_clear_message(problem["message"], (wire, params))
        assert_clear_message(problem["hint"], (wire, params))
