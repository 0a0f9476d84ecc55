# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input for metrics_info's readers (_metrics): any Prometheus text, any answer, any `previous`.

A target's answer is generated whole and served from 127.0.0.1; `previous` is what a user may pass back
(the last result, or anything else): the result, or an LlmdError that is clear.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._metrics import diff_targets, parse_metrics, read_metrics
from ansible_collections.llmd.verify.tests.unit.plugins.bad_input import (
    BYTES,
    JSON,
    PROPERTIES,
    TEXT,
    assert_clear_error,
)
from ansible_collections.llmd.verify.tests.unit.conftest import StubServer  # module-scoped: one server for every example

pytest.importorskip("prometheus_client")

SAMPLE_LINES = st.builds("{}{{{}}} {}\n".format, st.sampled_from(["vllm:x_total", "a", "b_bucket", "c:d"]),
                         st.sampled_from(['', 'pod="p"', 'le="+Inf"', 'a="1",a="2"', 'x="\\"', 'p="q"']),
                         st.sampled_from(["1", "1.5", "NaN", "+Inf", "-Inf", "1e400", "x", ""]))
PROMETHEUS = st.lists(SAMPLE_LINES | st.sampled_from(["# TYPE a counter\n", "# TYPE a gauge\n", "# HELP a x\n", "# EOF\n"])
                      | TEXT, max_size=12).map("".join)
NAMES = st.lists(st.sampled_from(["vllm:*", "a", "[", "*", "b"]) | st.text(max_size=10), max_size=3)
TARGET = st.fixed_dictionaries({"metrics": st.dictionaries(st.sampled_from(["a", "b"]), st.lists(
    st.fixed_dictionaries({"labels": st.dictionaries(st.sampled_from(["pod", "le"]), st.text(max_size=3), max_size=2),
                           "value": st.none() | st.floats(allow_nan=False)}), max_size=3), max_size=2)})
# A dict, as the argument spec of previous makes it: of anything.
PREVIOUS = st.dictionaries(st.sampled_from(["url/x", "targets"]) | st.text(max_size=5), JSON | TARGET
                           | st.dictionaries(st.sampled_from(["url/x"]), JSON | TARGET, max_size=1), max_size=2)


class Answers:
    answer = (200, {}, b"")

    def __call__(self, request):
        return self.answer


@pytest.fixture(scope="module")
def target():
    server = StubServer(Answers())
    try:
        yield server
    finally:
        server.stop()


@PROPERTIES
@given(PROMETHEUS, NAMES)
def test_any_prometheus_text_parses_into_samples_and_a_count_of_skipped_lines(text, names):
    samples, skipped = parse_metrics(text, names)
    assert skipped >= 0 and all(set(sample) == {"name", "labels", "value"} for sample in samples)


@PROPERTIES
@given(PREVIOUS, TARGET)
def test_any_previous_read_gives_a_diff(previous, now):
    before = previous.get("targets") if isinstance(previous.get("targets"), dict) else previous
    assert isinstance(diff_targets(before, {"url/x": now}), dict)


@PROPERTIES
@given(st.integers(200, 599), BYTES | PROMETHEUS.map(str.encode), PREVIOUS | st.none(), NAMES)
def test_any_target_answer_and_previous_give_a_result_or_a_clear_error(target, status, body, previous, names):
    target.httpd.app.answer = (status, {"Content-Type": "text/plain"}, body)
    params = {"urls": [target.url + "/metrics"], "names": names, "previous": previous, "timeout": 5, "headers": {}}
    try:
        result = read_metrics(params)
    except LlmdError as err:
        assert_clear_error(err, (body, previous, names))
        return
    assert result["targets"]["url/%s/metrics" % target.url]["status"] == 200


@pytest.mark.parametrize("previous", [{"url/x": {"metrics": {"a": 3}}},
                                      {"url/x": {"metrics": {"a": [{"labels": ["pod"], "value": 1}]}}},
                                      {"url/x": {"metrics": {"a": [{"labels": {"pod": ["p"]}, "value": 1}]}}}])
def test_a_previous_metric_of_the_wrong_shape_counts_from_zero(previous):
    now = {"url/x": {"metrics": {"a": [{"labels": {"pod": "p"}, "value": 2.0}]}}}
    assert diff_targets(previous, now) == {"url/x": {"a": {"delta": 2.0, "samples": [
        {"labels": {"pod": "p"}, "before": 0.0, "after": 2.0, "delta": 2.0}]}}}


@pytest.mark.parametrize("previous", [{"url/x": "the last result, as text"}, {"url/x": {"metrics": ["a"]}}, ["url/x"]])
def test_a_previous_target_of_the_wrong_shape_is_left_out_of_the_diff(previous):
    assert diff_targets(previous, {"url/x": {"metrics": {"a": [{"labels": {}, "value": 2.0}]}}}) == {}
