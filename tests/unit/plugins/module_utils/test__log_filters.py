# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._log_filters import (
    NOISE_PRESETS,
    LineFilter,
    as_dict,
    cap_lines,
    merge_in_time_order,
    split_timestamp,
    time_key,
)

ALL_NOISE = dict((name, True) for name in NOISE_PRESETS)

# Lines as the real programs print them (the seed's samples).
WAITING = ('E0824 16:49:51.115884       1 proxy.go:268] "waiting for vLLM to be ready" '
           'err="dial tcp [::1]:8200: connect: connection refused" logger="proxy server"')
SCRAPE = 'INFO:     10.0.0.9:40112 - "GET /metrics HTTP/1.1" 200 OK'
STATS = ("DEBUG 08-24 18:09:51 [loggers.py:122] Engine 000: Avg prompt throughput: 0.0 tokens/s, Avg generation "
         "throughput: 0.0 tokens/s, Running: 0 reqs, Waiting: 0 reqs, GPU KV cache usage: 0.0%, Prefix cache hit rate: 0.0%")
REQUEST = 'INFO:     10.0.0.7:51234 - "POST /v1/completions HTTP/1.1" 200 OK'
OOM = "ERROR 11-27 03:00:00 [core.py:700] torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."


STAMP = "2026-11-27T03:00:00.5Z"


def run(line_filter, messages):
    """The messages a filter keeps, fed as the API server sends them (with timestamps)."""
    kept = line_filter.filter("decode-a", "vllm", ["%s %s" % (STAMP, message) for message in messages])
    return [line[4] for line in kept]


def test_each_preset_drops_its_noise_and_counts_it():
    line_filter = LineFilter(noise=ALL_NOISE)
    assert run(line_filter, [WAITING, SCRAPE, SCRAPE, STATS, REQUEST]) == [REQUEST]
    assert line_filter.dropped == {"waiting_for_vllm": 1, "metrics_scrapes": 2, "throughput_stats": 1,
                                   "exclude": 0, "include": 0}


@pytest.mark.parametrize("off, kept", [("waiting_for_vllm", WAITING), ("metrics_scrapes", SCRAPE),
                                       ("throughput_stats", STATS)])
def test_a_preset_switched_off_keeps_its_lines(off, kept):
    line_filter = LineFilter(noise=dict(ALL_NOISE, **{off: False}))
    assert run(line_filter, [WAITING, SCRAPE, STATS, REQUEST]) == [kept, REQUEST]
    assert line_filter.dropped[off] == 0


def test_presets_match_fixed_strings_like_grep():
    # "GET /metrics HTTP/1.1" is a fixed string: a regex reading would also drop "GET /metricsXHTTP/1.1".
    line_filter = LineFilter(noise=ALL_NOISE)
    assert run(line_filter, ["GET /metricsXHTTP/1.1", "GET /metrics HTTP/1.0"]) == [
        "GET /metricsXHTTP/1.1", "GET /metrics HTTP/1.0"]


def test_exclude_then_include_with_their_own_counts():
    line_filter = LineFilter(noise=ALL_NOISE, exclude=[r"/health"], include=[r"POST /v1/", r"ERROR"])
    messages = [SCRAPE, 'INFO:     1.2.3.4:5 - "GET /health HTTP/1.1" 200 OK', REQUEST, "INFO loading", OOM]
    assert run(line_filter, messages) == [REQUEST, OOM]
    assert line_filter.dropped == {"waiting_for_vllm": 0, "metrics_scrapes": 1, "throughput_stats": 0,
                                   "exclude": 1, "include": 1}


def test_fail_on_sees_lines_the_filters_drop():
    line_filter = LineFilter(noise=ALL_NOISE, exclude=["ERROR"], fail_on=["CUDA out of memory", "Traceback"])
    assert run(line_filter, [OOM, REQUEST]) == [REQUEST]
    assert line_filter.matches == [{"pod": "decode-a", "container": "vllm", "timestamp": STAMP, "message": OOM,
                                    "pattern": "CUDA out of memory"}]


def test_kept_lines_carry_a_sort_key_pod_container_and_timestamp():
    kept = LineFilter().filter("decode-a", "vllm", [STAMP + " hello", "no timestamp"])
    assert kept == [("2026-11-27T03:00:00500000000", "decode-a", "vllm", STAMP, "hello"),
                    ("", "decode-a", "vllm", None, "no timestamp")]
    assert as_dict(kept[0]) == {"pod": "decode-a", "container": "vllm", "timestamp": STAMP, "message": "hello"}
    assert as_dict(kept[0], timestamps=False) == {"pod": "decode-a", "container": "vllm", "message": "hello"}


def test_a_line_matching_two_fail_on_patterns_is_one_match():
    line_filter = LineFilter(fail_on=["ERROR", "CUDA"])
    run(line_filter, [OOM])
    assert len(line_filter.matches) == 1 and line_filter.matches[0]["pattern"] == "ERROR"


@pytest.mark.parametrize("option", ["exclude", "include", "fail_on"])
def test_an_invalid_regex_names_its_option(option):
    with pytest.raises(LlmdError, match="invalid regular expression in %s: '\\(oops'" % option):
        LineFilter(**{option: ["(oops"]})


def test_split_timestamp():
    assert split_timestamp("2026-11-27T03:00:00.123456789Z INFO hello world") == (
        "2026-11-27T03:00:00.123456789Z", "INFO hello world")
    assert split_timestamp("2026-11-27T03:00:00Z ") == ("2026-11-27T03:00:00Z", "")
    assert split_timestamp("no timestamp here") == (None, "no timestamp here")
    assert split_timestamp("2026-11-27 03:00:00 local") == (None, "2026-11-27 03:00:00 local")


def test_time_key_orders_trimmed_fractions():
    # RFC3339Nano trims trailing zeros: as strings, "05.1Z" would sort after "05.12Z".
    stamps = ["2026-11-27T03:00:05.12Z", "2026-11-27T03:00:05.1Z", "2026-11-27T03:00:05Z", "2026-11-27T03:00:04.999999999Z"]
    assert sorted(stamps, key=time_key) == [stamps[3], stamps[2], stamps[1], stamps[0]]


@given(st.lists(st.tuples(st.integers(0, 59), st.integers(0, 999999999)), max_size=30), st.integers(1, 4))
def test_merge_is_in_time_order_and_keeps_every_line(times, streams_count):
    # In time order, formatted as RFC3339Nano does (trailing zeros of the fraction trimmed).
    stamps = ["2026-11-27T03:00:%02d%sZ" % (second, ("." + ("%09d" % nanos).rstrip("0")) if nanos else "")
              for second, nanos in sorted(times)]
    streams = [LineFilter().filter("pod-%d" % index, "vllm", []) for index in range(streams_count)]
    for index, stamp in enumerate(stamps):
        streams[index % streams_count].extend(
            LineFilter().filter("pod-%d" % (index % streams_count), "vllm", ["%s line %d" % (stamp, index)]))
    merged = merge_in_time_order(streams)
    assert sorted(line[4] for line in merged) == sorted("line %d" % index for index in range(len(stamps)))
    # Same order as the (seconds, nanoseconds) the timestamps were made from.
    assert [line[3] for line in merged] == stamps


def test_cap_lines_keeps_the_newest_and_says_how_many_were_cut():
    assert cap_lines(list(range(10)), 3) == ([7, 8, 9], 7)
    assert cap_lines(list(range(3)), 3) == ([0, 1, 2], 0)
    assert cap_lines(list(range(3)), 0) == ([0, 1, 2], 0)
