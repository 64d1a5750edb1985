"""The probe engine (checker.probe) against the scripted web on 127.0.0.1.

Real-looking hostnames (mp.weixin.qq.com, github.com ...) reach the local server
through --connect-to rules, over real TLS with a trustme CA.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from aiohttp import web as aioweb

from checker.models import Cause, Hop, HostPolicy, Probe, Status, Target
from checker.probe import Prober, transport_status


def target(url: str) -> Target:
    host = url.split("/")[2].split(":")[0]
    return Target(url=url, display_url=url, host=host)


class Sleeps:
    """Injected sleep: records the delays, waits only a tick."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


async def probe_one(settings, url: str, **kwargs) -> Probe:
    async with Prober(settings, **kwargs) as prober:
        return await prober.fetch(target(url))


W = "https://mp.weixin.qq.com"


@pytest.mark.parametrize("path, status, http_status, title, final_path", [
    ("/title", Status.OK, 200, "Hello 世界", "/title"),
    ("/og", Status.OK, 200, "微信文章标题", "/og"),
    ("/gbk", Status.OK, 200, "中文标题：编码测试", "/gbk"),
    ("/gbk-meta", Status.OK, 200, "中文标题：编码测试", "/gbk-meta"),
    ("/gbk-undeclared", Status.OK, 200, "中文标题：编码测试", "/gbk-undeclared"),
    ("/404", Status.BROKEN, 404, "status 404", "/404"),
    ("/410", Status.BROKEN, 410, "status 410", "/410"),
    ("/status/403", Status.BLOCKED, 403, "status 403", "/status/403"),
    ("/status/401", Status.BLOCKED, 401, "status 401", "/status/401"),
    ("/r301/3", Status.REDIRECT, 200, "Hello 世界", "/title"),
    ("/permanent", Status.REDIRECT, 200, "Hello 世界", "/title"),
    ("/temporary", Status.OK, 200, "Hello 世界", "/title"),
    ("/redirect-404", Status.BROKEN, 404, "status 404", "/404"),
    ("/doc.pdf", Status.OK, 200, None, "/doc.pdf"),
])
async def test_statuses(web_settings, path, status, http_status, title, final_path) -> None:
    probe = await probe_one(web_settings(), W + path)
    assert transport_status(probe) is status
    assert probe.http_status == http_status
    assert probe.title == title
    assert probe.final_url == W + final_path
    assert probe.attempts == 1
    assert isinstance(probe.started_at, datetime) and probe.started_at.tzinfo is not None
    assert probe.latency_ms is not None and probe.elapsed_ms is not None


async def test_redirect_chain_is_recorded(web_settings) -> None:
    probe = await probe_one(web_settings(), "https://github.com/r301/3")
    assert probe.redirects == (Hop("https://github.com/r301/3", 301), Hop("https://github.com/r301/2", 301),
                               Hop("https://github.com/r301/1", 301))
    assert probe.header("content-type") == "text/html; charset=utf-8"


async def test_plain_http_through_connect_to(web, web_settings) -> None:
    probe = await probe_one(web_settings(), "http://blog.example.org/title")
    assert probe.http_status == 200 and probe.title == "Hello 世界"
    assert web.requests[-1][1] == "blog.example.org"      # Host header kept


async def test_redirect_loop_is_too_many_redirects(web_settings) -> None:
    probe = await probe_one(web_settings(), W + "/loop/a")
    assert probe.cause is Cause.TOO_MANY_REDIRECTS and "loop" in probe.error
    assert transport_status(probe) is Status.BROKEN


async def test_redirect_limit(web_settings) -> None:
    probe = await probe_one(web_settings(max_redirects=2), W + "/r301/5")
    assert probe.cause is Cause.TOO_MANY_REDIRECTS and len(probe.redirects) == 3


async def test_retry_500_then_200(web, web_settings) -> None:
    sleeps = Sleeps()
    probe = await probe_one(web_settings(), W + "/flaky/1", sleep=sleeps)
    assert transport_status(probe) is Status.OK and probe.attempts == 2
    assert web.hits["/flaky/1"] == 2 and len(sleeps.delays) == 1


async def test_503_always_is_broken_after_retries(web, web_settings) -> None:
    probe = await probe_one(web_settings(retries=2), W + "/503", sleep=Sleeps())
    assert transport_status(probe) is Status.BROKEN and probe.http_status == 503
    assert probe.attempts == 3 and web.hits["/503"] == 3


async def test_429_retry_after_is_honoured(web, web_settings) -> None:
    sleeps = Sleeps()
    probe = await probe_one(web_settings(), W + "/ratelimited/1", sleep=sleeps)
    assert probe.http_status == 200 and probe.attempts == 2
    assert 1.0 in sleeps.delays          # Retry-After: 1, below the 1.5 s cap


async def test_429_retry_after_is_capped(web, web_settings) -> None:
    web.page("/angry", "no", status=429, headers={"Retry-After": "3600"})
    sleeps = Sleeps()
    probe = await probe_one(web_settings(retries=1), W + "/angry", sleep=sleeps)
    assert transport_status(probe) is Status.BLOCKED and probe.attempts == 2
    assert max(sleeps.delays) == 1.5


async def test_head_refused_falls_back_to_get(web, web_settings) -> None:
    probe = await probe_one(web_settings(), W + "/file.pdf")
    assert transport_status(probe) is Status.OK and probe.method == "GET"
    assert [m for m, _, p, _ in web.requests if p == "/file.pdf"] == ["HEAD", "GET"]
    assert probe.body is None and probe.content_type == "application/pdf"


async def test_head_used_for_downloads(web) -> None:
    # Not through web_settings: also proves the default settings' HEAD list has .pdf.
    from checker.settings import Settings
    settings = Settings().with_overrides({"check.allow_private": True})
    async with Prober(settings) as prober:
        probe = await prober.fetch(target(web.url("/doc.pdf")))
    assert probe.method == "HEAD" and probe.http_status == 200
    assert [m for m, _, p, _ in web.requests] == ["HEAD"]


async def test_hang_is_timeout(web_settings) -> None:
    probe = await probe_one(web_settings(timeout=0.3, retries=1), W + "/hang", sleep=Sleeps())
    assert transport_status(probe) is Status.TIMEOUT and probe.cause is Cause.READ_TIMEOUT
    assert probe.attempts == 2


async def test_endless_body_is_truncated(web_settings) -> None:
    probe = await probe_one(web_settings(max_body_bytes=50_000), W + "/endless")
    assert transport_status(probe) is Status.OK and probe.title == "Endless"
    assert probe.body_truncated and len(probe.body) <= 50_000


async def test_gzip_bomb_is_bounded(web_settings) -> None:
    probe = await probe_one(web_settings(timeout=10.0), W + "/bomb")
    assert probe.http_status == 200 and probe.body_truncated
    assert len(probe.body) <= 256 * 1024


async def test_huge_header(web_settings) -> None:
    probe = await probe_one(web_settings(), W + "/big-header")
    assert probe.cause is Cause.HEADERS_TOO_LARGE and transport_status(probe) is Status.BROKEN


async def test_dropped_connection_is_unreachable(web, web_settings) -> None:
    probe = await probe_one(web_settings(retries=1), W + "/drop", sleep=Sleeps())
    assert probe.cause is Cause.DISCONNECTED and transport_status(probe) is Status.UNREACHABLE
    assert probe.attempts == 2


async def test_private_address_is_excluded(web, web_settings) -> None:
    probe = await probe_one(web_settings(connect_to=()), web.url("/title"))
    assert probe.cause is Cause.PRIVATE_ADDRESS and transport_status(probe) is Status.EXCLUDED
    assert probe.attempts == 1 and web.hits["/title"] == 0


async def test_invalid_url(web_settings) -> None:
    probe = await probe_one(web_settings(), "http://exa mple.com:99999/")
    assert probe.cause is Cause.INVALID_URL and transport_status(probe) is Status.BROKEN


async def test_host_policy_headers_reach_the_server(web, web_settings) -> None:
    policy = lambda host: HostPolicy(headers=(("X-Rule", host),))  # noqa: E731
    await probe_one(web_settings(), W + "/echo", host_policy=policy)
    assert web.requests[-1][3]["X-Rule"] == "mp.weixin.qq.com"


# -- run(): host-aware scheduling --------------------------------------------------------

async def test_run_fetches_every_target_once_and_skips_skipped(web, web_settings) -> None:
    targets = [target(f"https://h{i % 3}.example.com/slow/{i}") for i in range(12)]
    targets.append(Target("mailto:x@example.com", "mailto:x@example.com", "",
                          skip=Cause.EXCLUDED_SCHEME))
    seen: list[str] = []

    async def sink(t: Target, probe: Probe) -> None:
        assert probe.url == t.url
        seen.append(t.url)

    async with Prober(web_settings()) as prober:
        await prober.run(targets, sink)
    assert sorted(seen) == sorted(t.url for t in targets[:-1])


async def test_run_largest_host_first_and_limits_held(web, web_settings) -> None:
    active: dict[str, int] = {}
    peak: dict[str, int] = {}
    order: list[str] = []

    async def handler(request: aioweb.Request) -> aioweb.Response:
        host = request.host
        order.append(host)
        active[host] = active.get(host, 0) + 1
        peak[host] = max(peak.get(host, 0), active[host])
        peak["*"] = max(peak.get("*", 0), sum(active.values()))
        await asyncio.sleep(0.03)
        active[host] -= 1
        return aioweb.Response(text="<title>t</title>", content_type="text/html")

    web.route("/work", handler)
    targets = [target(f"https://small{i}.example.com/work?{i}") for i in range(6)]
    targets += [target(f"https://big.example.com/work?{i}") for i in range(12)]
    policy = lambda host: HostPolicy(per_host=1) if host == "small0.example.com" else None  # noqa: E731
    done: list[str] = []

    async def sink(t: Target, probe: Probe) -> None:
        assert probe.http_status == 200
        done.append(t.host)

    async with Prober(web_settings(concurrency=4, per_host=3), host_policy=policy) as prober:
        await prober.run(targets, sink)
    assert len(done) == 18
    assert order[0] == "big.example.com"                   # the big host starts first
    assert peak["big.example.com"] == 3                     # ... and is kept at its limit
    assert peak["*"] <= 4                                   # global limit
    assert all(peak[h] <= 3 for h in peak if h != "*")
    assert peak["small0.example.com"] == 1


async def test_run_per_host_interval(web, web_settings) -> None:
    stamps: list[float] = []

    async def handler(request: aioweb.Request) -> aioweb.Response:
        stamps.append(asyncio.get_running_loop().time())
        return aioweb.Response(text="ok")

    web.route("/tick", handler)
    targets = [target(f"https://one.example.com/tick?{i}") for i in range(4)]

    async def sink(t: Target, probe: Probe) -> None:
        pass

    async with Prober(web_settings(per_host_interval=0.1)) as prober:
        await prober.run(targets, sink)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert len(stamps) == 4 and min(gaps) >= 0.08


async def test_run_cancellation_stops_cleanly(web, web_settings) -> None:
    targets = [target(f"https://h{i}.example.com/hang") for i in range(5)]
    calls_after: list[str] = []
    returned = False

    async def sink(t: Target, probe: Probe) -> None:
        if returned:
            calls_after.append(t.url)

    async with Prober(web_settings(timeout=30.0)) as prober:
        task = asyncio.create_task(prober.run(targets, sink))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        returned = True
        await asyncio.sleep(0.1)
    assert calls_after == []


async def test_run_stop_lets_in_flight_fetches_finish_and_starts_no_more(web, web_settings) -> None:
    # One host, one worker: the first (slow) fetch is in flight when stop is set.
    targets = [target("https://example.com/slow/400")] + [target(f"https://example.com/slow/{i}")
                                                         for i in range(1, 6)]
    done: list[tuple[str, int | None]] = []
    stop = asyncio.Event()

    async def sink(t: Target, probe: Probe) -> None:
        done.append((t.url, probe.http_status))

    async with Prober(web_settings(per_host=1, concurrency=1)) as prober:
        task = asyncio.create_task(prober.run(targets, sink, stop=stop))
        await asyncio.sleep(0.15)
        stop.set()
        await asyncio.wait_for(task, 5)
    assert done == [("https://example.com/slow/400", 200)]       # finished, not cancelled
    assert web.hits["/slow/1"] == 0                                # nothing new started


async def test_run_sink_failure_propagates(web, web_settings) -> None:
    targets = [target(f"https://h{i}.example.com/title") for i in range(10)]

    async def sink(t: Target, probe: Probe) -> None:
        raise RuntimeError("store is down")

    async with Prober(web_settings(concurrency=2)) as prober:
        with pytest.raises(RuntimeError, match="store is down"):
            await prober.run(targets, sink)


# -- transport_status: pure table --------------------------------------------------------

U = "https://a.example/x"


@pytest.mark.parametrize("probe, expected", [
    (Probe(U, http_status=200, final_url=U), Status.OK),
    (Probe(U, http_status=204, final_url=U), Status.OK),
    (Probe(U, http_status=200, final_url="https://b.example/y", redirects=(Hop(U, 301),)), Status.REDIRECT),
    (Probe(U, http_status=200, final_url="https://b.example/y", redirects=(Hop(U, 308),)), Status.REDIRECT),
    (Probe(U, http_status=200, final_url="https://b.example/y", redirects=(Hop(U, 302),)), Status.OK),
    (Probe(U, http_status=404, final_url="https://b.example/y", redirects=(Hop(U, 301),)), Status.BROKEN),
    (Probe(U, http_status=401), Status.BLOCKED),
    (Probe(U, http_status=403), Status.BLOCKED),
    (Probe(U, http_status=429), Status.BLOCKED),
    (Probe(U, http_status=404), Status.BROKEN),
    (Probe(U, http_status=410), Status.BROKEN),
    (Probe(U, http_status=500), Status.BROKEN),
    (Probe(U, http_status=503), Status.BROKEN),
    (Probe(U, cause=Cause.READ_TIMEOUT), Status.TIMEOUT),
    (Probe(U, cause=Cause.CONNECT_TIMEOUT), Status.TIMEOUT),
    (Probe(U, cause=Cause.DNS), Status.UNREACHABLE),
    (Probe(U, cause=Cause.REFUSED), Status.UNREACHABLE),
    (Probe(U, cause=Cause.DISCONNECTED), Status.UNREACHABLE),
    (Probe(U, cause=Cause.TLS), Status.UNREACHABLE),
    (Probe(U, cause=Cause.TOO_MANY_REDIRECTS, http_status=302), Status.BROKEN),
    (Probe(U, cause=Cause.INVALID_URL), Status.BROKEN),
    (Probe(U, cause=Cause.HEADERS_TOO_LARGE), Status.BROKEN),
    (Probe(U, cause=Cause.PRIVATE_ADDRESS), Status.EXCLUDED),
    (Probe(U), None),
])
def test_transport_status(probe: Probe, expected: Status | None) -> None:
    assert transport_status(probe) is expected


@pytest.mark.parametrize("status", [300, 302, 304, 101])
def test_final_answer_outside_2xx_without_a_page_is_broken(status) -> None:
    url = "https://example.com/x"
    assert transport_status(Probe(url=url, http_status=status, final_url=url)) is Status.BROKEN


async def test_head_answered_500_is_settled_by_get(web, web_settings) -> None:
    from aiohttp import web as aioweb

    async def breaks_on_head(request):
        if request.method == "HEAD":
            return aioweb.Response(status=500)
        return aioweb.Response(body=b"%PDF-1.4\n", content_type="application/pdf")
    web.route("/paper.pdf", breaks_on_head)
    probe = await probe_one(web_settings(retries=0), "https://example.com/paper.pdf")
    assert probe.http_status == 200 and probe.method == "GET"


async def test_utf16_page_title_and_utf7_is_not_decoded(web, web_settings) -> None:
    page = "<html><head><title>UTF-16 标题</title></head></html>"
    web.page("/u16", b"\xff\xfe" + page.encode("utf-16-le"), content_type="text/html; charset=utf-16")
    web.page("/u7", b"<title>+ADw-script+AD4-</title>", content_type="text/html; charset=utf-7")
    assert (await probe_one(web_settings(), W + "/u16")).title == "UTF-16 标题"
    assert (await probe_one(web_settings(), W + "/u7")).title == "+ADw-script+AD4-"
