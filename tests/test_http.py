"""The HTTP layer (checker.http): resolver policy, error mapping, session, fetch_bytes.

Network tests use the scripted web on 127.0.0.1 (tests/webserver.py); DNS is never
queried: resolver tests inject a fake inner resolver.
"""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from aiohttp import client_exceptions as cx

from checker.http import (PolicyResolver, PrivateAddressError, classify_exception, create_session,
                          fetch_bytes, is_private_address)
from checker.models import Cause
from checker.settings import parse_connect_to


class FakeResolver:
    """Inner resolver answering from a table; raises gaierror for unknown names."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0} for a in self.table[host]]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1", True), ("10.1.2.3", True), ("192.168.0.1", True), ("172.16.5.4", True),
    ("169.254.169.254", True), ("::1", True), ("fe80::1", True), ("fc00::1", True),
    ("0.0.0.0", True), ("::ffff:127.0.0.1", True),
    # carrier-grade NAT (a cloud metadata address lives there), site-local, IPv6 forms that
    # carry a loopback IPv4 (compatible, 6to4, NAT64), multicast
    ("100.64.0.1", True), ("100.100.100.200", True), ("fec0::1", True), ("::127.0.0.1", True),
    ("2002:7f00:1::1", True), ("64:ff9b::7f00:1", True), ("224.0.0.1", True),
    ("93.184.216.34", False), ("2606:4700::1111", False), ("not-an-ip", False),
])
def test_is_private_address(address: str, expected: bool) -> None:
    assert is_private_address(address) is expected


async def test_resolver_refuses_private_after_dns() -> None:
    resolver = PolicyResolver(inner=FakeResolver({"intranet.test": ["10.0.0.5"]}))
    with pytest.raises(PrivateAddressError, match="10.0.0.5"):
        await resolver.resolve("intranet.test", 80)


async def test_resolver_filters_private_keeps_public() -> None:
    resolver = PolicyResolver(inner=FakeResolver({"mixed.test": ["127.0.0.1", "93.184.216.34"]}))
    assert [r["host"] for r in await resolver.resolve("mixed.test", 443)] == ["93.184.216.34"]


async def test_resolver_allow_private() -> None:
    resolver = PolicyResolver(allow_private=True, inner=FakeResolver({"intranet.test": ["10.0.0.5"]}))
    assert (await resolver.resolve("intranet.test", 80))[0]["host"] == "10.0.0.5"


@pytest.mark.parametrize("rule, host, port, expected", [
    ("::127.0.0.1:8443", "mp.weixin.qq.com", 443, ("127.0.0.1", 8443)),
    ("github.com:443:127.0.0.1:9000", "github.com", 443, ("127.0.0.1", 9000)),
    ("github.com:443:127.0.0.1:9000", "GitHub.com.", 443, ("127.0.0.1", 9000)),
    ("github.com:443:127.0.0.1:", "github.com", 443, ("127.0.0.1", 443)),
    (":80:127.0.0.2:8080", "any.example", 80, ("127.0.0.2", 8080)),
    ("::[::1]:8443", "any.example", 443, ("::1", 8443)),
])
async def test_resolver_connect_to_beats_ssrf(rule: str, host: str, port: int,
                                              expected: tuple[str, int]) -> None:
    inner = FakeResolver({})
    resolver = PolicyResolver([parse_connect_to(rule)], inner=inner)
    [result] = await resolver.resolve(host, port)
    assert (result["host"], result["port"]) == expected
    assert result["hostname"] == host          # SNI and certificate use the real name
    assert inner.asked == []                   # no DNS query for an explicit address


async def test_resolver_rule_that_does_not_match_falls_through() -> None:
    inner = FakeResolver({"other.example": ["93.184.216.34"]})
    resolver = PolicyResolver([parse_connect_to("github.com:443:127.0.0.1:9000")], inner=inner)
    with pytest.raises(OSError):               # port 80 does not match the :443 rule
        await resolver.resolve("github.com", 80)
    [result] = await resolver.resolve("other.example", 443)
    assert result["host"] == "93.184.216.34" and inner.asked == ["github.com", "other.example"]


async def test_resolver_dns_failure_is_oserror() -> None:
    resolver = PolicyResolver(inner=FakeResolver({}))
    with pytest.raises(OSError):
        await resolver.resolve("nowhere.invalid", 80)


def _key() -> object:
    class Key:
        host, port, ssl = "h.example", 443, True
    return Key()


@pytest.mark.parametrize("exc, cause", [
    (cx.ClientConnectorDNSError(_key(), socket.gaierror(-2, "Name or service not known")), Cause.DNS),
    (cx.ClientConnectorDNSError(_key(), PrivateAddressError("h", ["10.0.0.1"])), Cause.PRIVATE_ADDRESS),
    (cx.ClientConnectorError(_key(), ConnectionRefusedError(111, "Connection refused")), Cause.REFUSED),
    (cx.ConnectionTimeoutError("connect"), Cause.CONNECT_TIMEOUT),
    (cx.SocketTimeoutError("read"), Cause.READ_TIMEOUT),
    (asyncio.TimeoutError(), Cause.READ_TIMEOUT),
    (cx.ServerDisconnectedError(), Cause.DISCONNECTED),
    (cx.ClientPayloadError("cut"), Cause.DISCONNECTED),
    (ConnectionResetError(104, "reset"), Cause.DISCONNECTED),
    (cx.InvalidURL("http://[::1"), Cause.INVALID_URL),
    (ValueError("bad port"), Cause.INVALID_URL),
    (RuntimeError("weird"), Cause.OTHER),
])
def test_classify_exception(exc: BaseException, cause: Cause) -> None:
    got, sentence = classify_exception(exc)
    assert got is cause
    assert sentence and isinstance(sentence, str)


async def test_session_sends_user_agent(web, web_settings) -> None:
    settings = web_settings()
    async with create_session(settings) as session:
        async with session.get("https://mp.weixin.qq.com/echo") as response:
            data = await response.json()
    assert data["headers"]["User-Agent"] == settings.check.user_agent
    assert data["host"] == "mp.weixin.qq.com"     # the real name reached the server


async def test_tls_fails_without_the_test_ca(web, web_settings) -> None:
    settings = web_settings(ca_file="")
    async with create_session(settings) as session:
        raw = await fetch_bytes(session, "https://github.com/title", max_bytes=1000)
    assert raw.cause is Cause.TLS and "certificate" in raw.error.lower()


async def test_tls_checks_the_real_hostname(web, web_settings) -> None:
    # The certificate has no entry for this name: connect-to must not disable the check.
    settings = web_settings()
    async with create_session(settings) as session:
        raw = await fetch_bytes(session, "https://not-in-cert.example.net/title", max_bytes=1000)
    assert raw.cause is Cause.TLS


async def test_private_address_refused_without_connecting(web, web_settings) -> None:
    settings = web_settings(connect_to=())
    async with create_session(settings) as session:
        raw = await fetch_bytes(session, web.url("/title"), max_bytes=1000)
    assert raw.cause is Cause.PRIVATE_ADDRESS and "127.0.0.1" in raw.error
    assert web.hits["/title"] == 0


async def test_allow_private_reaches_loopback(web, web_settings) -> None:
    settings = web_settings(connect_to=(), allow_private=True)
    async with create_session(settings) as session:
        raw = await fetch_bytes(session, web.url("/title"), max_bytes=1000)
    assert raw.status == 200 and b"Hello" in raw.body


async def test_connect_to_applies_to_ip_literal_hosts(web, web_settings) -> None:
    # aiohttp skips the resolver for IP literals; the connector hook must not.
    settings = web_settings()
    async with create_session(settings) as session:
        raw = await fetch_bytes(session, "http://10.20.30.40/title", max_bytes=1000)
    assert raw.status == 200 and web.hits["/title"] == 1


async def fetch_via_port(web_settings, port: int, url: str):
    """fetch_bytes of ``url`` with every host sent to 127.0.0.1:``port``."""
    settings = web_settings(connect_to=(f"::127.0.0.1:{port}",))
    async with create_session(settings) as session:
        return await fetch_bytes(session, url, max_bytes=1000)


async def test_connection_refused(web_settings) -> None:
    # A socket bound and never listening: connections to it are refused.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    try:
        raw = await fetch_via_port(web_settings, port, "http://down.example/")
    finally:
        sock.close()
    assert raw.cause is Cause.REFUSED and "down.example" in raw.error


async def test_fetch_bytes_follows_redirects_and_bounds_body(web, web_settings) -> None:
    async with create_session(web_settings()) as session:
        raw = await fetch_bytes(session, "https://example.com/r301/2", max_bytes=10)
        huge = await fetch_bytes(session, "https://example.com/huge", max_bytes=1000)
    assert raw.status == 200 and raw.final_url == "https://example.com/title"
    assert raw.body == b"<html><hea" and raw.cause is None
    assert ("Content-Type", "text/html; charset=utf-8") in raw.headers
    assert len(huge.body) == 1000


async def test_gzip_bomb_is_bounded(web, web_settings) -> None:
    async with create_session(web_settings(timeout=10.0)) as session:
        raw = await fetch_bytes(session, "https://example.com/bomb", max_bytes=256 * 1024)
    assert raw.status == 200 and len(raw.body) == 256 * 1024


async def test_huge_header_is_a_cause_not_a_crash(web, web_settings) -> None:
    async with create_session(web_settings()) as session:
        raw = await fetch_bytes(session, "https://example.com/big-header", max_bytes=1000)
    assert raw.cause is Cause.HEADERS_TOO_LARGE


async def test_session_is_a_client_session(web_settings) -> None:
    session = create_session(web_settings())
    try:
        assert isinstance(session, aiohttp.ClientSession)
        assert session.timeout.total == 2.0 and session.timeout.connect == 1.0
    finally:
        await session.close()


def test_dns_failure_sentence_names_host_and_reason() -> None:
    exc = cx.ClientConnectorDNSError(_key(), socket.gaierror(-2, "Name or service not known"))
    assert classify_exception(exc) == (Cause.DNS, "DNS lookup failed for h.example: Name or service not known")


@pytest.mark.parametrize("sent, cause, sentence", [
    # closes in the middle of the headers
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n", Cause.DISCONNECTED,
     "the server closed the connection in the middle of the response headers"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", Cause.DISCONNECTED,
     "the server closed the connection in the middle of the response headers"),
    (b"", Cause.DISCONNECTED, "the server closed the connection without an answer"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc", Cause.DISCONNECTED,
     "the server closed the connection before the whole body arrived: Not enough data to satisfy "
     "content length header (received 3 of 100 bytes)."),
    (b"HELLO\r\n\r\n", Cause.OTHER, "malformed HTTP response: Bad status line: Expected HTTP/, RTSP/ or ICE/"),
])
async def test_server_closing_early_is_a_sentence(web_settings, sent: bytes, cause: Cause,
                                                  sentence: str) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(sent)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        raw = await fetch_via_port(web_settings, port, "http://cut.example/")
    finally:
        server.close()
        await server.wait_closed()
    assert (raw.cause, raw.error) == (cause, sentence)
