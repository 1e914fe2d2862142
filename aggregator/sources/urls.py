"""Feed URLs as people type them: what is accepted, and how a secret in one is hidden from view.

Pure: no database, no network. `check_feed_url` looks at the text only; whether the host may be
reached at all is decided where the socket is opened (ingest/netguard.py), on every resolved
address, so a URL accepted here can still be refused there (127.1, 0x7f.1 and friends are valid
URL text and blocked addresses).

Why credentials are refused rather than stored: the source list is public (`GET /api/v1/sources`,
the filtered feeds name their sources), so a password in a URL would be shown to anyone. Query
parameters such as `?api_key=` are accepted, because some feeds need them, and are masked by
`redact_url` wherever a URL is shown or logged.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from aggregator.errors import InvalidQueryError

MAX_URL_LENGTH = 2000
MASK = "***"

_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_URL_IN_TEXT = re.compile(r"https?://[^\s\"'<>]+", re.IGNORECASE)
# query parameter names whose values are secrets (compared lowercased, without - and _)
_SECRET_NAMES = frozenset({"auth", "sig", "pwd", "pass", "session", "sessionid", "sid", "jwt"})
_SECRET_ENDINGS = ("key", "token", "secret", "password", "passwd", "signature", "credential", "credentials")


def check_feed_url(url: str, parameter: str = "url") -> str:
    """The URL as it will be stored (surrounding whitespace removed), or InvalidQueryError saying why.

    `parameter` names the input in the error (`url`, `feeds add`, `line 12`...).
    """
    text = url.strip()

    def refuse(reason: str) -> InvalidQueryError:
        shown = redact_url(text)
        return InvalidQueryError(parameter, f"{reason}: {shown[:200]!r}")

    if not text:
        raise InvalidQueryError(parameter, "empty URL")
    if len(text) > MAX_URL_LENGTH:
        raise refuse(f"longer than {MAX_URL_LENGTH} characters")
    if _SPACE_OR_CONTROL.search(text):
        raise refuse("contains whitespace or a control character (write a space as %20)")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:  # a bad port or a broken [IPv6] literal
        raise refuse(f"invalid URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise refuse("not an http(s) URL")
    if "@" in parts.netloc:
        raise refuse("a user name or password in a feed URL is refused (the source list is public); "
                     "use a URL without credentials")
    if port == 0:
        raise refuse("invalid port 0")
    problem = _host_problem(parts)
    if problem:
        raise refuse(problem)
    return text


def _host_problem(parts: SplitResult) -> str | None:
    """Why the host of a URL cannot be a host, or None."""
    host = parts.hostname or ""
    if not host:
        return "no host in URL"
    if "[" in parts.netloc:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "invalid IPv6 address in URL"
        return None
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return "invalid host name (an empty or over-long label)"
    labels = ascii_host.removesuffix(".").split(".")
    if len(ascii_host) > 253 or not all(_LABEL.match(label) for label in labels):
        return "invalid host name"
    return None


def redact_url(url: str) -> str:
    """The URL with its secrets masked: user name and password, and the values of query parameters
    named like keys, tokens, passwords or signatures. Anything not a URL comes back unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_is_secret(name) for name, _ in pairs):
            query = urlencode([(name, MASK if _is_secret(name) else value) for name, value in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every http(s) URL inside a text (a log line, an error message) passed through redact_url."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def has_secret(url: str) -> bool:
    return redact_url(url) != url


def _is_secret(name: str) -> bool:
    key = name.lower().replace("-", "").replace("_", "")
    return key in _SECRET_NAMES or key.endswith(_SECRET_ENDINGS)
