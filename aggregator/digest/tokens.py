"""Signed links: confirm, manage and unsubscribe tokens (HMAC-SHA256 with a server-side key).

A subscription id is guessable; a token is not: it carries the id, an expiry and a signature over
(purpose, id, expiry), so a confirm token cannot unsubscribe, an unsubscribe token cannot change
settings, and nobody can act on another person's subscription by counting ids. Tokens are short
(they go in URLs and in the List-Unsubscribe header) and need no database row.

    <id>.<expiry, unix seconds, base 36>.<signature, base64url, 24 bytes>
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime

from aggregator.errors import InvalidTokenError

PURPOSES = ("confirm", "manage", "unsubscribe")
_SIG_BYTES = 24
_MAX_ID = 2**63 - 1
_TOKEN = re.compile(r"(\d{1,19})\.([0-9a-z]{1,13})\.([A-Za-z0-9_-]{1,64})", re.ASCII)


def _signature(secret: bytes, purpose: str, sub_id: int, expires: int) -> str:
    mac = hmac.new(secret, f"{purpose}|{sub_id}|{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:_SIG_BYTES]).decode().rstrip("=")


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def sign(secret: bytes, purpose: str, sub_id: int, expires: datetime) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    stamp = int(expires.timestamp())
    return f"{sub_id}.{_base36(stamp)}.{_signature(secret, purpose, sub_id, stamp)}"


def verify(secret: bytes, token: str, purpose: str, now: datetime | None = None) -> int:
    """The subscription id the token was made for; InvalidTokenError when it was not
    signed with this key for this purpose, or has expired. The comparison takes constant time."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise InvalidTokenError("malformed link")
    sub_id, stamp, signature = int(match.group(1)), int(match.group(2), 36), match.group(3)
    if not 1 <= sub_id <= _MAX_ID:
        raise InvalidTokenError("malformed link")
    if not hmac.compare_digest(signature.encode(), _signature(secret, purpose, sub_id, stamp).encode()):
        raise InvalidTokenError("this link is not valid")
    if (now or datetime.now(UTC)).timestamp() >= stamp:
        raise InvalidTokenError("this link has expired")
    return sub_id
