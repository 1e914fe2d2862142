"""Templates -> the email: an HTML part (inline CSS, table layout: Gmail, Outlook and phones) and
a plain-text part, in one multipart/alternative message with the list headers mail providers ask
of bulk senders (List-Unsubscribe with an HTTPS link and a mailto, List-Unsubscribe-Post for
RFC 8058 one-click).

Templates are compiled once per process (jinja2, autoescaped HTML). Subscribers with the same
filter, window, zone and format get the same digest, so it is rendered once per such group with
placeholders where the per-recipient parts go (address, manage and unsubscribe links), and each
copy is made by substitution: rendering 10,000 digests costs a few hundred renders.
"""

from __future__ import annotations

import binascii
import html
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email
from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape

from aggregator.digest.build import Digest

_TOKEN = secrets.token_hex(6)  # placeholders no feed can guess, so no title can smuggle one in
EMAIL_SLOT = f"urn-{_TOKEN}-email"
MANAGE_SLOT = f"urn-{_TOKEN}-manage"
UNSUBSCRIBE_SLOT = f"urn-{_TOKEN}-unsubscribe"
DATE_SLOT = f"urn-{_TOKEN}-date-"
_DATE_SLOTS = re.compile(re.escape(DATE_SLOT) + r"(\d+)\.")


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("aggregator.digest", "templates"),
        autoescape=select_autoescape(("html",)),
        trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined, auto_reload=False,
    )
    return env


@cache
def template(name: str) -> Template:
    return environment().get_template(name)


def render(name: str, **context: Any) -> str:
    return template(name).render(**context)


FORMATS = {"day": "%-d %b %Y", "when": "%-d %b %Y, %H:%M"}


class Moments:
    """Dates in a render, left as slots: a digest is rendered once for every subscriber of a filter
    and each zone's dates are filled in afterwards by one substitution pass."""


    def __init__(self) -> None:
        self.items: list[tuple[datetime, str]] = []

    def _slot(self, moment: datetime, fmt: str) -> str:
        self.items.append((moment, fmt))
        return f"{DATE_SLOT}{len(self.items) - 1}."

    def day(self, moment: datetime) -> str:
        return self._slot(moment, "day")

    def when(self, moment: datetime) -> str:
        return self._slot(moment, "when")


@dataclass(slots=True)
class Rendered:
    """A digest rendered for a group of subscribers, with slots for each one's dates (by zone),
    address and links."""

    subject: str
    text: str
    html: str | None
    moments: list[tuple[datetime, str]]
    _zones: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def in_zone(self, tz: ZoneInfo) -> tuple[str, str | None]:
        """The digest with its dates in `tz`; the last zone is kept (callers go zone by zone)."""
        if tz.key not in self._zones:
            self._zones.clear()
            dates = [f"{m.astimezone(tz):{FORMATS[f]}}" for m, f in self.moments]

            def fill(text: str) -> str:
                return _DATE_SLOTS.sub(lambda match: dates[int(match.group(1))], text)

            filled = (fill(self.text), fill(self.html) if self.html is not None else None)
            self._zones[tz.key] = filled
            return filled
        return self._zones.get(tz.key) or self.in_zone(tz)

    def personal(self, tz: ZoneInfo, email: str, manage: str, unsubscribe: str) -> tuple[str, str | None]:
        text, page = self.in_zone(tz)
        text = text.replace(EMAIL_SLOT, email).replace(MANAGE_SLOT, manage).replace(UNSUBSCRIBE_SLOT, unsubscribe)
        if page is not None:
            page = (page.replace(EMAIL_SLOT, html.escape(email)).replace(MANAGE_SLOT, html.escape(manage))
                    .replace(UNSUBSCRIBE_SLOT, html.escape(unsubscribe)))
        return text, page


def render_digest(digest: Digest, *, period_start: datetime, now: datetime, more_url: str, feed_url: str,
                  with_html: bool) -> Rendered:
    """The digest for every subscriber of its filter and window, whatever their zone (see Rendered)."""
    moments = Moments()
    context = {"digest": digest, "dates": moments, "since": period_start, "now": now, "more_url": more_url,
               "feed_url": feed_url, "email": EMAIL_SLOT, "manage_url": MANAGE_SLOT,
               "unsubscribe_url": UNSUBSCRIBE_SLOT}
    text = render("digest.txt", **context)
    page = render("digest.html", **context) if with_html else None
    return Rendered(digest.subject, text, page, moments.items)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message ready to send: headers and a text part, optionally an HTML alternative.

    Serialized here rather than by the email package: its generator costs more than building the
    digest (it writes a base64 body line by line); this is a header block, a boundary and two
    base64 bodies, which is all a digest needs. Header values are ASCII or RFC 2047-encoded;
    headers are never folded (all stay far below 998 characters, and some receivers read
    List-Unsubscribe without unfolding it). Tests parse the result back with the email package.

    An address is never an RFC 2047 word (RFC 2047 §5 forbids it): an internationalized domain is
    written in its ASCII (IDNA) form, and an address whose local part is not ASCII is written as
    UTF-8, which only a server offering SMTPUTF8 (RFC 6531/6532) may be given: `needs_smtputf8`."""

    headers: tuple[tuple[str, str], ...]
    text: str
    html: str | None = None

    def __getitem__(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def part(self, subtype: str) -> str | None:
        return self.text if subtype == "plain" else self.html

    @property
    def needs_smtputf8(self) -> bool:
        return any(name in ADDRESS_HEADERS and ascii_address(value) is None for name, value in self.headers)

    def as_bytes(self, linesep: bytes = b"\r\n") -> bytes:
        lines = [f"{name}: {_encode_header(name, value)}".encode() for name, value in self.headers]
        lines.append(b"MIME-Version: 1.0")
        if self.html is None:
            return linesep.join([*lines, *_part_head("plain"), b"", _encode_body(self.text, linesep)])
        boundary = f"=_digest_{secrets.token_hex(12)}".encode()
        lines.append(b'Content-Type: multipart/alternative; boundary="' + boundary + b'"')
        for subtype, body in (("plain", self.text), ("html", self.html)):
            lines += [b"", b"--" + boundary, *_part_head(subtype), b"", _encode_body(body, linesep)]
        lines += [b"--" + boundary + b"--", b""]
        return linesep.join(lines)


def _part_head(subtype: str) -> list[bytes]:
    return [f'Content-Type: text/{subtype}; charset="utf-8"'.encode(), b"Content-Transfer-Encoding: quoted-printable"]


def _encode_body(text: str, linesep: bytes) -> bytes:
    """Quoted-printable (binascii's, in C): mostly-ASCII HTML grows by a few percent, not base64's third."""
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True)
    return encoded.replace(b"\n", linesep) if linesep != b"\n" else encoded


ADDRESS_HEADERS = frozenset({"To"})  # headers holding a bare address (From is MAIL_FROM: "Name <addr>")


def ascii_address(address: str) -> str | None:
    """The address in ASCII (an internationalized domain in its IDNA form), or None when its
    local part is not ASCII: only an SMTPUTF8 server can take such an address."""
    if address.isascii():
        return address
    try:
        return validate_email(address, check_deliverability=False).ascii_email
    except EmailNotValidError:
        return None


def _encode_header(name: str, value: str) -> str:
    if value.isascii():
        return value
    if name in ADDRESS_HEADERS:
        return ascii_address(value) or value  # UTF-8 as it is (RFC 6532), never an encoded word
    name, address = parseaddr(value)
    if address and address.isascii() and "<" in value:  # "Display Name <addr>": encode the name only
        return formataddr((name, address), charset="utf-8")
    return Header(value, "utf-8").encode(maxlinelen=10_000)


def compose(*, sender: str, to: str, subject: str, text: str, html_body: str | None, message_id: str,
            date: datetime, headers: dict[str, str] | None = None) -> Outgoing:
    """One message: text alone, or text and HTML as multipart/alternative (text first, as the
    standard asks: clients show the last part they can)."""
    fields = [("From", sender), ("To", to), ("Subject", subject), ("Date", format_datetime(date)),
              ("Message-ID", message_id), *(headers or {}).items()]
    return Outgoing(tuple(fields), text, html_body)


def list_headers(list_id: str, unsubscribe_url: str, unsubscribe_mailto: str, manage_url: str) -> dict[str, str]:
    return {
        "List-Id": list_id,
        "List-Unsubscribe": f"<{unsubscribe_url}>, <{unsubscribe_mailto}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Help": f"<{manage_url}>",
        "Auto-Submitted": "auto-generated",
        "Precedence": "bulk",
    }
