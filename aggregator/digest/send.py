"""The edge to mail delivery: SMTP (STARTTLS / TLS, auth, one connection per batch, SMTPUTF8 for
internationalized addresses) or, with no SMTP host configured, a local Maildir under DATA_DIR/mail
(so the service runs with no mail server).

smtplib's errors are mapped here, once. What concerns one message is an Outcome, not an
exception: sent; retry (4xx, a dropped connection: try again later); bounced (5xx at RCPT: the
address is dead, stop mailing it); rejected (5xx for this message: do not repeat it). What stops
the whole batch (no connection, TLS or login refused) raises DeliveryError.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from types import TracebackType
from typing import Protocol

from aggregator.config import Settings
from aggregator.digest.render import Outgoing, ascii_address
from aggregator.errors import ConfigError, DeliveryError

log = logging.getLogger(__name__)

TLS_MODES = ("starttls", "tls", "none")


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # sent | retry | bounced | rejected
    detail: str = ""

    @property
    def sent(self) -> bool:
        return self.status == "sent"


class Sender(Protocol):
    def send(self, message: Outgoing, recipient: str) -> Outcome: ...

    def close(self) -> None: ...

    def __enter__(self) -> Sender: ...

    def __exit__(self, *exc: object) -> None: ...


class _Closing:
    def __enter__(self) -> Sender:
        return self  # type: ignore[return-value]

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release by default."""


def envelope_sender(settings: Settings) -> str:
    address = parseaddr(settings.mail_from)[1]
    if "@" not in address:
        raise ConfigError(f"MAIL_FROM has no email address: {settings.mail_from!r}")
    return address


def open_sender(settings: Settings) -> Sender:
    """SMTP when SMTP_HOST is set, otherwise the Maildir in DATA_DIR/mail."""
    if settings.smtp_host:
        return SmtpSender(settings)
    return MaildirSender(Path(settings.data_dir) / "mail")


def _reply(code: int, text: bytes | str) -> str:
    return f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}".strip()


class SmtpSender(_Closing):
    """One SMTP session for a batch of messages, opened at the first send and reopened once if the
    server drops it between messages."""

    def __init__(self, settings: Settings) -> None:
        if settings.smtp_tls not in TLS_MODES:
            raise ConfigError(f"SMTP_TLS must be one of {', '.join(TLS_MODES)}, not {settings.smtp_tls!r}")
        self.settings = settings
        self.envelope_from = envelope_sender(settings)
        self._smtp: smtplib.SMTP | None = None

    def _open(self, recipient: str) -> smtplib.SMTP:
        s = self.settings
        host = s.smtp_host or ""
        try:
            if s.smtp_tls == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, s.smtp_port, timeout=s.smtp_timeout,
                                                      context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(host, s.smtp_port, timeout=s.smtp_timeout)
            smtp.ehlo()
            if s.smtp_tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value() if s.smtp_password else "")
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(recipient, f"SMTP login refused: {_reply(exc.smtp_code, exc.smtp_error)}") from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(recipient, f"SMTP server {host}: {exc}") from exc
        except (smtplib.SMTPException, OSError) as exc:  # refused, timeout, TLS failure, 421 greeting
            raise DeliveryError(recipient, f"cannot reach SMTP server {host}:{s.smtp_port}: {exc}") from exc
        return smtp

    def send(self, message: Outgoing, recipient: str) -> Outcome:
        """An address whose local part is not ASCII goes out with SMTPUTF8 (RFC 6531) when the
        server offers it; a server without it cannot carry the message at all: 'rejected', with
        the reason recorded, rather than sent garbled. Only a non-ASCII domain needs nothing: it
        travels in its IDNA form."""
        data = message.as_bytes()  # CRLF line ends: smtplib sends bytes as they are
        rcpt = ascii_address(recipient) or recipient
        utf8 = message.needs_smtputf8 or not rcpt.isascii()
        for attempt in (1, 2):
            if self._smtp is None:
                self._smtp = self._open(recipient)
            if utf8 and not self._smtp.has_extn("smtputf8"):
                return Outcome("rejected", f"the address {recipient} needs SMTPUTF8 (RFC 6531), which the SMTP "
                               f"server {self.settings.smtp_host} does not offer")
            try:
                self._smtp.sendmail(self.envelope_from, [rcpt], data, mail_options=["SMTPUTF8"] if utf8 else [])
                return Outcome("sent")
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = exc.recipients.get(rcpt, (550, b"refused"))
                return Outcome("bounced" if 500 <= code < 600 else "retry", _reply(code, text))
            except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
                return Outcome("rejected" if 500 <= exc.smtp_code < 600 else "retry",
                               _reply(exc.smtp_code, exc.smtp_error))
            except (TimeoutError, smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                self._drop()
                if attempt == 2:
                    return Outcome("retry", f"connection lost: {exc}")
            except (smtplib.SMTPException, OSError) as exc:
                self._drop()
                return Outcome("retry", str(exc) or type(exc).__name__)
        return Outcome("retry", "connection lost")

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def close(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            self._drop()


_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]")


class MaildirSender(_Closing):
    """Writes each message into a Maildir (tmp/ then rename into new/), named after its Message-ID:
    sending a message again replaces the file instead of adding a second copy."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        for sub in ("tmp", "new", "cur"):
            (folder / sub).mkdir(parents=True, exist_ok=True)

    def send(self, message: Outgoing, recipient: str) -> Outcome:
        name = _UNSAFE.sub("_", str(message["Message-ID"] or "").strip("<>")) or f"{os.getpid()}.{id(message)}"
        data = message.as_bytes(b"\n")
        tmp = self.folder / "tmp" / name
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.folder / "new" / name)
        except OSError as exc:
            raise DeliveryError(recipient, f"cannot write to Maildir {self.folder}: {exc}") from exc
        return Outcome("sent")
