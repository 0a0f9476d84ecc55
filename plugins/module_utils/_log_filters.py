# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter pod log lines the way the seed does by hand with grep -v, and a little more.

Pure functions over the lines read from the API server (``<RFC 3339 timestamp> <message>``). Kept lines
are tuples ``(sort key, pod, container, timestamp, message)``: tuples merge and sort in C, which matters
at hundreds of thousands of lines; only the lines returned become dicts.
"""

from __future__ import annotations

import heapq
import re

from ansible_collections.llmd.verify.plugins.module_utils._errors import LlmdError

# The seed's three `grep -v` filters, named after what they drop. Fixed strings, as grep uses them.
NOISE_PRESETS = {
    # routing-proxy, while vLLM is not listening yet.
    "waiting_for_vllm": "waiting for vLLM to be ready",
    # vLLM's uvicorn access line for every Prometheus scrape.
    "metrics_scrapes": "GET /metrics HTTP/1.1",
    # vLLM's periodic engine statistics line.
    "throughput_stats": "Avg prompt throughput",
}

# What the API server prefixes with timestamps=true: the kubelet's RFC3339Nano time, always UTC.
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def compile_patterns(option, patterns):
    """Compile user regexes, naming the option and the pattern when one is invalid."""
    compiled = []
    for pattern in patterns or []:
        try:
            compiled.append(re.compile(pattern))
        except (re.error, OverflowError, RecursionError) as error:  # the last two: too large, nested too deeply
            reason = "nested too deeply" if isinstance(error, RecursionError) else error
            raise LlmdError("invalid regular expression in %s: %s (%s)" % (option, repr(pattern)[:100], reason),
                            hint="Python re syntax is expected; escape literal characters such as ( or [") from None
    return compiled


class LineFilter(object):
    """Decides which lines are kept, counts what each filter dropped, collects fail_on matches.

    Order: fail_on looks at every line read (a failure is never hidden by a filter), then the noise
    presets, then O(exclude), then O(include) (when given, only lines matching one of them are kept).
    """

    def __init__(self, noise=None, exclude=None, include=None, fail_on=None):
        self.noise = [(name, NOISE_PRESETS[name]) for name in NOISE_PRESETS if (noise or {}).get(name)]
        self.exclude = compile_patterns("exclude", exclude)
        self.include = compile_patterns("include", include)
        self.fail_on = compile_patterns("fail_on", fail_on)
        self.dropped = dict((name, 0) for name in NOISE_PRESETS)
        self.dropped.update(exclude=0, include=0)
        self.matches = []

    def filter(self, pod, container, raw_lines):
        """The kept lines of one container's log, as (sort key, pod, container, timestamp, message).

        Each filter runs over the whole list in a comprehension: per-line Python calls would cost more
        than reading the logs.
        """
        if self.fail_on:
            self._find_failures(pod, container, [split_timestamp(raw) for raw in raw_lines])
        lines = raw_lines
        for name, text in self.noise:
            # A fixed string never spans the timestamp prefix, so the raw line can be searched.
            kept = [line for line in lines if text not in line]
            self.dropped[name] += len(lines) - len(kept)
            lines = kept
        split = [split_timestamp(line) for line in lines]
        for name, patterns, keep_matching in (("exclude", self.exclude, False), ("include", self.include, True)):
            if patterns:
                kept = [(stamp, message) for stamp, message in split
                        if any(pattern.search(message) for pattern in patterns) is keep_matching]
                self.dropped[name] += len(split) - len(kept)
                split = kept
        return [(time_key(stamp), pod, container, stamp, message) for stamp, message in split]

    def _find_failures(self, pod, container, split_lines):
        for stamp, message in split_lines:
            for pattern in self.fail_on:
                if pattern.search(message):
                    self.matches.append({"pod": pod, "container": container, "timestamp": stamp,
                                         "message": message, "pattern": pattern.pattern})
                    break


def split_timestamp(raw):
    """Split a line the API server sent with timestamps=true into (timestamp, message).

    A line without a leading timestamp (should not happen) is returned whole, with None.
    """
    stamp, sep, message = raw.partition(" ")
    if sep and _TIMESTAMP.match(stamp):
        return stamp, message
    return None, raw


def time_key(timestamp):
    """A sort key for the timestamps split_timestamp returns (or None, which sorts first).

    The API server trims trailing zeros of the fraction (RFC3339Nano), so the strings themselves do not
    sort: ``...:05.1Z`` sorts after ``...:05.12Z``. The key pads the fraction to nine digits.
    """
    if not timestamp:
        return ""
    if timestamp[19] == ".":
        return timestamp[:19] + timestamp[20:-1].ljust(9, "0")
    return timestamp[:19] + "000000000"


def merge_in_time_order(streams):
    """Merge per-container lists of kept lines, each in time order, into one list in time order.

    Lines logged at the same instant come in pod, container and message order.
    """
    return list(heapq.merge(*streams))


def as_dict(line, timestamps=True):
    """A kept line as the module returns it."""
    result = {"pod": line[1], "container": line[2], "message": line[4]}
    if timestamps:
        result["timestamp"] = line[3]
    return result


def cap_lines(lines, max_lines):
    """Keep the newest max_lines lines (0 keeps all); return (lines, how many were left out)."""
    if max_lines and len(lines) > max_lines:
        return lines[-max_lines:], len(lines) - max_lines
    return lines, 0
