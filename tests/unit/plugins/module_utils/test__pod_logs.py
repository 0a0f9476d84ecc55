# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import time

import pytest

pytest.importorskip("kubernetes")

from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError  # noqa: E402
from ansible_collections.llmd.verify.plugins.module_utils._pod_logs import (  # noqa: E402
    fail_on_message,
    gather_logs,
    log_containers,
    plan_reads,
    rfc3339,
    role_selector,
)
from ansible_collections.llmd.verify.plugins.module_utils._log_filters import time_key  # noqa: E402
# FakePodLogsApi is served by the pod_logs_api fixture of tests/unit/conftest.py.
from ansible_collections.llmd.verify.tests.unit.fake_pod_logs_api import pod, stamp  # noqa: E402

NOISE = {"waiting_for_vllm": True, "metrics_scrapes": True, "throughput_stats": True}
SCRAPE = 'INFO:     10.0.0.9:40112 - "GET /metrics HTTP/1.1" 200 OK'
WAITING = '"waiting for vLLM to be ready" err="dial tcp [::1]:8200: connect: connection refused"'
STATS = "Engine 000: Avg prompt throughput: 0.0 tokens/s, Avg generation throughput: 0.0 tokens/s"
OOM = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."

DECODE_A = pod("decode-a", sidecars=["routing-proxy"])
DECODE_B = pod("decode-b", sidecars=["routing-proxy"])
PREFILL = pod("prefill-a", labels={"llm-d.ai/role": "prefill"})
LOGS = {
    ("decode-a", "vllm"): [(stamp(1), "starting"), (stamp(3, "1"), SCRAPE), (stamp(3, "12"), "request A"),
                           (stamp(5), STATS)],
    ("decode-a", "routing-proxy"): [(stamp(0), WAITING), (stamp(2), WAITING), (stamp(4), "proxy up")],
    ("decode-b", "vllm"): [(stamp(2), "starting"), (stamp(3, "11"), "request B"), (stamp(6), SCRAPE)],
    ("decode-b", "vllm", "previous"): [(stamp(0), "loading"), (stamp(1), OOM)],
    ("decode-b", "routing-proxy"): [(stamp(4, "5"), "proxy up")],
    ("prefill-a", "vllm"): [(stamp(2, "5"), "prefill starting")],
}


def gather(api, **options):
    options.setdefault("noise_filters", NOISE)
    return gather_logs(api.client(), "llm-d", **options)


@pytest.fixture
def api(pod_logs_api):
    return pod_logs_api([DECODE_A, DECODE_B, PREFILL], LOGS,
                        selections={"llm-d.ai/role=decode": ["decode-a", "decode-b"],
                                    "llm-d.ai/role in (decode,prefill)": ["decode-a", "decode-b", "prefill-a"],
                                    "llm-d.ai/role=decode,app=none": []})


def test_role_selector():
    assert role_selector(["decode"], None) == "llm-d.ai/role=decode"
    assert role_selector(["decode", "prefill"], ["llm-d.ai/model=x"]) == "llm-d.ai/role in (decode,prefill),llm-d.ai/model=x"
    assert role_selector(None, ["app=x", "tier!=y"]) == "app=x,tier!=y"


def test_native_sidecars_are_read_by_default_but_not_ordinary_init_containers():
    spec = pod("p", containers=["vllm"], sidecars=["routing-proxy"], init_containers=["download-model"])
    assert log_containers(spec) == ["routing-proxy", "vllm"]
    assert plan_reads([spec], ["download-model"]) == ([("p", "download-model")], [])


def test_a_container_no_pod_has_lists_each_pods_containers():
    with pytest.raises(LlmdError) as caught:
        plan_reads([DECODE_A, PREFILL], ["vlm"])
    assert caught.value.msg == ("container vlm not found in any selected pod (containers per pod: "
                                "decode-a: routing-proxy, vllm; prefill-a: vllm)")


def test_every_decode_pod_and_container_merged_in_time_order(api):
    result = gather(api, role=["decode"])
    assert result["pods"] == ["decode-a", "decode-b"]
    assert result["selector"] == "llm-d.ai/role=decode"
    assert [(line["pod"], line["container"], line["message"]) for line in result["lines"]] == [
        ("decode-a", "vllm", "starting"),
        ("decode-b", "vllm", "starting"),
        ("decode-b", "vllm", "request B"),  # 03.11 before 03.12: fractions compare as numbers
        ("decode-a", "vllm", "request A"),
        ("decode-a", "routing-proxy", "proxy up"),
        ("decode-b", "routing-proxy", "proxy up"),
    ]
    assert result["lines"][0]["timestamp"] == stamp(1)
    assert result["counts"] == {
        "decode-a": {"routing-proxy": {"read": 3, "kept": 1}, "vllm": {"read": 4, "kept": 2}},
        "decode-b": {"routing-proxy": {"read": 1, "kept": 1}, "vllm": {"read": 3, "kept": 2}},
    }
    assert result["dropped"] == {"waiting_for_vllm": 2, "metrics_scrapes": 2, "throughput_stats": 1,
                                 "exclude": 0, "include": 0}
    assert (result["total_kept"], result["truncated"], result["lines_omitted"]) == (6, False, 0)
    assert result["matches"] == [] and result["match_count"] == 0 and result["not_read"] == []
    # One log request per container, each asking for timestamps (the merge needs them).
    logs = [query for path, query in api.requests if path.endswith("/log")]
    assert len(logs) == 4 and all(query["timestamps"] == "true" for query in logs)


def test_options_reach_the_api_server(api):
    gather(api, pods=["decode-a"], containers=["vllm"], since_seconds=30, tail_lines=2)
    path, query = api.requests[-1]
    assert path == "/api/v1/namespaces/llm-d/pods/decode-a/log"
    assert query == {"container": "vllm", "follow": "false", "sinceSeconds": "30", "tailLines": "2",
                     "timestamps": "true"}


def test_two_roles_and_a_container_only_some_pods_have(api):
    result = gather(api, role=["decode", "prefill"], containers=["routing-proxy"])
    assert result["pods"] == ["decode-a", "decode-b", "prefill-a"]
    assert sorted(result["counts"]) == ["decode-a", "decode-b"]
    assert result["not_read"] == [{"pod": "prefill-a", "container": "routing-proxy",
                                  "reason": "pod has no such container (it has: vllm)"}]


def test_with_previous_reads_both_instances_of_one_listing_of_the_pods(api):
    result = gather(api, role=["decode"], containers=["vllm"], with_previous=True, fail_on=["CUDA out of memory"])
    alone = gather(api, role=["decode"], containers=["vllm"], previous=True, fail_on=["CUDA out of memory"])
    assert result["previous"]["match_count"] == alone["match_count"] == 1
    assert result["previous"]["not_read"] == alone["not_read"] and result["match_count"] == 0
    listings = [path for path, _query in api.requests if path.endswith("/pods")]
    assert len(listings) == 2  # one each for the two calls above
    with pytest.raises(LlmdError, match="with_previous"):
        gather(api, role=["decode"], with_previous=True, previous=True)


def test_a_pod_deleted_between_the_listing_and_its_logs_is_not_read_and_says_why(pod_logs_api):
    # The soak's decode pod restarted while the logs role read it: a 404 for its log, which failed the check.
    api = pod_logs_api([DECODE_A, DECODE_B], LOGS, deleted=("decode-b",))
    result = gather(api, role=["decode"], containers=["vllm"])
    assert result["pods"] == ["decode-a", "decode-b"] and sorted(result["counts"]) == ["decode-a"]
    assert result["not_read"] == [{"pod": "decode-b", "container": "vllm", "reason": "pod decode-b was deleted after "
                                  "it was listed (replaced by a restart or a rollout)"}]


def test_previous_finds_the_crash_and_skips_containers_that_never_restarted(api):
    result = gather(api, role=["decode"], containers=["vllm"], previous=True, fail_on=["CUDA out of memory"])
    assert result["match_count"] == 1
    assert result["matches"] == [{"pod": "decode-b", "container": "vllm", "timestamp": stamp(1), "message": OOM,
                                  "pattern": "CUDA out of memory"}]
    assert result["not_read"] == [{"pod": "decode-a", "container": "vllm",
                                  "reason": 'previous terminated container "vllm" in pod "decode-a" not found'}]
    assert fail_on_message(result) == "fail_on matched 1 line: decode-b/vllm: " + OOM


def test_switched_off_presets_user_filters_and_no_timestamps(api):
    result = gather(api, pods=["decode-a"], noise_filters=dict(NOISE, metrics_scrapes=False),
                    exclude=["^starting$"], include=["request", "GET"], timestamps=False)
    assert result["lines"] == [{"pod": "decode-a", "container": "vllm", "message": SCRAPE},
                               {"pod": "decode-a", "container": "vllm", "message": "request A"}]
    assert result["dropped"] == {"waiting_for_vllm": 2, "metrics_scrapes": 0, "throughput_stats": 1,
                                 "exclude": 1, "include": 1}
    assert result["selector"] is None


def test_max_lines_returns_the_newest_and_says_it_cut(api):
    result = gather(api, role=["decode"], max_lines=2)
    assert [line["message"] for line in result["lines"]] == ["proxy up", "proxy up"]
    assert (result["total_kept"], result["truncated"], result["lines_omitted"]) == (6, True, 4)


def test_no_pod_matches_names_selector_and_namespace(api):
    with pytest.raises(LlmdError, match=r"no pod matches the label selector 'llm-d.ai/role=decode,app=none' "
                                        r"in namespace llm-d"):
        gather(api, role=["decode"], label_selectors=["app=none"])


def test_a_missing_pod_name(api):
    with pytest.raises(LlmdError, match="pod decode-z not found in namespace llm-d"):
        gather(api, pods=["decode-a", "decode-z"])


def test_forbidden_logs_name_the_permission(pod_logs_api):
    fake = pod_logs_api([DECODE_A], LOGS, forbidden=("pods/log",))
    with pytest.raises(LlmdError) as caught:
        gather(fake, role=["decode"])
    assert "may not get pods/log in namespace llm-d (403 Forbidden)" in caught.value.msg
    assert caught.value.details["resource"] == "pods/log" and caught.value.details["verb"] == "get"


def test_bad_numbers_are_refused_before_any_request(api):
    with pytest.raises(LlmdError, match="since_seconds must be at least 1, got 0"):
        gather(api, role=["decode"], since_seconds=0)
    with pytest.raises(LlmdError, match="follow_seconds must be more than 0"):
        gather(api, role=["decode"], follow_seconds=-1.0)
    assert api.requests == []


def test_follow_reads_only_the_window_and_stops_at_its_end(api):
    started = time.monotonic()
    result = gather(api, role=["decode"], containers=["vllm"], follow_seconds=0.6)
    elapsed = time.monotonic() - started
    assert 0.6 <= elapsed < 3
    logs = [query for path, query in api.requests if path.endswith("/log")]
    assert [(q["follow"], q["sinceSeconds"], "tailLines" in q) for q in logs] == [("true", "1", False)] * 2
    # The fake adds a line every 50 ms: each stream saw some of them, and none of the history.
    for name in ("decode-a", "decode-b"):
        assert result["counts"][name]["vllm"]["read"] >= 3
    assert set(line["message"] for line in result["lines"]) == {"followed line"}
    window = result["window"]
    assert all(window["start"] <= line["timestamp"] <= window["end"] for line in result["lines"])
    assert time_key(window["end"]) > time_key(window["start"])


def test_follow_drops_lines_logged_just_before_the_window(pod_logs_api):
    # The API server's sinceSeconds is whole seconds: it sends the line logged 0.3 s before the window.
    just_before = rfc3339(time.time_ns() - 3 * 10 ** 8)
    fake = pod_logs_api([DECODE_A], {("decode-a", "vllm"): [(just_before, "before the window")]})
    result = gather(fake, pods=["decode-a"], containers=["vllm"], follow_seconds=0.3)
    assert result["lines"] and "before the window" not in [line["message"] for line in result["lines"]]


def test_follow_with_tail_lines_keeps_the_history(api):
    result = gather(api, pods=["decode-b"], containers=["vllm"], follow_seconds=0.2, tail_lines=2)
    messages = [line["message"] for line in result["lines"]]
    # The last two lines before the window (the scrape is dropped as noise), then the window's.
    assert messages[0] == "request B" and set(messages[1:]) == {"followed line"}
    assert result["lines"][0]["timestamp"] < result["window"]["start"]
