# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the bad-input property tests share: repeatable settings, hostile values, and what a clear message is.

The property everywhere: no input makes our code raise anything but LlmdError, and every message it gives
is text a person can read: no traceback, bounded in length, no raw bytes.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Repeatable (derandomized, no example database) and bounded, for a loaded 2-core CI machine.
PROPERTIES = settings(max_examples=120, deadline=2000, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# The longest message we give: our sentence, a hint and an excerpt of what a server said (500 characters).
MESSAGE_LIMIT = 2000

# Text a server or a user may send: any characters, including control characters and lone surrogates'
# neighbours, plus the markers our parsers look for, so that examples reach past the first check.
MARKERS = ("data: ", "\n\n", "\r\n", "[DONE]", '{"error":', '"kind":"Status"', "Forbidden", "system:anonymous",
           "no healthy upstream", "2026-11-27T03:00:00.5Z ", "# TYPE x counter\n", "x_total{a=\"b\"} 1\n")
TEXT = st.text(max_size=200) | st.lists(st.sampled_from(MARKERS) | st.text(max_size=20), max_size=12).map("".join)
BYTES = st.binary(max_size=300) | TEXT.map(lambda text: text.encode("utf-8", "surrogatepass"))

SCALARS = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
           | st.floats(allow_nan=True, allow_infinity=True) | TEXT)
# JSON-like values of any shape (and the NaN and infinities Python's json accepts).
JSON = st.recursive(SCALARS, lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(max_size=10) | st.sampled_from(("kind", "message", "code", "status", "id", "choices", "text", "object",
                                                                              "error", "metadata", "name", "items")),
                                      children, max_size=5),
                    max_leaves=20)
# Deeper than Python's recursion limit: json.loads raises RecursionError on it.
DEEP_JSON = b"[" * 3000

_BYTES_REPR = re.compile(r"""\bb['"]""")


def assert_clear_message(message, given=""):
    """message is a readable sentence: text, no traceback, bounded, no bytes repr (unless given holds one)."""
    assert isinstance(message, str), "a message must be text, not %r" % type(message)
    assert message.strip(), "an empty message"
    assert "Traceback (most recent call last)" not in message
    assert len(message) <= MESSAGE_LIMIT, "a message of %d characters" % len(message)
    message.encode("utf-8")  # no lone surrogates: undecoded bytes
    if not _BYTES_REPR.search(str(given)):
        assert not _BYTES_REPR.search(message), "a bytes repr in %r" % message[:300]


def assert_clear_error(error, given=""):
    """An LlmdError whose message and hint are clear."""
    assert_clear_message(error.msg, given)
    if error.hint is not None:
        assert_clear_message(error.hint, given)
