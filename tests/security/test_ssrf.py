# ruff: noqa: F811  (pytest fixtures are imported, then named as parameters)
"""SSRF end to end: a feed URL added by a person never makes the worker reach an internal address.

tests/test_netguard.py proves the guard on its own (which addresses are public, one lookup per
connection, redirects through the Fetcher). Here the URL takes the ways it really arrives, the
admin API (POST /api/v1/sources) and an OPML import through the CLI, and is then polled by the
real Worker -> Pipeline -> Fetcher. Each case must end as a recorded failure on its source and in
fetch_log (a clear kind and message, the lease released, the poll itself not crashed), with no
socket opened towards the target.

The target is made observable: loopback cases aim at a second local server standing for an
internal service (any request it answers is a breach), every other address is refused and
recorded by `connect_log`. The polling guard allows only the "public" test server, so a
redirect's first hop works and only the hop to the target is refused. Names are answered by a
replaceable resolver (no DNS is ever asked); numeric host forms go to the system resolver,
which is what turns `2130706433` or `0x7f.1` into 127.0.0.1 in production too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.config import Settings
from aggregator.db import Database
from aggregator.db import sources as sources_db
from aggregator.ingest.fetch import Fetcher
from aggregator.ingest.netguard import AddressGuard, system_resolver
from aggregator.ingest.pipeline import Pipeline, PollOutcome
from aggregator.ingest.worker import Worker
from aggregator.runtime import build_web_app
from tests.api.conftest import ADMIN_KEY, TestClient, api_settings, truncate
from tests.support import queries
from tests.support.environment import use_cli_environment
from tests.support.feedserver import RSS_SAMPLE, FeedServer, connect_log, feed_server  # noqa: F401  (fixtures)

KEY = {"X-API-Key": ADMIN_KEY}

# What the fake resolver answers for the names of the cases; anything else goes to the system.
NAMES = {
    "intranet.test": ["127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "metadata6.test": ["fd00:ec2::254"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "mixed.test": ["93.184.216.34", "10.0.0.7"],  # one public, one private record: the host is refused
    "office.test": ["192.168.10.20"],
}


@dataclass(frozen=True)
class Case:
    """`target` is a URL template ({internal}: the internal server's port); with `redirect` the
    source is the public server answering 301 to it."""

    target: str
    kind: str = "blocked_address"
    redirect: bool = False
    needs_fake_dns: bool = False


DIRECT = {
    "loopback": Case("http://127.0.0.1:{internal}/secret"),
    "localhost": Case("http://localhost:{internal}/secret"),
    "loopback v6": Case("http://[::1]:{internal}/secret"),
    "any address 0.0.0.0": Case("http://0.0.0.0:{internal}/secret"),
    "any address as 0": Case("http://0:{internal}/secret"),
    "private 10/8": Case("http://10.0.0.1/feed"),
    "private 172.16/12": Case("http://172.16.5.4/feed"),
    "private 192.168/16": Case("http://192.168.1.1/feed"),
    "link-local v6": Case("http://[fe80::1]/feed"),
    "metadata": Case("http://169.254.169.254/latest/meta-data/"),
    "metadata v6": Case("http://[fd00:ec2::254]/latest/meta-data/"),
    "mapped v6 loopback": Case("http://[::ffff:127.0.0.1]:{internal}/secret"),
    "mapped v6 metadata, hex": Case("http://[::ffff:a9fe:a9fe]/latest/meta-data/"),
    "mapped v6, long form": Case("http://[0:0:0:0:0:ffff:7f00:1]:{internal}/secret"),
    "decimal": Case("http://2130706433:{internal}/secret"),
    "decimal metadata": Case("http://2852039166/latest/meta-data/"),
    "hex": Case("http://0x7f.1:{internal}/secret"),
    "hex dword": Case("http://0x7f000001:{internal}/secret"),
    "octal dword": Case("http://017700000001:{internal}/secret"),
    "short": Case("http://127.1:{internal}/secret"),
    "ideographic full stops": Case("http://127。0。0。1:{internal}/secret"),
    # Dotted forms with leading zeros are refused as malformed before any lookup (an octal reading
    # would be 127.0.0.1, a decimal one 177.0.0.1: neither is guessed).
    "octal": Case("http://0177.0.0.1:{internal}/secret", kind="invalid_url"),
    "zero-padded": Case("http://127.000.000.001:{internal}/secret", kind="invalid_url"),
    "zero-padded metadata": Case("http://169.254.169.0254/latest/meta-data/", kind="invalid_url"),
}
NAMED = {
    "name -> loopback": Case("http://intranet.test:{internal}/secret", needs_fake_dns=True),
    "name -> metadata": Case("http://metadata.test/latest/meta-data/", needs_fake_dns=True),
    "name -> metadata v6": Case("http://metadata6.test/latest/meta-data/", needs_fake_dns=True),
    "name -> mapped v6 loopback": Case("http://mapped.test:{internal}/secret", needs_fake_dns=True),
    "name -> public and private": Case("http://mixed.test/feed", needs_fake_dns=True),
    "name -> 192.168": Case("http://office.test/feed", needs_fake_dns=True),
}
REDIRECTED = {
    "redirect -> loopback": Case("http://127.0.0.1:{internal}/secret", redirect=True),
    "redirect -> localhost": Case("http://localhost:{internal}/secret", redirect=True),
    "redirect -> metadata": Case("http://169.254.169.254/latest/meta-data/", redirect=True),
    "redirect -> mapped v6 metadata": Case("http://[::ffff:a9fe:a9fe]/latest/meta-data/", redirect=True),
    "redirect -> private": Case("http://10.0.0.1/admin", redirect=True),
    "redirect -> decimal": Case("http://2130706433:{internal}/secret", redirect=True),
    "redirect -> hex": Case("http://0x7f.1:{internal}/secret", redirect=True),
    "redirect -> name -> loopback": Case("http://intranet.test:{internal}/secret", redirect=True,
                                         needs_fake_dns=True),
    "redirect -> name -> metadata": Case("http://metadata.test/latest/meta-data/", redirect=True,
                                         needs_fake_dns=True),
    "redirect -> zero-padded": Case("http://127.000.000.001:{internal}/secret", kind="invalid_url", redirect=True),
}
CASES = {**DIRECT, **NAMED, **REDIRECTED}


def lookup(host: str, port: int) -> list[str]:
    return NAMES[host] if host in NAMES else system_resolver(host, port)


@dataclass
class Servers:
    public: FeedServer  # stands for any site on the internet: the only address the guard allows
    internal: FeedServer  # stands for a service on the worker's network: must never be reached

    def source_url(self, name: str, case: Case) -> str:
        """The URL a person adds; for a redirect case, a public URL answering 301 to the target."""
        target = case.target.format(internal=self.internal.port)
        if not case.redirect:
            return target
        path = "/moved/" + name.replace(" ", "-").replace(">", "").replace(",", "")
        self.public.redirect(path, target)
        return self.public.url(path)

    def public_connections(self) -> set[tuple[str, int]]:
        return {self.public.address}


@pytest.fixture
def servers(feed_server: FeedServer) -> Iterator[Servers]:
    with FeedServer() as internal:
        internal.serve("/secret", RSS_SAMPLE)  # a valid feed: reaching it would even "succeed"
        yield Servers(feed_server, internal)


STRICT = {"allow_private_networks": False, "fetch_deadline": 3.0, "connect_timeout": 1.0,
          "api_facets_refresh_seconds": 0.0}


@pytest.fixture
def strict(settings: Settings) -> Settings:
    return settings.model_copy(update=STRICT)


def poll(db: Database, settings: Settings, servers: Servers, url: str) -> PollOutcome:
    """Poll with the real worker, guarded like production except that the public server is allowed."""
    guard = AddressGuard.allowing(servers.public.address, resolver=lookup)
    with Fetcher(settings, guard=guard) as fetcher:
        worker = Worker(db, Pipeline(db, fetcher, settings), settings)
        try:
            outcomes = worker.poll_now([url])
        finally:
            worker.shutdown()
    assert len(outcomes) == 1, outcomes
    return outcomes[0]


def assert_refused_and_recorded(db: Database, url: str, case: Case, outcome: PollOutcome) -> int:
    """The poll failed with the case's kind, and the source and fetch log say so clearly."""
    assert (outcome.outcome, outcome.error_kind) == ("error", case.kind), outcome.describe()
    with db.connection() as conn:
        source = sources_db.get_by_url(conn, url)
        assert source is not None
        log = queries.fetch_log_of_source(conn, source.id)
    assert (source.last_error_kind, source.consecutive_failures, source.lease_owner) == (case.kind, 1, None)
    assert source.enabled and source.permanent_failures == 1  # refused for good, not retried as a glitch
    expected_words = "is not a public address" if case.kind == "blocked_address" else "malformed URL"
    assert source.last_error and expected_words in source.last_error, source.last_error
    assert [(e.outcome, e.error_kind, e.error) for e in log] == [("error", case.kind, source.last_error)]
    return source.id


def assert_nothing_reached(servers: Servers, case: Case, name: str, connects: list[tuple[str, int]]) -> None:
    assert len(servers.internal.requests) == 0
    if case.redirect:  # only the first hop, to the allowed server, which answered the redirect
        assert set(connects) == servers.public_connections(), connects
        assert [r.status for r in servers.public.requests] == [301]
    else:
        assert connects == []


@dataclass
class Api:
    client: TestClient
    db: Database
    settings: Settings


@pytest.fixture(scope="module")
def api_app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One app for the module (starting one per test costs more than the test); emptied per test."""
    settings = api_settings(database_url, tmp_path_factory.mktemp("ssrf"), **STRICT)
    with Database(database_url, max_size=4) as db, TestClient(build_web_app(settings, db)) as client:
        yield Api(client, db, settings)


@pytest.fixture
def api(api_app: Api) -> Api:
    truncate(api_app.db)
    return api_app


@pytest.mark.parametrize("name", CASES)
def test_source_added_through_the_admin_api_never_reaches_the_target(
    name: str, api: Api, servers: Servers, connect_log: list[tuple[str, int]],
) -> None:
    case = CASES[name]
    url = servers.source_url(name, case)
    created = api.client.post("/api/v1/sources", json={"url": url}, headers=KEY)
    assert created.status_code == 201, created.text  # refused at fetch time, where the address is known
    outcome = poll(api.db, api.settings, servers, created.json()["url"])
    source_id = assert_refused_and_recorded(api.db, url, case, outcome)
    shown = api.client.get(f"/api/v1/sources/{source_id}").json()
    assert (shown["last_error_kind"], shown["consecutive_failures"]) == (case.kind, 1)
    assert_nothing_reached(servers, case, name, connect_log)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, strict: Settings, db: Database, tmp_path: Path) -> Iterator[None]:
    """The CLI with production's guard: private networks not allowed, the system resolver."""
    use_cli_environment(monkeypatch, strict.database_url or "", tmp_path, AGGREGATOR_ALLOW_PRIVATE_NETWORKS="false",
                        AGGREGATOR_FETCH_DEADLINE="3", AGGREGATOR_CONNECT_TIMEOUT="1")
    yield


def write_opml(path: Path, urls: list[str]) -> Path:
    from aggregator.sources.files import write_opml as opml_bytes

    path.write_bytes(opml_bytes((url, f"feed {n}", None) for n, url in enumerate(urls)))
    return path


@pytest.mark.parametrize("name", CASES)
def test_source_imported_from_opml_never_reaches_the_target(
    name: str, cli_env: None, db: Database, strict: Settings, servers: Servers, tmp_path: Path,
    connect_log: list[tuple[str, int]], capsys: pytest.CaptureFixture[str],
) -> None:
    case = CASES[name]
    url = servers.source_url(name, case)
    assert main(["feeds", "import-opml", str(write_opml(tmp_path / "feeds.opml", [url]))]) == 0
    assert "imported 1 feed(s)" in capsys.readouterr().out
    outcome = poll(db, strict, servers, url)
    assert_refused_and_recorded(db, url, case, outcome)
    assert_nothing_reached(servers, case, name, connect_log)


def test_cli_poll_with_the_production_guard_refuses_every_form(
    cli_env: None, db: Database, servers: Servers, tmp_path: Path, connect_log: list[tuple[str, int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`aggregator feeds import-opml` then `aggregator poll --all`, nothing allowed or replaced:
    every direct form is refused by the guard the service really runs with."""
    cases = {name: case for name, case in DIRECT.items()}
    urls = {servers.source_url(name, case): case for name, case in cases.items()}
    assert main(["feeds", "import-opml", str(write_opml(tmp_path / "all.opml", list(urls)))]) == 0
    capsys.readouterr()
    assert main(["poll", "--all"]) == 0
    out = capsys.readouterr().out
    assert f"polled {len(urls)} feed(s): 0 new post(s), {len(urls)} failed" in out
    for url, case in urls.items():
        [line] = [line for line in out.splitlines() if f" {url} " in line]
        assert line.startswith("error ") and f"error={case.kind}: " in line, line
        outcome = PollOutcome(0, url, "error", error_kind=case.kind)
        assert_refused_and_recorded(db, url, case, outcome)
    assert connect_log == []
    assert len(servers.internal.requests) == 0 and len(servers.public.requests) == 0
