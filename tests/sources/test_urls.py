"""Table-driven tests of the feed URL rules and of masking secrets in URLs (pure, no I/O)."""

from __future__ import annotations

import pytest

from aggregator.errors import InvalidQueryError
from aggregator.query import Vocabulary
from aggregator.sources.spec import SourceInput, check_source, clean_name
from aggregator.sources.urls import MAX_URL_LENGTH, check_feed_url, redact_text, redact_url

ACCEPTED = {
    "plain": ("https://example.org/feed", "https://example.org/feed"),
    "surrounding spaces trimmed": ("  http://example.org/rss\n", "http://example.org/rss"),
    "port": ("http://example.org:8080/rss", "http://example.org:8080/rss"),
    "highest port": ("http://example.org:65535/", "http://example.org:65535/"),
    "upper-case scheme": ("HTTPS://Example.ORG/a", "HTTPS://Example.ORG/a"),
    "query key (masked when shown)": ("https://e.org/f?api_key=s3cr3t", "https://e.org/f?api_key=s3cr3t"),
    "IPv6 literal": ("http://[2001:db8::1]:8080/f", "http://[2001:db8::1]:8080/f"),
    "internationalized name": ("https://пример.рф/rss", "https://пример.рф/rss"),
    "trailing dot": ("https://example.org./rss", "https://example.org./rss"),
    "underscore in a label": ("https://my_blog.example.org/rss", "https://my_blog.example.org/rss"),
    # valid URL text, refused later by the address guard on the resolved address
    "loopback": ("http://127.0.0.1:8000/x", "http://127.0.0.1:8000/x"),
    "hex form": ("http://0x7f.1/x", "http://0x7f.1/x"),
    "ideographic full stops": ("http://127。0。0。1/x", "http://127。0。0。1/x"),
}

REFUSED = {
    "space in host": ("http://exa mple.org/", "whitespace"),
    "tab in path": ("http://example.org/a\tb", "whitespace"),
    "newline inside": ("http://example.org/\nX-Injected: 1", "whitespace"),
    "port out of range": ("http://127.0.0.1:99999/", "Port out of range"),
    "port not a number": ("http://example.org:http/", "invalid URL"),
    "port zero": ("http://example.org:0/", "invalid port 0"),
    "user and password": ("http://user:pass@example.org/x", "user name or password"),
    "user only (a token)": ("https://ghp_token@example.org/x", "user name or password"),
    "empty password": ("http://user:@example.org/x", "user name or password"),
    "backslash trick": ("http://evil.example\\@good.example/", "user name or password"),
    "no scheme": ("example.org/feed", "not an http(s) URL"),
    "ftp": ("ftp://example.org/feed", "not an http(s) URL"),
    "file": ("file:///etc/passwd", "not an http(s) URL"),
    "javascript": ("javascript:alert(1)", "not an http(s) URL"),
    "no host": ("http:///feed", "not an http(s) URL"),
    "port but no host": ("http://:80/feed", "no host"),
    "empty label": ("http://example..org/", "invalid host name"),
    "label over 63": (f"http://{'a' * 64}.org/", "invalid host name"),
    "hyphen at label start": ("http://-bad.example.org/", "invalid host name"),
    "percent in host": ("http://exa%20mple.org/", "invalid host name"),
    "broken IPv6": ("http://[::1/feed", "invalid URL"),
    "bracketed non-address": ("http://[example.org]/", "IPv6"),
    "too long": ("https://example.org/" + "a" * MAX_URL_LENGTH, "longer than"),
    "empty": ("   ", "empty URL"),
}


@pytest.mark.parametrize(("given", "stored"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_urls(given: str, stored: str) -> None:
    assert check_feed_url(given) == stored


@pytest.mark.parametrize(("given", "says"), REFUSED.values(), ids=REFUSED.keys())
def test_refused_urls_say_why_and_show_no_secret(given: str, says: str) -> None:
    with pytest.raises(InvalidQueryError) as refused:
        check_feed_url(given, "line 7")
    assert refused.value.parameter == "line 7"
    assert says in refused.value.message
    assert "pass@" not in str(refused.value) and "ghp_token" not in str(refused.value)


REDACTED = {
    "nothing secret": ("https://example.org/feed?page=2&q=key", "https://example.org/feed?page=2&q=key"),
    "password": ("http://user:hunter2@example.org/x", "http://***@example.org/x"),
    "user only": ("https://ghp_abc@example.org/x", "https://***@example.org/x"),
    "api_key": ("https://e.org/f?api_key=abc&page=2", "https://e.org/f?api_key=***&page=2"),
    "apiKey, token, access-token": ("https://e.org/f?apiKey=a&token=b&access-token=c&x=1",
                                    "https://e.org/f?apiKey=***&token=***&access-token=***&x=1"),
    "signature and secret": ("https://e.org/f?sig=a&client_secret=b", "https://e.org/f?sig=***&client_secret=***"),
    "password parameter": ("https://e.org/f?user=me&password=p", "https://e.org/f?user=me&password=***"),
    "fragment kept": ("https://e.org/f?key=a#top", "https://e.org/f?key=***#top"),
    "not a URL": ("just text", "just text"),
}


@pytest.mark.parametrize(("url", "shown"), REDACTED.values(), ids=REDACTED.keys())
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_masks_every_url_in_a_message() -> None:
    message = ("poll.failed url=https://e.org/f?token=T0K3N error=redirect to "
               "'http://u:PA55@other.example/x' refused; see https://docs.example/help")
    shown = redact_text(message)
    assert "T0K3N" not in shown and "PA55" not in shown
    assert "url=https://e.org/f?token=*** " in shown and "'http://***@other.example/x'" in shown
    assert shown.endswith("see https://docs.example/help")


VOCABULARY = Vocabulary(countries=frozenset({"KZ", "UZ"}), topics=frozenset({"terrorism", "cyber"}), regions={})


@pytest.mark.parametrize(("given", "expected"), [
    (SourceInput("https://e.org/f"), ("https://e.org/f", None, None, None)),
    (SourceInput(" https://e.org/f ", "  Window\n on  Eurasia ", ["kz", "KZ", " uz"], ["Cyber"]),
     ("https://e.org/f", "Window on Eurasia", ("KZ", "UZ"), ("cyber",))),
    (SourceInput("https://e.org/f", "", [], []), ("https://e.org/f", None, (), ())),
])
def test_check_source_canonical_form(given: SourceInput, expected: tuple[object, ...]) -> None:
    spec = check_source(given, VOCABULARY)
    assert (spec.url, spec.name, spec.default_countries, spec.default_topics) == expected


@pytest.mark.parametrize(("given", "parameter", "says"), [
    (SourceInput("https://e.org/f", countries=["XX"]), "countries", "unknown code 'XX'"),
    (SourceInput("https://e.org/f", topics=["gardening"]), "topics", "unknown code 'gardening'"),
    (SourceInput("http://exa mple.org/", where="line 3"), "url", "whitespace"),
])
def test_check_source_names_the_bad_field(given: SourceInput, parameter: str, says: str) -> None:
    with pytest.raises(InvalidQueryError) as refused:
        check_source(given, VOCABULARY)
    assert refused.value.parameter == parameter and says in refused.value.message


def test_clean_name_is_one_bounded_line() -> None:
    assert clean_name("a" * 1000) == "a" * 300
    assert clean_name(" \t\n ") is None
