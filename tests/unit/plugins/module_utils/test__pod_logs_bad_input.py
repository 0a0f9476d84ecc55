# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input for pod_logs_info's readers (_pod_logs, _log_filters): any log body, any filters and numbers.

Log bodies are any bytes (a program may print anything, a timestamp may be malformed); the user's regexes and
numbers are any text and integers: the lines, or an LlmdError that is clear.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.llmd.verify.plugins.module_utils import _pod_logs
from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError
from ansible_collections.llmd.verify.plugins.module_utils._log_filters import (
    LineFilter,
    as_dict,
    cap_lines,
    compile_patterns,
    merge_in_time_order,
)
from ansible_collections.llmd.verify.tests.unit.plugins.bad_input import (
    BYTES,
    PROPERTIES,
    TEXT,
    assert_clear_error,
    assert_clear_message,
)
from ansible_collections.llmd.verify.tests.unit.conftest import StubServer  # module-scoped: one server for every example
from ansible_collections.llmd.verify.tests.unit.fake_pod_logs_api import FakePodLogsApi, pod

STAMPS = st.sampled_from(["2026-11-27T03:00:00.5Z ", "2026-11-27T03:00:00Z ", "2026-11-27T03:00:00.123456789Z ",
                          "2026-13-45T99:99:99.Z ", "2026-11-27T03:00:00.5Z\r", "2026-11-27T03:00:00.5Z", ""])
LOG_BODIES = BYTES | st.lists(st.tuples(STAMPS, TEXT), max_size=10).map(
    lambda lines: "".join(stamp + message + "\n" for stamp, message in lines).encode("utf-8", "surrogatepass"))
# Regexes as users write them, and the ones Python's re refuses in each of its ways.
PATTERNS = st.lists(st.sampled_from(["ERROR", "(", "[", "a{4294967296}", "(?P<x>a)(?P=y)", "\\", "*", "x{2,1}", "(?i)oom"])
                    | st.text(max_size=12), max_size=3)
NUMBERS = st.none() | st.integers(-2 ** 40, 2 ** 40)


@PROPERTIES
@given(st.lists(LOG_BODIES, min_size=1, max_size=3), PATTERNS, PATTERNS, PATTERNS, st.booleans(), NUMBERS)
def test_any_log_bodies_and_filters_give_lines_or_a_clear_error(bodies, exclude, include, fail_on, noise, max_lines):
    given_ = (exclude, include, fail_on)
    try:
        line_filter = LineFilter(noise={"waiting_for_vllm": noise, "metrics_scrapes": noise}, exclude=exclude,
                                 include=include, fail_on=fail_on)
    except LlmdError as err:
        assert_clear_error(err, given_)
        return
    streams = [line_filter.filter("pod-%d" % index, "vllm", _pod_logs._split_lines(body))  # pylint: disable=protected-access
               for index, body in enumerate(bodies)]
    lines, omitted = cap_lines(merge_in_time_order(streams), max(max_lines or 0, 0))
    assert omitted >= 0 and all(isinstance(as_dict(line)["message"], str) for line in lines)
    result = {"matches": line_filter.matches, "match_count": len(line_filter.matches)}
    if line_filter.matches:
        assert_clear_message(_pod_logs.fail_on_message(result), (bodies, given_))


@PROPERTIES
@given(NUMBERS, NUMBERS, st.none() | st.floats(allow_nan=True), NUMBERS)
def test_any_numbers_are_accepted_or_refused_clearly(since_seconds, tail_lines, follow_seconds, max_lines):
    try:
        _pod_logs.check_options(since_seconds, tail_lines, follow_seconds, max_lines or 0)
    except LlmdError as err:
        assert_clear_error(err)


@pytest.fixture(scope="module")
def api():
    fake = FakePodLogsApi([pod("decode-0", containers=("vllm", "routing-proxy"))], {})
    server = StubServer(fake)
    try:
        fake.url = server.url
        yield fake
    finally:
        server.stop()


@PROPERTIES
@given(st.lists(st.tuples(st.just("2026-11-27T03:00:00.5Z"), TEXT.map(lambda text: text.replace("\n", " "))), max_size=8),
       st.lists(st.sampled_from(["vllm", "routing-proxy", "nope"]) | st.text(max_size=5), max_size=2), PATTERNS, NUMBERS)
def test_gathering_any_logs_gives_the_result_or_a_clear_error(api, lines, containers, fail_on, tail_lines):
    api.logs = {("decode-0", "vllm"): [(stamp, message.encode("utf-8", "replace").decode()) for stamp, message in lines]}
    try:
        result = _pod_logs.gather_logs(api.client(), "llm-d", pods=["decode-0"], containers=containers or None,
                                       tail_lines=tail_lines, fail_on=fail_on, max_lines=50)
    except LlmdError as err:
        assert_clear_error(err, (containers, fail_on))
        return
    assert result["pods"] == ["decode-0"] and len(result["lines"]) <= 50


@pytest.mark.parametrize("pattern, complaint", [("a{4294967296}", "the repetition number is too large"),
                                                ("(" * 1000 + ")" * 1000, "nested too deeply")])
def test_a_regex_python_cannot_compile_for_size_is_a_clear_error(pattern, complaint):
    with pytest.raises(LlmdError) as caught:
        compile_patterns("fail_on", [pattern])
    assert caught.value.msg.startswith("invalid regular expression in fail_on: '%s" % pattern[:40])
    assert caught.value.msg.endswith("(%s)" % complaint)
    assert_clear_error(caught.value)


def test_fail_on_matching_a_megabyte_line_shows_an_excerpt_of_it():
    line_filter = LineFilter(fail_on=["ERROR"])
    line_filter.filter("decode-0", "vllm", ["2026-11-27T03:00:00.5Z ERROR " + "x" * 1000000] * 5)
    message = _pod_logs.fail_on_message({"matches": line_filter.matches, "match_count": len(line_filter.matches)})
    assert message.startswith("fail_on matched 5 lines: decode-0/vllm: ERROR xxx")
    assert message.endswith(" (and 2 more)") and len(message) < 1000
