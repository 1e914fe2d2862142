"""Settings, declared once: name, default and help text.

Values come from environment variables (`AGGREGATOR_<NAME>`, plus the conventional `DATABASE_URL`)
and from an optional settings file, `config/aggregator.env` (same names, KEY=value lines). The
defaults that are files (the curated feeds, the taxonomy) ship inside the package, in
aggregator/defaults/; FEEDS_FILE and TAXONOMY_DIR point at a copy of one's own instead.
`aggregator settings` prints every setting with its help, and a test keeps README in step.
Settings are passed down explicitly; nothing deep in the code reads the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aggregator import __version__

SETTINGS_FILE = Path("config/aggregator.env")  # in the working folder: the place for local overrides
SHIPPED_FEEDS_FILE = Path(__file__).resolve().parent / "defaults" / "feeds.yaml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AGGREGATOR_",
        env_file=SETTINGS_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "AGGREGATOR_DATABASE_URL"),
        repr=False,  # a URL may carry the password: kept out of repr(settings), and so out of logs
        description="PostgreSQL URL. Unset: an embedded PostgreSQL is started with its data under DATA_DIR.",
    )
    data_dir: Path = Field(
        default=Path("var"),
        description="Folder for local state: the embedded database and the digest Maildir.",
    )
    feeds_file: Path = Field(
        default=None,
        validate_default=True,  # unset becomes the shipped file (see _shipped_feeds_file)
        description="Curated sources synced into the database at start (added; removed ones disabled). Unset: "
        "the list shipped in the package (aggregator/defaults/feeds.yaml).",
    )
    taxonomy_dir: Path | None = Field(
        default=None,
        description="Folder of the country/region/topic taxonomy files (unset: the taxonomy shipped in the "
        "package, aggregator/defaults/taxonomy).",
    )
    sync_feeds_file: bool = Field(
        default=True, description="Sync FEEDS_FILE into the database when the worker starts."
    )
    opml_max_outlines: int = Field(
        default=20000, ge=1, description="Most outlines (feeds and folders) `feeds import-opml` reads from one file."
    )
    allow_private_networks: bool = Field(
        default=False,
        description="Permit fetching loopback, private and link-local addresses (local testing only).",
    )
    user_agent: str = Field(
        default=f"aggregator/{__version__} (regional security news aggregator; feed reader)",
        description="User-Agent sent with every fetch.",
    )
    fetch_deadline: float = Field(
        default=30.0, description="Total seconds one fetch may take, redirects and body included."
    )
    connect_timeout: float = Field(default=10.0, description="Seconds to establish a connection.")
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, description="Cap on a feed body after decompression, in bytes."
    )
    max_redirects: int = Field(default=5, description="Redirects followed before a fetch fails.")
    max_entries_per_poll: int = Field(
        default=50_000, ge=1,
        description="Most entries one poll of a feed stores, the newest; beyond it the rest are left out and "
        "the feed gets a warning (not an error).",
    )
    per_host_concurrency: int = Field(
        default=2, description="Fetches in flight at once to one host, per process."
    )
    fetch_concurrency: int = Field(
        default=16, description="Feeds polled at once by one worker process."
    )
    parse_processes: int = Field(
        default=0,
        description="Processes parsing feeds in parallel (0: one per CPU core, 1: parse in the worker).",
    )
    tick_seconds: float = Field(default=15.0, description="How often the scheduler looks for due feeds.")
    lease_seconds: int = Field(
        default=600, description="How long a claimed feed stays reserved to one worker if it dies."
    )
    shutdown_grace_seconds: float = Field(
        default=20.0, description="On SIGTERM, how long polls in flight may finish before they are abandoned."
    )
    min_interval: int = Field(default=300, description="Shortest poll interval of a feed, seconds.")
    max_interval: int = Field(default=86400, description="Longest poll interval of a feed, seconds.")
    min_retry_seconds: int = Field(
        default=60, ge=1,
        description="Least wait before a feed that failed is polled again, seconds, even below the shortest interval.",
    )
    default_interval: int = Field(
        default=3600, description="Poll interval of a feed before its publishing rhythm is known."
    )
    disable_after_failures: int = Field(
        default=10,
        description="Consecutive permanent failures (404, 410, not a feed) after which a feed is disabled.",
    )
    log_level: str = Field(default="INFO", description="Logging level (DEBUG, INFO, WARNING, ERROR).")
    log_format: str = Field(default="text", description="Log line format: text (event key=value) or json.")
    http_host: str = Field(default="127.0.0.1", description="Address the web server (REST API) listens on.")
    http_port: int = Field(default=8000, description="Port the web server listens on.")
    http_workers: int = Field(
        default=0, ge=0,
        description="Web server processes of `aggregator serve`, each with its own pool (rendering a page is "
        "Python's work, one core per process); 0: one per CPU core, at most 4.",
    )
    db_wait_seconds: float = Field(
        default=5.0,
        description="Longest wait for a database connection; then an API request answers 503 and a poll retries.",
    )
    db_start_seconds: float = Field(
        default=30.0, gt=0,
        description="Longest wait for the database when a command starts (a server still starting up gets this "
        "long); then the command exits with 'cannot connect to the database'.",
    )
    http_pool_size: int = Field(default=10, description="Database connections of one web server process.")
    http_threads: int = Field(
        default=0, ge=0,
        description="Requests one web server process works on at once; the rest wait their turn, in order. "
        "0: one in each process when `aggregator serve` runs several, four in a process that serves alone.",
    )
    http_max_body_bytes: int = Field(
        default=64 * 1024, ge=0,
        description="Largest request body the web server accepts, bytes; larger ones get 413 before being read.",
    )
    admin_api_key: SecretStr | None = Field(
        default=None,
        description="Key for changing sources through the API (X-API-Key header) and the /sources page "
                    "(its sign-in form). Unset: changes are refused.",
    )
    cors_origins: str = Field(
        default="*", description="Origins whose pages may read the GET API, comma-separated (* any, empty none)."
    )
    api_default_limit: int = Field(default=50, description="Posts per page when a request gives no limit.")
    api_max_limit: int = Field(default=200, description="Largest limit (posts per page) a request may ask for.")
    api_statement_timeout: float = Field(
        default=5.0, description="Seconds one API query may run before it is cancelled (answered with 503)."
    )
    api_counts_cache_seconds: float = Field(
        default=60.0, description="How long the per-country/region/topic post counts are reused, seconds."
    )
    api_facets_refresh_seconds: float = Field(
        default=30.0,
        description="How often a web server brings the monthly facet counts up to date, seconds (0: never).",
    )

    smtp_host: str | None = Field(
        default=None,
        description="SMTP server for digest and confirmation emails. Unset: messages go to a Maildir, DATA_DIR/mail.",
    )
    smtp_port: int = Field(default=587, description="SMTP server port (587 STARTTLS, 465 TLS, 25 plain).")
    smtp_tls: str = Field(
        default="starttls", description="SMTP encryption: starttls, tls (implicit, port 465) or none (local relay)."
    )
    smtp_user: str | None = Field(default=None, description="SMTP login name (unset: no authentication).")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password, with SMTP_USER.")
    smtp_timeout: float = Field(default=30.0, description="Seconds one SMTP operation may take.")
    mail_from: str = Field(
        default="Security digest <digest@localhost>", description="From address of digest and confirmation emails."
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL readers reach the web server at, for links in emails (unset: http://HTTP_HOST:HTTP_PORT).",
    )
    digest_secret: SecretStr | None = Field(
        default=None,
        description="Key signing confirm/manage/unsubscribe links (HMAC). Unset: generated once, kept in the database.",
    )
    digest_max_items: int = Field(default=25, description="Most stories in one digest email; the rest are linked.")
    digest_send_empty: bool = Field(
        default=False, description="Send a digest saying nothing matched instead of sending nothing."
    )
    digest_check_seconds: float = Field(
        default=60.0, description="How often the scheduler looks for digests whose send time has come, seconds."
    )
    digest_confirm_hours: int = Field(default=72, description="How long a subscription's confirmation link works.")
    digest_link_days: int = Field(default=365, description="How long manage and unsubscribe links in emails work.")
    digest_max_attempts: int = Field(
        default=8, description="Delivery attempts of one digest before it is given up (its posts go in the next)."
    )
    digest_retry_seconds: float = Field(
        default=60.0, description="Wait before retrying a temporary SMTP failure; doubles per attempt, at most 1 h."
    )
    digest_unsubscribe_mailto: str | None = Field(
        default=None, description="Address of mailto: unsubscribe requests (unset: MAIL_FROM's address)."
    )
    subscribe_address_limit: int = Field(
        default=3, ge=0,
        description="Most confirmation emails one address gets per SUBSCRIBE_ADDRESS_WINDOW_HOURS, however many "
        "requests name it; counted in the database, so across processes (0: no limit).",
    )
    subscribe_address_window_hours: float = Field(
        default=24.0, gt=0, description="The window of SUBSCRIBE_ADDRESS_LIMIT, hours."
    )
    subscribe_client_per_minute: int = Field(
        default=5, ge=0,
        description="Subscription requests (API and form together) one client IP may make per minute, counted "
        "per web process; more are answered 429 (0: no limit).",
    )
    subscribe_client_per_hour: int = Field(
        default=20, ge=0, description="The same per hour (0: no limit)."
    )

    feeds_default_entries: int = Field(default=50, description="Entries in a filtered feed when a URL gives no limit.")
    feeds_max_entries: int = Field(default=200, description="Largest limit (entries) a filtered feed URL may ask for.")
    feeds_max_age: int = Field(
        default=300, description="Cache-Control max-age of filtered feeds, seconds: how long readers may reuse one."
    )
    feeds_cache_entries: int = Field(
        default=512,
        description="Rendered feeds kept in memory per web process, dropped on any post change (0: no cache).",
    )
    feeds_base_url: str | None = Field(
        default=None,
        description="Public URL of the service for feed self links, e.g. https://news.example.org (unset: from "
        "the request).",
    )
    stories: bool = Field(
        default=True,
        description="Group new posts into stories at ingest. Off, a worker keeps no story window in memory "
        "and new posts stand alone until `aggregator recluster` groups them.",
    )
    story_window_hours: float = Field(
        default=72.0, gt=0,
        description="A story takes new posts while its last post is at most this many hours older.",
    )
    story_threshold: float = Field(
        default=0.5, description="Similarity at which a post joins a story (higher: fewer, surer merges).",
    )
    alert_threshold: float = Field(
        default=3.0, gt=0,
        description="Surge alert: today's new stories of a country, place or topic must exceed its 28-day "
        "baseline by this many spreads (median absolute deviations scaled to σ).",
    )
    alert_min_stories: int = Field(
        default=3, ge=1, description="Surge alert: and by at least this many stories.",
    )

    @field_validator("feeds_file", mode="before")
    @classmethod
    def _shipped_feeds_file(cls, value: object) -> object:
        """Unset means the file installed with the package, wherever it is installed: a path
        relative to the working folder would only work from a source checkout."""
        return SHIPPED_FEEDS_FILE if value is None or value == "" else value

    def embedded_pgdata(self) -> Path:
        return self.data_dir / "pgdata"


def request_threads(configured: int, processes: int) -> int:
    """HTTP_THREADS, or what 0 means: four threads in a process that serves alone (`run`, or one
    core), one in each when `serve` runs several, which overlap one another's waits for the database
    (more threads per process then only contend for the interpreter: fewer pages, longer tails)."""
    if configured:
        return configured
    return 4 if processes == 1 else 1


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment and the settings file, with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]


def describe_settings() -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every setting: the single source for docs and --help."""
    rows = []
    for name, info in Settings.model_fields.items():
        env = "DATABASE_URL" if name == "database_url" else f"AGGREGATOR_{name.upper()}"
        default = "" if info.default is None else str(info.default)
        rows.append((env, default, info.description or ""))
    return rows
