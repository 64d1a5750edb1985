"""The HTTP layer: one session factory, the connect-to / SSRF resolver, error mapping.

This is the ONLY module that imports aiohttp's exceptions (STYLE.md: a foreign
library's faults are translated in one place, most specific class first).

- :func:`create_session` builds the run's ``aiohttp.ClientSession``: TLS verified
  against the system store plus ``check.ca_file``, an honest User-Agent, bounded
  header sizes, and a connector whose resolver applies ``--connect-to`` and refuses
  private addresses after DNS resolution.
- :func:`classify_exception` turns any fetch exception into a :class:`~checker.models.Cause`
  and a human sentence.
- :func:`fetch_bytes` is a bounded raw fetch for other stages (the local WARC archiver).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import ssl
from typing import Any, Iterable, NamedTuple

import aiohttp
from aiohttp import client_exceptions as cx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from .models import Cause
from .netaddr import non_public_reason
from .settings import ConnectTo, Settings

__all__ = [
    "PrivateAddressError", "PolicyResolver", "create_session", "ssl_context",
    "classify_exception", "is_private_address", "RawFetch", "fetch_bytes", "read_limited",
]

class PrivateAddressError(OSError):
    """A host resolved only to private, loopback or link-local addresses (SSRF guard)."""

    def __init__(self, host: str, addresses: Iterable[str]) -> None:
        self.host = host
        self.addresses = tuple(addresses)
        super().__init__(f"{host} resolves to a private or loopback address "
                         f"({', '.join(self.addresses)}); not fetched (use --allow-private)")


def is_private_address(address: str) -> bool:
    """True for any address that is not public unicast (see checker.netaddr)."""
    return non_public_reason(address) is not None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


class PolicyResolver(AbstractResolver):
    """Resolver applying curl's --connect-to rules, then the private-address check.

    A matching rule replaces the address and port but not the hostname, so TLS
    SNI and the certificate check still use the real name (curl's semantics). An
    address the user named with --connect-to is an explicit choice: never refused.
    """

    def __init__(self, rules: Iterable[ConnectTo] = (), *, allow_private: bool = False,
                 inner: AbstractResolver | None = None) -> None:
        self.rules = tuple(rules)
        self.allow_private = allow_private
        self._inner = inner or DefaultResolver()

    def match(self, host: str, port: int) -> ConnectTo | None:
        """The first rule that applies to ``host:port`` (empty host or port match any)."""
        host = host.strip("[]").rstrip(".").lower()
        for rule in self.rules:
            if rule.host in ("", host) and rule.port in (None, port):
                return rule
        return None

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        """Resolve ``host``, redirected by a --connect-to rule, refusing private addresses."""
        rule = self.match(host, port)
        if rule is not None:
            to_port = rule.to_port or port
            if _is_ip(rule.addr):
                return [_result(host, rule.addr.strip("[]"), to_port)]
            found = await self._inner.resolve(rule.addr, to_port, family)
            return [{**r, "hostname": host} for r in found]
        if _is_ip(host):
            results = [_result(host, host.strip("[]"), port)]
        else:
            results = await self._inner.resolve(host, port, family)
        if self.allow_private:
            return results
        # Filter rather than refuse outright when a name has both kinds: the public
        # ones are safe to use; a DNS-rebinding name that is only private is refused.
        public = [r for r in results if not is_private_address(r["host"])]
        if not public:
            raise PrivateAddressError(host, sorted({r["host"] for r in results}))
        return public

    async def close(self) -> None:
        """Release the inner resolver."""
        await self._inner.close()


def _result(hostname: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return {"hostname": hostname, "host": address, "port": port, "family": family,
            "proto": 0, "flags": socket.AI_NUMERICHOST}


class _PolicyConnector(aiohttp.TCPConnector):
    """TCPConnector that sends IP-literal hosts through the policy resolver too.

    aiohttp's ``_resolve_host`` short-circuits IP literals without asking the
    resolver (connector.py), which would let ``http://10.0.0.1/`` bypass both the
    SSRF check and --connect-to. Overriding that (private, but stable across 3.x)
    hook is the only way to see those requests before a socket is opened.
    """

    def __init__(self, *, policy: PolicyResolver, **kwargs: Any) -> None:
        super().__init__(resolver=policy, **kwargs)
        self._policy = policy

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[ResolveResult]:
        if _is_ip(host):
            return await self._policy.resolve(host, port, family=self._family)
        return await super()._resolve_host(host, port, traces=traces)


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verifying TLS context: the system store, plus ``check.ca_file`` when set."""
    context = ssl.create_default_context()
    if settings.check.ca_file:
        context.load_verify_locations(cafile=settings.check.ca_file)
    return context


def create_session(settings: Settings) -> aiohttp.ClientSession:
    """The run's ClientSession: connect-to/SSRF resolver, CA file, UA, header limits, timeouts.

    Must be called inside a running event loop; the caller closes it. A site rule's
    extra headers for a host are the prober's to send (checker.probe).
    """
    check = settings.check
    policy = PolicyResolver(settings.connect_to, allow_private=check.allow_private)
    # A short keep-alive: the scheduler reuses a host's connections back to back, and
    # every idle TLS connection holds asyncio's 256 KiB read buffer; with hundreds of
    # finished hosts the default 15 s kept ~60 MB alive in the benchmark for nothing.
    connector = _PolicyConnector(
        policy=policy, ssl=ssl_context(settings), limit=0, use_dns_cache=True,
        ttl_dns_cache=300, enable_cleanup_closed=False,
        keepalive_timeout=max(2.0, check.per_host_interval + 1.0))
    timeout = aiohttp.ClientTimeout(total=check.timeout, connect=check.connect_timeout,
                                    sock_connect=check.connect_timeout)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout,
        headers={"User-Agent": check.user_agent,
                 "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
        max_line_size=check.max_header_bytes, max_field_size=check.max_header_bytes,
        trust_env=False)


def classify_exception(exc: BaseException) -> tuple[Cause, str]:
    """Map a fetch exception to a Cause and a human sentence (most specific first).

    Connect timeouts come from aiohttp's ``ClientTimeout(connect=...)`` as
    ConnectionTimeoutError; a bare timeout is the total deadline, which in practice
    fires while waiting for (or reading) the answer: a read timeout.
    """
    private = _find(exc, PrivateAddressError)
    if private is not None:
        return Cause.PRIVATE_ADDRESS, str(private)
    if isinstance(exc, (cx.ClientConnectorCertificateError, cx.ClientConnectorSSLError,
                        cx.ClientSSLError, ssl.SSLError)):
        return Cause.TLS, f"TLS failure: {_reason(exc)}"
    if isinstance(exc, cx.ClientConnectorDNSError):
        # aiohttp's text repeats "Cannot connect to host H:P ssl:..." before the resolver's
        # reason; the host and the reason are what a reader needs.
        reason = exc.os_error.strerror or _reason(exc.os_error) if exc.os_error else _reason(exc)
        return Cause.DNS, f"DNS lookup failed for {exc.host}: {reason}"
    if isinstance(exc, cx.ConnectionTimeoutError):
        return Cause.CONNECT_TIMEOUT, "connection timed out"
    if isinstance(exc, cx.SocketTimeoutError):
        return Cause.READ_TIMEOUT, "the server stopped sending (read timeout)"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Cause.READ_TIMEOUT, "no complete answer within the timeout"
    if isinstance(exc, cx.ClientConnectorError):
        return _connect_error(exc)
    if isinstance(exc, cx.ServerDisconnectedError):
        return Cause.DISCONNECTED, _disconnected(exc)
    if isinstance(exc, cx.ClientPayloadError):
        return Cause.DISCONNECTED, _payload_error(exc)
    if isinstance(exc, (cx.ClientConnectionResetError, ConnectionResetError, BrokenPipeError)):
        return Cause.DISCONNECTED, f"the server closed the connection: {_reason(exc)}"
    if isinstance(exc, cx.TooManyRedirects):
        return Cause.TOO_MANY_REDIRECTS, "too many redirects"
    if isinstance(exc, cx.ClientResponseError):
        return _response_error(exc)
    if isinstance(exc, (cx.InvalidURL, ValueError)):
        return Cause.INVALID_URL, f"invalid URL: {_reason(exc)}"
    if isinstance(exc, cx.ClientOSError):
        if exc.errno in (errno.ECONNRESET, errno.EPIPE):
            return Cause.DISCONNECTED, f"connection reset: {_reason(exc)}"
        return Cause.OTHER, f"network error: {_reason(exc)}"
    return Cause.OTHER, f"{type(exc).__name__}: {_reason(exc)}"


def _disconnected(exc: cx.ServerDisconnectedError) -> str:
    # aiohttp passes the parser's half-read message (a RawResponseMessage) as the
    # exception's message when the connection ends inside the headers
    # (client_proto.connection_lost): its repr is no sentence for a reader.
    if isinstance(exc.message, str) and exc.message != "Server disconnected":
        return f"the server closed the connection: {_reason(exc)}"
    if exc.message is None or isinstance(exc.message, str):
        return "the server closed the connection without an answer"
    return "the server closed the connection in the middle of the response headers"


def _connect_error(exc: cx.ClientConnectorError) -> tuple[Cause, str]:
    os_error = exc.os_error
    if isinstance(os_error, ConnectionRefusedError) or os_error.errno == errno.ECONNREFUSED:
        return Cause.REFUSED, f"connection refused by {exc.host}:{exc.port}"
    return Cause.REFUSED, f"cannot connect to {exc.host}:{exc.port}: {os_error.strerror or os_error}"


def _response_error(exc: cx.ClientResponseError) -> tuple[Cause, str]:
    text = f"{exc.message} {exc.__cause__ or ''}"
    # aiohttp's parser reports oversized header lines as "Got more than N bytes ...
    # when reading Status line / Header name / Header value" (LineTooLong).
    if "Got more than" in text or "LineTooLong" in text or "Too many headers" in text:
        return Cause.HEADERS_TOO_LARGE, "response headers exceed the size limit"
    return Cause.OTHER, f"malformed HTTP response: {_message(exc)}"


def _payload_error(exc: cx.ClientPayloadError) -> str:
    # aiohttp's text embeds the repr of the parser's error ("<ContentLengthError: 400,
    # message='...'>"); that error's own message is the sentence.
    inner = exc.__cause__
    detail = _message(inner) if inner is not None and hasattr(inner, "message") else ""
    return "the server closed the connection before the whole body arrived" + (f": {detail}" if detail else "")


def _message(exc: BaseException) -> str:
    """The first paragraph of an aiohttp error's own message, one line: the parser's
    messages add the offending bytes and a caret on further lines, and str() of the
    error adds the status code and the URL around it (a repr, not a sentence)."""
    message = getattr(exc, "message", None)
    text = message if isinstance(message, str) and message else _reason(exc)
    return " ".join(text.split("\n\n", 1)[0].split()).rstrip(":")[:300]


def _find(exc: BaseException | None, kind: type[BaseException]) -> Any:
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, kind):
            return exc
        nested = getattr(exc, "os_error", None)
        if isinstance(nested, kind):
            return nested
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text[:300] if text else type(exc).__name__


class RawFetch(NamedTuple):
    """What :func:`fetch_bytes` saw; ``cause``/``error`` are set when it failed."""

    status: int | None
    headers: tuple[tuple[str, str], ...]
    body: bytes
    final_url: str
    cause: Cause | None
    error: str | None


async def fetch_bytes(session: aiohttp.ClientSession, url: str, *, max_bytes: int,
                      headers: dict[str, str] | None = None, max_redirects: int = 10) -> RawFetch:
    """GET ``url`` following redirects, returning at most ``max_bytes`` of decoded body.

    Never raises for network faults (they come back as ``cause``/``error``); the
    session's limits (timeouts, SSRF, --connect-to, header sizes) apply. The body
    is cut at ``max_bytes`` (``len(body) == max_bytes`` means it may be truncated).
    Headers keep their original case, in order, duplicates included.
    """
    try:
        async with session.get(url, headers=headers, allow_redirects=True,
                               max_redirects=max_redirects) as response:
            body = await read_limited(response, max_bytes)
            return RawFetch(response.status, _raw_headers(response), body,
                            str(response.url), None, None)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every fault becomes a value here, by contract
        cause, error = classify_exception(exc)
        return RawFetch(None, (), b"", url, cause, error)


def _raw_headers(response: aiohttp.ClientResponse) -> tuple[tuple[str, str], ...]:
    return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers)


async def read_limited(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """Read the (decompressed) body up to ``max_bytes``; stop early, never buffer more.

    Counting decoded bytes bounds a gzip bomb: aiohttp (3.13+) inflates each chunk
    with a bounded ``max_length``, so memory stays near one chunk past the limit.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size >= max_bytes:
            break
    return b"".join(chunks)[:max_bytes]
