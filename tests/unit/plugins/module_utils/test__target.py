# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks' target: the HTTP modules' options for every way an endpoint is reached, and its record."""

from __future__ import annotations

import os

import yaml

from ansible_collections.llmd.verify.plugins.module_utils._target import (
    CLUSTER_IP_REACH,
    needs_port_forward,
    reach_target,
)

IN_CLUSTER = {"endpoint": "http://gaie-epp.llm-d.svc.cluster.local:80", "mode": "standalone",
              "source": {"kind": "Service", "name": "gaie-epp"}, "warnings": [],
              "reach": {"direct": False,
                        "port_forward": {"namespace": "llm-d", "service": "gaie-epp", "port": 80},
                        "api_proxy": {"transport": "api_proxy", "namespace": "llm-d", "service": "gaie-epp", "port": "80",
                                      "scheme": "http"}}}
FORWARD = {"endpoint": "http://127.0.0.1:40000", "namespace": "llm-d", "target": {"kind": "Service"}}


def test_a_given_url_is_used_as_it_is():
    reached = reach_target({"skipped": True}, None, "http://gw:8080", "auto", {"gw": "10.0.0.1"})
    assert reached["target"] == {"transport": "direct", "endpoint": "http://gw:8080", "resolve": {"gw": "10.0.0.1"}}
    assert reached["check"]["message"] == "http://gw:8080 (given, via direct)"


def test_a_cluster_ip_target_through_the_port_forward():
    assert needs_port_forward(IN_CLUSTER, "auto") and needs_port_forward(IN_CLUSTER, "port_forward")
    reached = reach_target(IN_CLUSTER, FORWARD)
    assert reached["target"] == {"transport": "direct", "endpoint": "http://127.0.0.1:40000", "resolve": {}}
    assert reached["endpoint"]["mode"] == "standalone" and reached["endpoint"]["via"] == "port_forward"
    assert reached["check"]["message"] == "http://127.0.0.1:40000 (standalone, via port_forward)"


def test_a_cluster_ip_target_through_the_api_server_proxy():
    assert not needs_port_forward(IN_CLUSTER, "api_proxy")
    reached = reach_target(IN_CLUSTER, None, "", "api_proxy")
    assert reached["target"] == {"transport": "api_proxy", "namespace": "llm-d", "service": "gaie-epp", "port": "80",
                                 "scheme": "http"}
    assert reached["check"]["message"].endswith("(standalone, via api_proxy)")


def test_a_direct_endpoint_connects_where_the_status_says_when_its_host_has_no_dns():
    route = {"endpoint": "https://chat.apps.example", "mode": "route", "connect_address": "127.0.0.9",
             "reach": {"direct": True}}
    assert not needs_port_forward(route)
    reached = reach_target(route, None, "", "auto", {"other": "1.2.3.4"})
    assert reached["target"]["resolve"] == {"chat.apps.example": "127.0.0.9", "other": "1.2.3.4"}


def test_failures_give_an_empty_target_and_a_failed_record_with_the_message():
    gateway_failed = reach_target({"failed": True, "msg": "no gateway found"}, None)
    assert gateway_failed["target"] == {} and gateway_failed["check"]["message"] == "no gateway found"
    forward_failed = reach_target(IN_CLUSTER, {"failed": True, "msg": "pods/portforward is forbidden"})
    assert forward_failed["target"] == {} and forward_failed["check"]["status"] == "failed"
    assert forward_failed["check"]["message"] == "pods/portforward is forbidden"
    assert not needs_port_forward({"failed": True, "msg": "x"})


def test_the_roles_offer_exactly_these_ways_to_reach_a_cluster_ip_target():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
    with open(os.path.join(root, "roles", "endpoint", "meta", "argument_specs.yml")) as handle:
        spec = yaml.safe_load(handle)["argument_specs"]["main"]["options"]["llmd_transport"]
    assert tuple(spec["choices"]) == CLUSTER_IP_REACH
