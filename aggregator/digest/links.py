"""The URLs a subscriber receives: confirm, manage, unsubscribe (signed), and the web view of a
digest's filter. Built in one place so the emails, the web pages and the tests agree on them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from urllib.parse import quote, urlencode

from aggregator.config import Settings
from aggregator.digest import tokens

CONFIRM_PATH = "/subscriptions/confirm/"
MANAGE_PATH = "/subscriptions/manage/"
UNSUBSCRIBE_PATH = "/subscriptions/unsubscribe/"


def public_base(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = settings.http_host if settings.http_host not in ("0.0.0.0", "::") else "localhost"
    return f"http://{host}:{settings.http_port}"


def mail_domain(settings: Settings) -> str:
    """The domain of the From address: Message-IDs and List-Id are made in it."""
    address = parseaddr(settings.mail_from)[1]
    return address.rpartition("@")[2] or "localhost"


@dataclass(frozen=True, slots=True)
class Links:
    base: str
    secret: bytes
    confirm_hours: int
    link_days: int
    mailto: str  # where mailto: unsubscribe requests go

    @classmethod
    def from_settings(cls, settings: Settings, secret: bytes) -> Links:
        mailto = settings.digest_unsubscribe_mailto or parseaddr(settings.mail_from)[1] or "digest@localhost"
        return cls(public_base(settings), secret, settings.digest_confirm_hours, settings.digest_link_days, mailto)

    def token(self, purpose: str, sub_id: int, now: datetime) -> str:
        life = timedelta(hours=self.confirm_hours) if purpose == "confirm" else timedelta(days=self.link_days)
        return tokens.sign(self.secret, purpose, sub_id, now + life)

    def verify(self, token: str, purpose: str, now: datetime) -> int:
        return tokens.verify(self.secret, token, purpose, now)

    def confirm(self, sub_id: int, now: datetime) -> str:
        return self.base + CONFIRM_PATH + self.token("confirm", sub_id, now)

    def manage(self, sub_id: int, now: datetime) -> str:
        return self.base + MANAGE_PATH + self.token("manage", sub_id, now)

    def unsubscribe(self, sub_id: int, now: datetime) -> str:
        return self.base + UNSUBSCRIBE_PATH + self.token("unsubscribe", sub_id, now)

    def unsubscribe_mailto(self, sub_id: int, now: datetime) -> str:
        subject = quote(f"unsubscribe {self.token('unsubscribe', sub_id, now)}")
        return f"mailto:{self.mailto}?subject={subject}"

    def posts(self, params: Mapping[str, object], since: datetime | None = None) -> str:
        """The filter's posts in the API (the same parameters the digest was built from)."""
        return f"{self.base}/api/v1/posts{_query(params, since)}"

    def feed(self, params: Mapping[str, object]) -> str:
        """The filter as an Atom feed, for readers who would rather follow it in a feed reader."""
        return f"{self.base}/feeds/atom{_query(params)}"


def _query(params: Mapping[str, object], since: datetime | None = None) -> str:
    pairs: list[tuple[str, str]] = []
    for name in ("country", "region", "topic", "role", "match", "q"):
        value = params.get(name)
        values = value if isinstance(value, list | tuple) else [value] if value else []
        pairs += [(name, str(v)) for v in values if v and not (name in ("role", "match") and v == "any")]
    if since is not None:
        pairs.append(("since", since.isoformat(timespec="seconds").replace("+00:00", "Z")))
    return f"?{urlencode(pairs)}" if pairs else ""
