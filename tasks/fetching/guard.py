"""The network layer under the HTTP client: the address guard and the per-response deadline.

- Address guard: the host is resolved once, every address is vetted (public unicast only,
  unless `allow_private_networks` or `allowed_networks` say otherwise), and the socket connects
  to a vetted IP literal, so DNS cannot answer differently between the check and the
  connection. The client follows redirects itself, one hop at a time, so every hop (after its
  own DNS resolution) comes through here.
- Deadline: `response_deadline` sets the wall-clock end of the response being read in this
  thread, and every socket read and write is clamped to it, so a server trickling a byte at a
  time (headers or body) is cut. httpcore takes its read timeout once per response, which is
  why the clamp lives in the stream.

See docs/ARCHITECTURE.md, "limits".
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from newsflow.schemas.config import FetchLimits

_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# The wall-clock deadline (time.monotonic) of the response being read in this thread.
_DEADLINE: ContextVar[float | None] = ContextVar("newsflow_fetch_deadline", default=None)


def is_public_address(address: str) -> bool:
    """True when an IP literal is globally routable unicast, also for any IPv4 embedded in it."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not is_public_address(str(embedded)):
            return False
        if ip.is_site_local:
            return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


class BlockedAddress(Exception):
    """A host resolved to an address the limits do not permit."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to non-public address {address}")


@contextlib.contextmanager
def response_deadline(deadline: float) -> Iterator[None]:
    """Every socket read and write in this thread ends by `deadline` (a time.monotonic value)."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def guarded_transport(limits: FetchLimits) -> httpx.HTTPTransport:
    """An httpx transport whose connections go through the address guard and the deadline."""
    ssl_context = httpx.create_ssl_context()
    transport = httpx.HTTPTransport(verify=ssl_context)
    # httpx has no option for the network backend; give its transport a pool built as httpx
    # builds it, with ours (httpx.HTTPTransport.__init__, httpx 0.27-0.28).
    transport._pool = httpcore.ConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_connections,
        keepalive_expiry=5.0,
        network_backend=_GuardedBackend(limits),
    )
    return transport


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write ends by the current response's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _clamp(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(ssl_context, server_hostname, _clamp(timeout))
        return _DeadlineStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


def _clamp(timeout: float | None) -> float | None:
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the total deadline passed")
    return left if timeout is None else min(timeout, left)


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves once, refuses non-public addresses, then connects to a vetted IP literal."""

    def __init__(self, limits: FetchLimits) -> None:
        self._allow_all = limits.allow_private_networks
        self._allowed = [ipaddress.ip_network(n, strict=False) for n in limits.allowed_networks]

    def _permitted(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return self._allow_all or is_public_address(address) or any(ip in n for n in self._allowed)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            if not self._permitted(address):
                raise BlockedAddress(host, address)
        error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                stream = super().connect_tcp(
                    address, port, _clamp(timeout), local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
            else:
                return _DeadlineStream(stream)
        raise error or httpcore.ConnectError(f"no address for {host}")
