"""A TCP relay in front of PostgreSQL that a test can cut and restore: the database "goes away"
for the code under test (its connections drop, new ones are refused) while the server, shared
by the whole test session, keeps running.

    with DatabaseProxy(database_url) as proxy:
        db = Database(proxy.url)       # the code under test connects through the relay
        proxy.cut()                    # every relayed connection closed, new ones refused
        proxy.restore()                # accepting again

It relays bytes only (TLS, if any, passes through untouched), to a TCP address or to a Unix
socket, which is how the embedded server listens.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

import psycopg


class DatabaseProxy:
    def __init__(self, database_url: str) -> None:
        info = psycopg.conninfo.conninfo_to_dict(database_url)
        host, port = str(info.get("host") or "localhost"), int(info.get("port") or 5432)
        self._target: tuple[int, object] = (
            (socket.AF_UNIX, f"{host}/.s.PGSQL.{port}") if host.startswith("/") else (socket.AF_INET, (host, port))
        )
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        info.update(host="127.0.0.1", port=str(self.port))
        self.url = psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items() if v is not None})
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._accepting = True
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Drop every relayed connection; connections made from now on are closed at once."""
        with self._lock:
            self._accepting = False
            for sock in self._open:
                _close(sock)
            self._open.clear()

    def restore(self) -> None:
        with self._lock:
            self._accepting = True

    def close(self) -> None:
        self.cut()
        self._closed = True
        _close(self._listener)
        self._thread.join(timeout=5)

    def __enter__(self) -> DatabaseProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if not self._accepting:
                    _close(client)
                    continue
            try:
                family, address = self._target
                upstream = socket.socket(family, socket.SOCK_STREAM)
                upstream.connect(address)  # type: ignore[arg-type]
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
