"""Secrets never reach a log line, a terminal, an error body or /metrics.

The secrets: the SMTP password, the admin API key, the digest signing secret and the database
password inside DATABASE_URL, each set to a distinctive value. Every path that handles them is
exercised the way it runs (the CLI in-process through `main`, the app through its lifespan, a
real SMTP server refusing the login, a database port where nothing listens), everything printed
or logged is collected, and none of the values may appear in it. Each scenario also checks that
it really happened (the login was attempted with the password, the request was refused...), so
a test cannot pass by exercising nothing.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from aggregator.cli import main
from aggregator.config import Settings
from aggregator.db import Database
from aggregator.errors import AggregatorError
from aggregator.runtime import build_web_app
from tests.api.conftest import TestClient
from tests.support.database import reset
from tests.support.smtp import free_port

PROJECT = Path(__file__).resolve().parents[2]
SMTP_PASSWORD = "SmtpPass-7c1f9e40"
ADMIN_KEY = "AdminKey-4b2d8a13"
DIGEST_SECRET = "DigestSecret-91e3c7aa"
DB_PASSWORD = "S3cretDbPass-52a6"
SECRETS = (SMTP_PASSWORD, ADMIN_KEY, DIGEST_SECRET, DB_PASSWORD)
CLOSED_PORT_URL = f"postgresql://aggregator:{DB_PASSWORD}@127.0.0.1:1/aggregator"


def leaked(*texts: object) -> list[str]:
    """The secrets found in any of these texts."""
    joined = "\n".join(str(t) for t in texts)
    return [s for s in SECRETS if s in joined]


def secret_settings(database_url: str, tmp: Path, **overrides: object) -> Settings:
    values: dict[str, Any] = {
        "database_url": with_password(database_url), "data_dir": tmp / "var", "feeds_file": tmp / "feeds.yaml",
        "parse_processes": 1, "admin_api_key": ADMIN_KEY, "digest_secret": DIGEST_SECRET,
        "smtp_host": "127.0.0.1", "smtp_port": 1, "smtp_tls": "none", "smtp_user": "digest",
        "smtp_password": SMTP_PASSWORD, "api_facets_refresh_seconds": 0.0,
    }
    values.update(overrides)
    return Settings(**values)


def with_password(database_url: str) -> str:
    """The test database's URL carrying the secret password (trust authentication ignores it)."""
    return psycopg.conninfo.make_conninfo(database_url, password=DB_PASSWORD)


# -- DATABASE_URL: a closed port (started here, checked last) and malformed URLs --------------------

@pytest.fixture(scope="module", autouse=True)
def closed_port_migrate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[str]]:
    """`aggregator migrate` against a closed port, started as the module begins and collected by
    its test: the connection pool gives up only after its start-up wait, and nothing needs to
    wait for that idly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_") and k != "DATABASE_URL"}
    env.update({"DATABASE_URL": CLOSED_PORT_URL, "AGGREGATOR_LOG_LEVEL": "DEBUG", "AGGREGATOR_DB_START_SECONDS": "3",
                "PYTHONPATH": str(PROJECT), "AGGREGATOR_SMTP_PASSWORD": SMTP_PASSWORD,
                "AGGREGATOR_ADMIN_API_KEY": ADMIN_KEY, "AGGREGATOR_DIGEST_SECRET": DIGEST_SECRET})
    process = subprocess.Popen([sys.executable, "-m", "aggregator", "migrate"], env=env,
                               cwd=tmp_path_factory.mktemp("closed-port"), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    yield process
    if process.poll() is None:
        process.kill()
    process.communicate()


@pytest.mark.parametrize("url", [
    f"postgresql://aggregator:{DB_PASSWORD}%zz@127.0.0.1:1/aggregator",  # libpq quotes the bad %-escape
    f"postgresql://aggregator:{DB_PASSWORD}@[::1/aggregator",  # libpq quotes the whole URL
    f"host=127.0.0.1 port=1 password={DB_PASSWORD} more",  # libpq quotes the word without "="
])
def test_a_malformed_database_url_is_refused_without_quoting_it(
    url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AggregatorError) as refused:
        Database(url)
    assert "DATABASE_URL is not a valid" in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__  # no quoting driver error chained
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("AGGREGATOR_DATA_DIR", str(tmp_path / "var"))
    assert main(["migrate"]) == 1
    captured = capsys.readouterr()
    assert "DATABASE_URL is not a valid" in captured.err
    assert leaked(captured.out, captured.err, caplog.text) == []


# -- settings ------------------------------------------------------------------------------------

def test_settings_repr_and_the_settings_command_show_no_secret(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    settings = secret_settings(database_url, tmp_path)
    assert settings.smtp_password and settings.smtp_password.get_secret_value() == SMTP_PASSWORD
    assert DB_PASSWORD in (settings.database_url or "")
    assert leaked(repr(settings), str(settings), f"{settings!r}") == []
    for name, value in {"DATABASE_URL": with_password(database_url), "AGGREGATOR_SMTP_PASSWORD": SMTP_PASSWORD,
                        "AGGREGATOR_ADMIN_API_KEY": ADMIN_KEY, "AGGREGATOR_DIGEST_SECRET": DIGEST_SECRET}.items():
        monkeypatch.setenv(name, value)
    for argv in (["settings"], ["settings", "--markdown"]):
        assert main(argv) == 0
        captured = capsys.readouterr()
        assert "AGGREGATOR_SMTP_PASSWORD" in captured.out and "DATABASE_URL" in captured.out
        assert leaked(captured.out, captured.err) == []


# -- the web app ---------------------------------------------------------------------------------

def test_app_start_refusals_error_bodies_and_metrics_show_no_secret(
    db: Database, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = secret_settings(database_url, tmp_path)
    seen: list[object] = []
    app_db = Database(settings.database_url or "", max_size=2)  # connected with the password-carrying URL
    with app_db, TestClient(build_web_app(settings, app_db)) as client:
        attempts = [
            client.post("/api/v1/sources", json={"url": "https://feeds.example/a"}, headers={"X-API-Key": "wrong"}),
            client.post("/api/v1/sources", json={"url": "https://feeds.example/a"},
                        headers={"Authorization": f"Bearer {ADMIN_KEY[:-1]}"}),
            client.delete("/api/v1/sources/1"),
            client.post("/api/v1/sources", json={"url": "ftp://feeds.example/a"}, headers={"X-API-Key": ADMIN_KEY}),
            client.post("/api/v1/sources", json={"url": 5, "extra": True}, headers={"X-API-Key": ADMIN_KEY}),
            client.patch("/api/v1/sources/999", json={"name": "x"}, headers={"X-API-Key": ADMIN_KEY}),
            client.get("/api/v1/posts", params={"country": "XX"}),
            client.get("/readyz"),
            client.get("/metrics"),
        ]
        assert [r.status_code for r in attempts] == [401, 401, 401, 400, 400, 404, 400, 200, 200]
        seen += [(r.status_code, r.headers, r.text) for r in attempts]
    assert "aggregator_http_request_duration_seconds" in attempts[-1].text
    assert leaked(*seen, caplog.text) == []


# -- SMTP: a server that refuses the login -------------------------------------------------------

class RefusingAuth:
    """An aiosmtpd authenticator refusing everyone; it keeps the passwords it was offered, which
    proves the client really logged in with the secret (and so had the chance to leak it)."""

    def __init__(self) -> None:
        self.offered: list[bytes] = []
        self._lock = threading.Lock()

    def __call__(self, server: object, session: object, envelope: object, mechanism: str,
                 auth_data: Any) -> AuthResult:
        with self._lock:
            self.offered.append(bytes(getattr(auth_data, "password", b"") or b""))
        return AuthResult(success=False, handled=False)


class _AcceptNothing:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "554 5.7.1 not expected: the login was refused"


@pytest.fixture
def refusing_smtp() -> Iterator[tuple[int, RefusingAuth]]:
    auth = RefusingAuth()
    port = free_port()
    controller = Controller(_AcceptNothing(), hostname="127.0.0.1", port=port, authenticator=auth,
                            auth_require_tls=False, auth_required=True)
    controller.start()
    quiet = logging.getLogger("mail.log")  # the test server's own protocol log is not ours to check
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        yield port, auth
    finally:
        quiet.setLevel(level)
        controller.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_an_smtp_login_failure_is_logged_and_recorded_without_the_password(
    db: Database, database_url: str, tmp_path: Path, refusing_smtp: tuple[int, RefusingAuth],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    port, auth = refusing_smtp
    with db.connection() as conn:
        reset(conn, "digests")
    for name, value in {
        "DATABASE_URL": with_password(database_url), "AGGREGATOR_SMTP_HOST": "127.0.0.1",
        "AGGREGATOR_SMTP_PORT": str(port), "AGGREGATOR_SMTP_TLS": "none", "AGGREGATOR_SMTP_USER": "digest",
        "AGGREGATOR_SMTP_PASSWORD": SMTP_PASSWORD, "AGGREGATOR_SMTP_TIMEOUT": "5",
        "AGGREGATOR_ADMIN_API_KEY": ADMIN_KEY, "AGGREGATOR_DIGEST_SECRET": DIGEST_SECRET,
        "AGGREGATOR_DIGEST_SEND_EMPTY": "true", "AGGREGATOR_PUBLIC_URL": "https://digest.example.org",
        "AGGREGATOR_MAIL_FROM": "Digest <digest@example.org>", "AGGREGATOR_LOG_LEVEL": "DEBUG",
        "AGGREGATOR_PARSE_PROCESSES": "1", "AGGREGATOR_DATA_DIR": str(tmp_path / "var"),
        "AGGREGATOR_FEEDS_FILE": str(tmp_path / "feeds.yaml"),
    }.items():
        monkeypatch.setenv(name, value)

    # a confirmation email (sent by `subscriptions add`), then a digest (sent by `digest send-due`)
    assert main(["subscriptions", "add", "pending-reader@example.org", "--country", "KZ"]) == 0
    assert main(["subscriptions", "add", "active-reader@example.org", "--country", "KZ", "--confirmed"]) == 0
    assert main(["digest", "send-due", "--now"]) == 0
    captured = capsys.readouterr()

    assert SMTP_PASSWORD.encode() in auth.offered, "the client logged in with the secret password"
    assert "subscription.confirmation_unsent" in captured.err and "digest.smtp_unavailable" in captured.err
    assert "SMTP login refused: 535" in captured.err
    with db.connection() as conn:
        stored = conn.execute("SELECT coalesce(string_agg(last_error, ' | '), '') FROM digests").fetchone()
    assert stored is not None and "SMTP login refused" in stored[0]
    assert leaked(captured.out, captured.err, stored[0]) == []


# -- last: by now the closed-port run started with the module has had time to give up ------------

def test_a_database_that_cannot_be_reached_is_reported_without_its_password(
    closed_port_migrate: subprocess.Popen[str],
) -> None:
    out, err = closed_port_migrate.communicate(timeout=120)
    assert closed_port_migrate.returncode == 1, (out, err)
    assert "aggregator: cannot connect to the database" in err
    assert "error connecting" in err, "the pool's own warnings were printed, and checked too"
    assert "127.0.0.1" in err, "the refusal is described (host and port), only the password is left out"
    assert leaked(out, err) == []
