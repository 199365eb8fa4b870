"""A TCP proxy between engines and the throwaway PostgreSQL server that misbehaves on demand:
it loses the server's reply to a chosen statement (after the server executed it), delays
replies, holds all traffic (a partition), cuts every connection, or refuses new ones.

It listens on 127.0.0.1 only, serves a bounded number of connections (two threads each) and
reads just enough of the PostgreSQL wire protocol to know which reply belongs to which
request: each simple ``Query`` or extended-protocol ``Sync`` from the client is answered by
exactly one ``ReadyForQuery`` from the server.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

_ROLLBACK = re.compile(rb"^\s*ROLLBACK", re.IGNORECASE)
_SSL_REQUEST, _GSS_REQUEST, _CANCEL_REQUEST = 80877103, 80877104, 80877102


@dataclass
class DropRule:
    """Lose the server's reply to a request matching ``on`` in a transaction (or request)
    whose statements matched ``after``, ``count`` times; then cut that connection, as a
    network failure between the server's COMMIT and the client would."""

    after: re.Pattern[bytes]
    on: re.Pattern[bytes] | None
    count: int
    dropped: int = 0


@dataclass
class ProxyStats:
    connections: int = 0
    refused: int = 0
    replies_dropped: int = 0
    connections_cut: int = 0
    dropped_statements: list[str] = field(default_factory=list)


class _Link:
    """One client connection and its server connection, with a pump thread per direction."""

    def __init__(self, proxy: Proxy, client: socket.socket, server: socket.socket):
        self.proxy = proxy
        self.client = client
        self.server = server
        self.closed = threading.Event()
        self.lock = threading.Lock()
        # Client side parse state.
        self.startup_done = False
        self.cbuf = b""
        self.armed: DropRule | None = None  # a statement matched `after` on this connection
        self.cycle_drop: DropRule | None = None  # the request cycle being sent ends in a drop
        self.cycles: list[DropRule | None] = []  # one entry per ReadyForQuery still due
        # Server side parse state.
        self.raw_replies_due = 0  # one-byte answers to SSL/GSS requests
        self.sbuf = b""

    def start(self) -> None:
        for target, name in ((self._client_to_server, "up"), (self._server_to_client, "down")):
            threading.Thread(target=target, name=f"faultlab-proxy-{name}", daemon=True).start()

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for s in (self.client, self.server):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        self.proxy._forget(self)

    # -- client -> server -------------------------------------------------------------------

    def _client_to_server(self) -> None:
        try:
            while not self.closed.is_set():
                data = self.client.recv(65536)
                if not data:
                    break
                self.cbuf += data
                self._parse_client()
                self.proxy._hold()
                self.server.sendall(data)
        except OSError:
            pass
        finally:
            self.close()

    def _parse_client(self) -> None:
        while True:
            if not self.startup_done:
                if len(self.cbuf) < 8:
                    return
                (length, code) = struct.unpack("!II", self.cbuf[:8])
                if len(self.cbuf) < length:
                    return
                self.cbuf = self.cbuf[length:]
                if code in (_SSL_REQUEST, _GSS_REQUEST):
                    with self.lock:
                        self.raw_replies_due += 1
                elif code != _CANCEL_REQUEST:
                    self.startup_done = True
                continue
            if len(self.cbuf) < 5:
                return
            kind = self.cbuf[:1]
            (length,) = struct.unpack("!I", self.cbuf[1:5])
            if len(self.cbuf) < 1 + length:
                return
            body = self.cbuf[5 : 1 + length]
            self.cbuf = self.cbuf[1 + length :]
            self._on_client_message(kind, body)

    def _on_client_message(self, kind: bytes, body: bytes) -> None:
        if kind in (b"Q", b"P"):
            sql = body if kind == b"Q" else body.split(b"\0", 2)[1]
            rule = self.proxy._match(self, sql)
            if rule is not None:
                self.cycle_drop = rule
        if kind in (b"Q", b"S", b"F"):  # each is answered by one ReadyForQuery
            with self.lock:
                self.cycles.append(self.cycle_drop)
            self.cycle_drop = None

    # -- server -> client -------------------------------------------------------------------

    def _server_to_client(self) -> None:
        try:
            while not self.closed.is_set():
                data = self.server.recv(65536)
                if not data:
                    break
                self.sbuf += data
                out = self._parse_server()
                if out is None:  # a reply to drop arrived complete: cut the connection
                    self.proxy._count_drop()
                    break
                if out:
                    self.proxy._hold()
                    delay = self.proxy.delay
                    if delay:
                        time.sleep(delay)
                    self.client.sendall(out)
        except OSError:
            pass
        finally:
            self.close()

    def _parse_server(self) -> bytes | None:
        """Forwardable bytes; None when the connection must be cut to lose a reply."""
        out = bytearray()
        while self.sbuf:
            with self.lock:
                if self.raw_replies_due:
                    self.raw_replies_due -= 1
                    out += self.sbuf[:1]
                    self.sbuf = self.sbuf[1:]
                    continue
                dropping = bool(self.cycles) and self.cycles[0] is not None
            if len(self.sbuf) < 5:
                break
            (length,) = struct.unpack("!I", self.sbuf[1:5])
            if len(self.sbuf) < 1 + length:
                break
            message, self.sbuf = self.sbuf[: 1 + length], self.sbuf[1 + length :]
            if message[:1] == b"Z":
                with self.lock:
                    cycle = self.cycles.pop(0) if self.cycles else None
                if cycle is not None:
                    return None
            if not dropping:
                out += message
        return bytes(out)


class Proxy:
    """``Proxy(target_port).start()``; point engines at ``proxy.port``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", max_connections=256):
        self.target = (target_host, target_port)
        self.max_connections = max_connections
        self.delay = 0.0  # seconds added before each chunk of server replies
        self.stats = ProxyStats()
        self._links: set[_Link] = set()
        self._rules: list[DropRule] = []
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self._refusing = False
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._stopped = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Proxy:
        self._listener.listen(128)
        threading.Thread(target=self._accept, name="faultlab-proxy-accept", daemon=True).start()
        return self

    def close(self) -> None:
        self._stopped.set()
        self._flowing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut_all()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                full = len(self._links) >= self.max_connections
                refusing = self._refusing or full
                if refusing:
                    self.stats.refused += 1
            if refusing:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()  # the server is down: so is the proxy's side of it
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(self, client, server)
            with self._lock:
                self._links.add(link)
                self.stats.connections += 1
            link.start()

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def _hold(self) -> None:
        """Block a pump while traffic is held (partition), until released or closed."""
        while not self._flowing.wait(0.1):
            if self._stopped.is_set():
                return

    # -- faults -----------------------------------------------------------------------------

    def drop_replies(self, after: str, on: str | None = r"^\s*COMMIT", count: int = 1) -> DropRule:
        """Lose the reply to the next ``count`` requests matching ``on`` (default: COMMIT)
        on connections where a statement matching ``after`` was sent since its last drop
        (``on=None``: lose the reply to the ``after`` statement itself). The server executes
        the request; the client sees its connection break without the answer."""
        rule = DropRule(
            after=re.compile(after.encode(), re.IGNORECASE | re.DOTALL),
            on=re.compile(on.encode(), re.IGNORECASE) if on is not None else None,
            count=count,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def _match(self, link: _Link, sql: bytes) -> DropRule | None:
        with self._lock:
            if link.armed is not None and _ROLLBACK.search(sql):
                link.armed = None  # that transaction did not commit: nothing to lose
            if link.armed is not None:
                rule = link.armed
                if rule.on is not None and rule.on.search(sql):
                    if rule.dropped >= rule.count:
                        link.armed = None
                        return None
                    rule.dropped += 1
                    link.armed = None
                    self.stats.dropped_statements.append(sql.decode(errors="replace")[:200])
                    return rule
            for rule in self._rules:
                if rule.dropped < rule.count and rule.after.search(sql):
                    if rule.on is None:
                        rule.dropped += 1
                        self.stats.dropped_statements.append(sql.decode(errors="replace")[:200])
                        return rule
                    link.armed = rule
            return None

    def _count_drop(self) -> None:
        with self._lock:
            self.stats.replies_dropped += 1

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()
            for link in self._links:
                link.armed = None

    def cut_all(self) -> int:
        """Close every current connection (both sides); returns how many."""
        with self._lock:
            links = list(self._links)
            self.stats.connections_cut += len(links)
        for link in links:
            link.close()
        return len(links)

    def refuse(self, refusing: bool = True) -> None:
        """While refusing, new connections are accepted and closed at once."""
        with self._lock:
            self._refusing = refusing

    def hold(self) -> None:
        """Stop forwarding in both directions (a partition: sockets stay open, nothing
        arrives) until :meth:`release`."""
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    @contextlib.contextmanager
    def held(self):
        self.hold()
        try:
            yield
        finally:
            self.release()

    def connection_count(self) -> int:
        with self._lock:
            return len(self._links)
