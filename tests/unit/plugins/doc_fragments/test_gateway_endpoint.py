# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exposure modes and the auto order are written once, in module_utils/_endpoint.py (MODES, AUTO_ORDER):
the doc fragment, the module's and the lookup's docs, the endpoint role's argument spec, the lookup's
integration target and the README are held against them here, so they cannot drift."""

from __future__ import annotations

import ast
import os
import re

import yaml

from ansible_collections.llmd.verify.plugins.doc_fragments.gateway_endpoint import ModuleDocFragment
from ansible_collections.llmd.verify.plugins.module_utils._endpoint import AUTO_ORDER, ENDPOINT_ARG_SPEC, MODES, RESOLVERS

ROOT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir, os.pardir)
FRAGMENT = "llmd.verify.gateway_endpoint"


def read(*path):
    with open(os.path.join(ROOT, *path)) as handle:
        return handle.read()


def plugin_documentation(*path):
    """A plugin's DOCUMENTATION, parsed from its source (lookups cannot be imported without the controller)."""
    for node in ast.parse(read(*path)).body:
        if isinstance(node, ast.Assign) and [target.id for target in node.targets] == ["DOCUMENTATION"]:
            return yaml.safe_load(node.value.value)
    raise AssertionError("no DOCUMENTATION in %s" % os.path.join(*path))


def fragment_mode():
    return yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]["mode"]


def test_every_mode_but_auto_has_a_resolver_and_auto_tries_all_but_cluster():
    assert MODES[0] == "auto" and set(RESOLVERS) == set(MODES) - {"auto"}
    assert set(AUTO_ORDER) == set(MODES) - {"auto", "cluster"} and len(set(AUTO_ORDER)) == len(AUTO_ORDER)


def test_the_argument_spec_takes_the_modes():
    assert ENDPOINT_ARG_SPEC["mode"]["choices"] == list(MODES) and ENDPOINT_ARG_SPEC["mode"]["default"] == "auto"


def test_the_doc_fragment_documents_each_mode_and_the_auto_order():
    mode = fragment_mode()
    assert mode["choices"] == list(MODES) and mode["default"] == "auto"
    described = [re.match(r"V\((\w+)\) ", line).group(1) for line in mode["description"] if line.startswith("V(")]
    assert described == list(MODES[1:]) + ["auto"]
    auto = " ".join(mode["description"])
    tried = re.search(r"V\(auto\) tries (.*?) in this order", auto)
    assert tried is not None and re.findall(r"V\((\w+)\)", tried.group(1)) == list(AUTO_ORDER)


def test_the_module_and_the_lookup_document_mode_only_through_the_fragment():
    for path in (("plugins", "modules", "gateway_endpoint_info.py"), ("plugins", "lookup", "gateway_endpoint.py")):
        doc = plugin_documentation(*path)
        assert FRAGMENT in doc["extends_documentation_fragment"], path
        assert "mode" not in (doc.get("options") or {}), path


def test_the_endpoint_role_takes_the_same_modes():
    spec = yaml.safe_load(read("roles", "endpoint", "meta", "argument_specs.yml"))
    option = spec["argument_specs"]["main"]["options"]["llmd_endpoint_mode"]
    assert option["choices"] == list(MODES) and option["default"] == "auto"


def test_the_lookup_target_tries_every_mode():
    play = yaml.safe_load(read("tests", "integration", "targets", "lookup_gateway_endpoint", "lookup.yml"))[0]
    assert play["tasks"][0]["loop"] == list(MODES)


def test_the_readme_gives_the_auto_order():
    tried = re.search(r"`auto` \(the default\) tries (.*?) in that order", read("README.md").replace("\n", " "))
    assert tried is not None and [name.strip() for name in tried.group(1).split(",")] == list(AUTO_ORDER)
