"""Signed links, table-driven: what verifies, and every way a token must not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aggregator.digest.tokens import sign, verify
from aggregator.errors import InvalidTokenError

KEY = b"k" * 32
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
GOOD = sign(KEY, "unsubscribe", 42, NOW + timedelta(days=1))


def test_a_token_verifies_to_its_subscription() -> None:
    assert verify(KEY, GOOD, "unsubscribe", NOW) == 42
    assert len(GOOD) < 60, "short enough for a List-Unsubscribe header"


@pytest.mark.parametrize(("token", "purpose", "key", "when", "reason"), [
    (GOOD, "manage", KEY, NOW, "not valid"),  # another purpose
    (GOOD, "unsubscribe", b"x" * 32, NOW, "not valid"),  # another key
    (GOOD, "unsubscribe", KEY, NOW + timedelta(days=1), "expired"),
    ("43" + GOOD[2:], "unsubscribe", KEY, NOW, "not valid"),  # someone else's id
    (GOOD.rsplit(".", 1)[0] + ".AAAA", "unsubscribe", KEY, NOW, "not valid"),
    (GOOD[:-1], "unsubscribe", KEY, NOW, "not valid"),
    ("42." + "z" * 14 + "." + GOOD.rsplit(".", 1)[1], "unsubscribe", KEY, NOW, "malformed"),
    ("", "unsubscribe", KEY, NOW, "malformed"),
    ("42", "unsubscribe", KEY, NOW, "malformed"),
    ("0.abc.def", "unsubscribe", KEY, NOW, "malformed"),
    ("-1.abc.def", "unsubscribe", KEY, NOW, "malformed"),
    ("42.ab-c.def", "unsubscribe", KEY, NOW, "malformed"),
    ("٤٢.abc.def", "unsubscribe", KEY, NOW, "malformed"),  # Arabic-Indic digits are digits to isdigit()
])
def test_refused(token: str, purpose: str, key: bytes, when: datetime, reason: str) -> None:
    with pytest.raises(InvalidTokenError, match=reason) as info:
        verify(key, token, purpose, when)
    assert info.value.parameter == "token"
