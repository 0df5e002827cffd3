"""TLS listening sockets whose handshakes the event loop runs, with every failure seen with its reason and peer.

asyncio and uvloop report a failed handshake on their own listeners (`create_server(ssl=...)`) only in debug
mode. Here the listening socket is accepted by us and each connection is handed to the loop's TLS with
`loop.connect_accepted_socket(ssl=...)`: the handshake is still the loop's (uvloop's TLS in production, no
ClientHello lost as with `start_tls`), and a failed one raises its `ssl.SSLError` to us.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import Callable, MutableMapping

log = logging.getLogger("edgeloop.mqtt")

ACCEPT_BATCH = 256  # connections accepted per readiness event: a storm cannot starve the loop
ACCEPT_RETRY_SECS = 1.0  # pause after the process ran out of file descriptors

# OpenSSL X509_V_ERR_* codes -> reason
_VERIFY_REASONS = {
    2: "unknown_ca",  # unable to get issuer certificate
    7: "unknown_ca",  # signature failure: the issuer name matches a trusted CA but its key did not sign it
    18: "unknown_ca",  # self-signed leaf
    19: "unknown_ca",  # self-signed certificate in the chain
    20: "unknown_ca",  # unable to get local issuer certificate
    21: "unknown_ca",  # unable to verify the first certificate
    9: "not_yet_valid",
    10: "expired",
    23: "revoked",
    26: "wrong_key_usage",  # unsuitable certificate purpose (extended key usage without clientAuth)
}
# ssl.SSLError.reason -> reason
_SSL_REASONS = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "no_certificate",
    "UNSUPPORTED_PROTOCOL": "protocol_version",
    "VERSION_TOO_LOW": "protocol_version",
    "TLSV1_ALERT_PROTOCOL_VERSION": "protocol_version",
    "NO_SHARED_CIPHER": "no_shared_cipher",
    "NO_APPLICATION_PROTOCOL": "no_application_protocol",
    "HTTP_REQUEST": "not_tls",
    "HTTPS_PROXY_REQUEST": "not_tls",
    "WRONG_VERSION_NUMBER": "not_tls",
    "UNKNOWN_PROTOCOL": "not_tls",
    "RECORD_LAYER_FAILURE": "not_tls",
    "UNEXPECTED_EOF_WHILE_READING": "connection_lost",
}
FAILURE_REASONS = (
    "unknown_ca", "not_yet_valid", "expired", "revoked", "wrong_key_usage", "bad_certificate", "no_certificate",
    "protocol_version", "no_shared_cipher", "no_application_protocol", "not_tls", "client_alert",
    "handshake_timeout", "connection_lost", "tls_error",
)


def failure_reason(exc: BaseException) -> str:
    """The reason of a failed server handshake, one of `FAILURE_REASONS`."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _VERIFY_REASONS.get(exc.verify_code, "bad_certificate")
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return "connection_lost"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if reason in _SSL_REASONS:
            return _SSL_REASONS[reason]
        if "ALERT" in reason:  # the client sent an alert: it refused our certificate or parameters
            return "client_alert"
        return "tls_error"
    if isinstance(exc, TimeoutError) or (isinstance(exc, ConnectionAbortedError) and "longer than" in str(exc)):
        return "handshake_timeout"  # both loops abort an overdue handshake with ConnectionAbortedError
    if isinstance(exc, OSError):
        return "connection_lost"
    return "tls_error"


def failure_detail(exc: BaseException) -> str:
    """What OpenSSL (or the loop) said, for the log line."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return str(exc.verify_message)
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def count_failure(metrics: MutableMapping[str, int], listener: str, peer: str | None, reason: str,
                  detail: str) -> None:
    """Count a refused connection in `tls_failures` and `tls_failures_<reason>` and log it with its peer.

    Used for failed handshakes and for connections a listener refuses right after one (on the HTTPS port, where
    the handshake lets a client without a certificate through, anything but a SigV4 WebSocket still needs one).
    """
    metrics["tls_failures"] += 1
    metrics[f"tls_failures_{reason}"] += 1
    log.info("event=tls_failed listener=%s peer=%s reason=%s detail=%r", listener, peer, reason, detail)


FailureCallback = Callable[[str | None, BaseException], None]


def forget_peer_certificate_dict(transport: asyncio.BaseTransport) -> None:
    """Empty the decoded client certificate that the loop's TLS keeps for `get_extra_info("peercert")`.

    Both loops decode it after every handshake and keep it for the life of the connection (about 1.8 KiB of
    tuples and strings with a client certificate); the broker reads the certificate once, as DER, from the
    `ssl_object`, which still answers `getpeercert()` after this."""
    peercert = transport.get_extra_info("peercert")
    if isinstance(peercert, dict):
        peercert.clear()


class TlsServer:
    """Listening sockets for one TLS listener; `close()` / `wait_closed()` / `sockets` like an asyncio Server."""

    def __init__(self, sockets: list[socket.socket], context: ssl.SSLContext,
                 protocol_factory: Callable[[], asyncio.Protocol], on_failure: FailureCallback,
                 handshake_timeout: float) -> None:
        self.sockets = sockets
        self._context = context
        self._factory = protocol_factory
        self._on_failure = on_failure
        self._timeout = handshake_timeout
        self._loop = asyncio.get_running_loop()
        self._handshakes: set[asyncio.Task[None]] = set()
        self._closed = False
        for sock in sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    @classmethod
    async def start(cls, host: str, port: int, backlog: int, context: ssl.SSLContext,
                    protocol_factory: Callable[[], asyncio.Protocol], on_failure: FailureCallback,
                    handshake_timeout: float) -> TlsServer:
        """Bind every address of `host` (as `create_server` does) and start accepting."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((address[0], port, *address[2:]))
                sock.listen(backlog)
                sock.setblocking(False)
                if port == 0:  # one ephemeral port for every address
                    port = sock.getsockname()[1]
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        return cls(sockets, context, protocol_factory, on_failure, handshake_timeout)

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("event=accept_paused error=%r retry_secs=%.0f", exc, ACCEPT_RETRY_SECS)
                    self._loop.remove_reader(sock.fileno())
                    self._loop.call_later(ACCEPT_RETRY_SECS, self._resume, sock)
                return  # ECONNABORTED and the like: the client is gone already
            conn.setblocking(False)
            task = self._loop.create_task(self._handshake(conn, address))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    def _resume(self, sock: socket.socket) -> None:
        if not self._closed:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    async def _handshake(self, conn: socket.socket, address: object) -> None:
        # The loop owns `conn` from here on, and closes it when the handshake fails.
        try:
            transport, _ = await self._loop.connect_accepted_socket(self._factory, conn, ssl=self._context,
                                                                    ssl_handshake_timeout=self._timeout)
        except Exception as exc:
            peer = address[0] if isinstance(address, tuple) else None
            self._on_failure(peer, exc)
        else:
            forget_peer_certificate_dict(transport)

    def close(self) -> None:
        """Stop accepting and abort handshakes in progress; established connections are not touched."""
        if self._closed:
            return
        self._closed = True
        for sock in self.sockets:
            self._loop.remove_reader(sock.fileno())
            sock.close()
        for task in self._handshakes:
            task.cancel()

    async def wait_closed(self) -> None:
        if self._handshakes:
            await asyncio.gather(*self._handshakes, return_exceptions=True)


__all__ = ["FAILURE_REASONS", "TlsServer", "count_failure", "failure_detail", "failure_reason"]
