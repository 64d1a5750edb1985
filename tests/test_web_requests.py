"""The daemon API answers bad requests clearly: 400 with the reason for a bad parameter,
one rate-limited warning line (never a traceback) for a request that does not parse."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest

from checker.logs import configure_logging
from checker.weblog import BadRequestFilter, server_logger
from checker.webparams import BadParam, links_query
from test_web import BACKENDS, serve, store  # noqa: F401 - fixtures


@pytest.mark.parametrize("query, parameter", [
    ("status=bogus", "status"), ("status=ok,brokn", "status"), ("health=zombie", "health"),
    ("limit=-1", "limit"), ("limit=0", "limit"), ("limit=5000", "limit"), ("limit=1e3", "limit"),
    ("limit=%EF%BC%91", "limit"),                       # a full-width digit is no ASCII number
    ("offset=-5", "offset"), ("active=maybe", "active"), ("stauts=ok", "stauts"),
    ("status=ok&status=broken", "status"), ("q=" + "x" * 501, "q"),
])
async def test_bad_parameters_answer_400_with_the_reason(serve, query, parameter):
    web = await serve()
    status, body, headers = await web.get(f"/api/links?{query}")
    assert status == 400, (query, body)
    assert headers["Content-Type"].startswith("application/json")
    assert body["parameter"] == parameter and body["error"].startswith(f"{parameter}: ")


async def test_good_parameters_still_answer(serve):
    web = await serve()
    assert (await web.get("/api/links?status=broken,ok&limit=1000&offset=0&active=all"))[1]["total"] == 3
    assert (await web.get("/api/links?status=&health=&q="))[1]["total"] == 3   # empty means no filter
    unchecked = (await web.get("/api/links?status=unchecked"))[1]
    assert [r["url"] for r in unchecked["links"]] == ["https://b.example/x_y"]
    assert (await web.get("/api/links?status=unchecked,broken"))[1]["total"] == 2
    assert (await web.get("/api/runs?limit=1000"))[0] == 200
    status, body, _ = await web.get("/api/runs?limit=-1")
    assert status == 400 and body["parameter"] == "limit" and "from 1 to 1000" in body["error"]


def test_messages_say_what_is_accepted():
    with pytest.raises(BadParam, match=r"status: 'bogus' is not one of ok, redirect, broken, soft404, timeout, "
                                       r"unreachable, blocked, excluded, unchecked"):
        links_query({"status": "bogus"})
    with pytest.raises(BadParam, match=r"limit: must be from 1 to 1000, got -1"):
        links_query({"limit": "-1"})


async def _send_raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await reader.read(4096)
    writer.close()
    return answer.split(b"\r\n", 1)[0]


@pytest.fixture
def log_text():
    """The daemon's real log handler writing key=value lines to a buffer; the bad-request
    filter's memory cleared so that the test's first bad request is logged."""
    for f in server_logger().filters:
        if isinstance(f, BadRequestFilter):
            f.last, f.suppressed = None, 0
    buffer = io.StringIO()
    handler = configure_logging("keyvalue", "info", stream=buffer)
    yield buffer
    logging.getLogger().removeHandler(handler)


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
async def test_malformed_requests_are_one_warning_line_not_tracebacks(serve, log_text):
    """Raw UTF-8 in the query, an oversized request line: 400 each, one warning line for all."""
    web = await serve()
    raw_utf8 = "GET /api/links?q=链接 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode("utf-8")
    oversized = b"GET /api/links?q=" + b"a" * 20000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for _ in range(5):
        assert (await _send_raw(web.port, raw_utf8)).endswith(b"400 Bad Request")
        assert (await _send_raw(web.port, oversized)).endswith(b"400 Bad Request")
    lines = log_text.getvalue().splitlines()
    assert not [line for line in lines if "level=error" in line or "Traceback" in line], lines
    bad = [line for line in lines if "event=http.bad_request" in line]
    assert len(bad) == 1 and "level=warning" in bad[0] and "remote=127.0.0.1" in bad[0], lines
    assert "suppressed=0" in bad[0] and "\\n" not in bad[0]


def test_the_next_line_counts_what_was_suppressed():
    """At most one line every `every` seconds; the next one says how many it left out."""
    from aiohttp.http_exceptions import LineTooLong

    now = [100.0]
    flt = BadRequestFilter(every=60.0, clock=lambda: now[0])

    def record() -> logging.LogRecord:
        exc = LineTooLong("request line", "8190", "20017")
        return logging.LogRecord("linkhealth.web.server", logging.ERROR, __file__, 1,
                                 "Error handling request from %s", ("127.0.0.1",), (LineTooLong, exc, None))

    first = record()
    assert flt.filter(first) and first.levelno == logging.WARNING and first.exc_info is None
    assert "Got more than 8190 bytes" in first.fields["reason"]
    now[0] += 30
    assert not any(flt.filter(record()) for _ in range(7))
    now[0] += 31
    nxt = record()
    assert flt.filter(nxt) and nxt.fields["suppressed"] == 7
    # Anything else (a bug in a handler) keeps its level and traceback.
    bug = logging.LogRecord("linkhealth.web.server", logging.ERROR, __file__, 1, "Error handling request", (),
                            (ValueError, ValueError("bug"), None))
    assert flt.filter(bug) and bug.levelno == logging.ERROR and bug.exc_info is not None
