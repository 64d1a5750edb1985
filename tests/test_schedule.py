"""The run's scheduling against a real server on loopback (checker.schedule via Prober.run)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter, defaultdict

from aiohttp import web as aioweb

from checker.models import Cause, Probe, Target
from checker.pipeline import pace_refusal
from checker.probe import Prober
from checker.rules import load_rules
from checker.settings import HealthSettings
from checker.schedule import TIMEOUT_RETRY_AFTER
from webserver import wechat_with_captcha


def target(url: str) -> Target:
    return Target(url=url, display_url=url, host=url.split("/")[2])


class Recorder:
    """Server side: per host, requests in flight, their peak, and start times."""

    def __init__(self) -> None:
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.starts: dict[str, list[float]] = defaultdict(list)
        self.paths: list[str] = []

    def enter(self, request: aioweb.Request) -> str:
        host = request.host.split(":")[0]
        self.in_flight[host] += 1
        self.peak[host] = max(self.peak[host], self.in_flight[host])
        self.starts[host].append(time.monotonic())
        self.paths.append(request.path_qs)
        return host

    def min_gap(self, host: str) -> float:
        s = self.starts[host]
        return min(b - a for a, b in zip(s, s[1:]))


async def collect(prober: Prober, targets: list[Target], **kwargs) -> dict[str, Probe]:
    out: dict[str, Probe] = {}

    async def sink(t: Target, probe: Probe) -> None:
        assert t.url not in out, "one result per URL"
        out[t.url] = probe

    await prober.run(targets, sink, **kwargs)
    return out


async def test_ceilings_never_passed_and_429s_from_our_pace_are_not_results(web, web_settings) -> None:
    rec = Recorder()

    async def capped(request: aioweb.Request) -> aioweb.Response:
        host = rec.enter(request)
        try:
            if rec.in_flight[host] > 1:             # the host's own limit, not told to the checker
                return aioweb.Response(status=429, headers={"Retry-After": "0"}, text="slow down")
            await asyncio.sleep(0.1)
            return aioweb.Response(text="<title>ok</title>", content_type="text/html")
        finally:
            rec.in_flight[host] -= 1

    web.route("/capped", capped)
    # Plain HTTP: a TLS handshake on a new connection would delay one request's arrival
    # and make the server see two starts closer than the client spaced them.
    targets = [target(f"http://{h}.example.com/capped?{i}") for h in ("a", "b") for i in range(20)]
    async with Prober(web_settings(per_host=3, per_host_interval=0.05, concurrency=5)) as prober:
        got = await collect(prober, targets)
    assert len(got) == 40 and all(p.http_status == 200 for p in got.values())
    assert max(rec.peak.values()) <= 3                       # the configured ceiling holds
    for host in ("a.example.com", "b.example.com"):
        # The configured interval: the client spaces its starts 50 ms apart; what the server
        # sees also carries the event loop's and the connection's jitter (a loaded machine).
        assert rec.min_gap(host) >= 0.05 * 0.6
    assert len(rec.paths) > 40                              # some were refused, then checked again


async def test_verification_page_is_retried_after_the_pause_not_recorded(web, web_settings) -> None:
    served = wechat_with_captcha(web, lambda n, _: n <= 2)      # the first two: sent to the captcha
    rules = load_rules(HealthSettings())
    clock = FakeClock()
    targets = [target(f"https://mp.weixin.qq.com/s?id={i}") for i in range(3)]
    async with Prober(web_settings(), host_policy=rules.host_policy, sleep=clock.sleep, clock=clock) as prober:
        got = await collect(prober, targets, refusal=pace_refusal(rules, {}))
    assert all("/mp/wappoc_appmsgcaptcha" not in (p.final_url or "") for p in got.values())
    assert served["n"] == 5
    # Paused 5 s after the first page, 10 s after the second (the rule starts WeChat at 1 s).
    assert clock.now - 1000.0 >= 15.0


async def test_a_url_refused_for_its_own_sake_does_not_slow_its_host(web, web_settings) -> None:
    """Three pages that always answer 503 on a host that answers the rest: each is tried four
    times, then recorded; after its first refusal, its refusals neither cut nor pause the host,
    and the cut that first refusal caused is undone (without this: 12 cuts and 12 pauses)."""
    bad = {"5", "15", "25"}
    tries: Counter[str] = Counter()

    async def page(request: aioweb.Request) -> aioweb.Response:
        tries[request.query_string] += 1
        if request.query_string in bad:
            return aioweb.Response(status=503, text="this application is down")
        return aioweb.Response(text="<title>ok</title>", content_type="text/html")

    web.route("/own", page)
    clock = FakeClock()
    targets = [target(f"http://own.example.com/own?{i}") for i in range(40)]
    async with Prober(web_settings(per_host=2), sleep=clock.sleep, clock=clock) as prober:
        got = await collect(prober, targets)
    assert len(got) == 40
    assert {u.split("?")[1] for u, p in got.items() if p.http_status == 503} == bad
    assert all(tries[q] == 4 for q in bad) and sum(tries.values()) == 37 + 4 * 3
    pace = prober.limiter.host("own.example.com").pace
    assert pace.cuts == 3 and pace.refusals == 12
    assert pace.stress_concurrency is None and pace.window == 2.0    # every cut undone
    assert clock.now - 1000.0 < 3 * 1.0 + 1.0      # one 1 s pause per page, its first refusal


async def test_an_article_behind_its_own_verification_page_does_not_slow_wechat(web, web_settings) -> None:
    """One article always sent to the verification page, its host answering the rest (the
    corpus simulation of bench/corpus_report.py has 1% of such URLs): one pause, then its
    refusals are its own; recorded blocked after 4 tries, and WeChat's pace is restored.
    Before: each of its refusals cut the rate, halving the rate measured over a window that
    held the pause, and WeChat's pace fell to one request every 10 s."""
    tries = wechat_with_captcha(web, lambda _, article: article == "5")
    rules = load_rules(HealthSettings())
    clock = FakeClock()
    targets = [target(f"https://mp.weixin.qq.com/s?id={i}") for i in range(30)]
    async with Prober(web_settings(), host_policy=rules.host_policy, sleep=clock.sleep, clock=clock) as prober:
        got = await collect(prober, targets, refusal=pace_refusal(rules, {}))
    assert len(got) == 30 and tries["5"] == 4
    pace = prober.limiter.host("mp.weixin.qq.com").pace
    assert pace.stressed == 1 and pace.refusals == 4            # one refusal taken as stress
    assert pace.stress_rate is None and pace.interval < 1.0      # its cut undone: still climbing


async def test_hostile_host_is_set_aside_with_one_line(web, web_settings) -> None:
    async def always(request: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(status=429, text="no")

    web.route("/no", always)
    web.page("/fine", "<title>fine</title>")

    clock = FakeClock()
    targets = [target(f"https://hostile.example.com/no?{i}") for i in range(40)]
    targets.append(target("https://other.example.com/fine"))
    async with Prober(web_settings(host_retry_budget=6), sleep=clock.sleep, clock=clock) as prober:
        got = await collect(prober, targets)
    assert got["https://other.example.com/fine"].http_status == 200
    hostile = [p for url, p in got.items() if "hostile" in url]
    assert hostile and all(p.http_status == 429 for p in hostile)     # what stayed refused: recorded
    assert len(hostile) < 40                                          # the rest left for next time
    [line] = prober.notices
    assert line.startswith("hostile.example.com: paused after repeated refusals (HTTP 429); ")
    assert line.endswith(f"{40 - len(hostile)} links left for the next run")


class FakeClock:
    """Pauses pass at once: sleeping moves this clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


def closed_port() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))              # bound, never listening: connections are refused
    return sock, sock.getsockname()[1]


async def test_refusing_host_is_settled_after_its_first_failures(web, web_settings) -> None:
    sock, port = closed_port()
    try:
        rules = (f"dead.example.com:443:127.0.0.1:{port}", *web.connect_to)
        web.page("/fine", "<title>fine</title>")
        targets = [target(f"https://dead.example.com/p{i}") for i in range(10)]
        targets.append(target("https://alive.example.com/fine"))
        async with Prober(web_settings(connect_to=rules)) as prober:
            got = await collect(prober, targets)
    finally:
        sock.close()
    dead = [p for url, p in got.items() if "dead." in url]
    assert len(dead) == 10 and all(p.cause is Cause.REFUSED for p in dead)
    tried = [p for p in dead if p.attempts]
    assert len(tried) == 3                               # the others settled from those
    assert all("not tried: dead.example.com failed 3 times" in p.error for p in dead if not p.attempts)
    assert got["https://alive.example.com/fine"].http_status == 200
    assert not prober.notices                            # one host down is not the network


async def test_network_down_is_said_once_and_every_link_is_unreachable(web_settings) -> None:
    sock, port = closed_port()
    try:
        targets = [target(f"https://h{h}.example.com/p{i}") for h in range(30) for i in range(4)]
        # Generous connect timeout: a loaded machine must not turn a refusal into a timeout.
        settings = web_settings(connect_to=(f"::127.0.0.1:{port}",), connect_timeout=10.0, timeout=10.0)
        async with Prober(settings) as prober:
            got = await collect(prober, targets)
    finally:
        sock.close()
    assert len(got) == 120 and all(p.cause is Cause.REFUSED for p in got.values())
    down = [n for n in prober.notices if "the network looks down" in n]
    assert len(down) == 1 and len(prober.notices) == 1
    assert sum(1 for p in got.values() if p.attempts) < 60     # far fewer tries than links


async def test_timeout_is_retried_after_a_few_of_its_hosts_other_urls(web, web_settings) -> None:
    rec = Recorder()

    async def maybe_hang(request: aioweb.Request) -> aioweb.Response:
        rec.enter(request)
        if request.query.get("n") == "0":
            await asyncio.sleep(5)
        return aioweb.Response(text="<title>t</title>", content_type="text/html")

    web.route("/q", maybe_hang)
    targets = [target(f"https://one.example.com/q?n={i}") for i in range(TIMEOUT_RETRY_AFTER + 3)]
    async with Prober(web_settings(per_host=1, timeout=0.3, retries=1)) as prober:
        got = await collect(prober, targets)
    # Not last: after TIMEOUT_RETRY_AFTER others, so that hangs' retries do not all queue at
    # the end of a host whose rate leaves slots idle.
    others = [f"/q?n={i}" for i in range(1, TIMEOUT_RETRY_AFTER + 3)]
    assert rec.paths == ["/q?n=0", *others[:TIMEOUT_RETRY_AFTER], "/q?n=0", *others[TIMEOUT_RETRY_AFTER:]]
    assert got["https://one.example.com/q?n=0"].cause is Cause.READ_TIMEOUT
    assert got["https://one.example.com/q?n=0"].attempts == 2


async def test_the_last_url_of_a_host_asks_to_close_its_connection(web, web_settings) -> None:
    """No idle connection is kept for a host with nothing left in the run: each idle TLS
    connection holds a 256 KiB read buffer, and a run meets thousands of small hosts."""
    seen: list[tuple[str, str | None]] = []

    async def page(request: aioweb.Request) -> aioweb.Response:
        seen.append((request.query_string, request.headers.get("Connection")))
        return aioweb.Response(text="<title>t</title>", content_type="text/html")

    web.route("/c", page)
    targets = [target(f"https://few.example.com/c?{i}") for i in range(3)]
    async with Prober(web_settings(per_host=1)) as prober:
        got = await collect(prober, targets)
    assert len(got) == 3 and [q for q, _ in seen] == ["0", "1", "2"]
    assert [(c or "").lower() == "close" for _, c in seen] == [False, False, True]


async def test_progress_views_name_the_busiest_hosts_with_pace_and_eta(web, web_settings) -> None:
    from checker.schedule import describe_hosts

    web.page("/p", "<title>p</title>")
    targets = [target(f"https://big.example.com/p?{i}") for i in range(30)]
    targets += [target(f"https://small.example.com/p?{i}") for i in range(3)]
    seen: list[str] = []

    async def sink(t: Target, probe: Probe) -> None:
        if len(seen) < 12:
            seen.append(describe_hosts(prober.views()))

    async with Prober(web_settings(per_host=2)) as prober:
        await prober.run(targets, sink)
    assert seen[0].startswith("big.example.com 2")            # the busiest first, what is left
    assert "at a time" in seen[0] and "no interval" in seen[0]
    assert any("~" in line for line in seen)                  # an estimate once answers come in
    assert prober.views() == []                               # nothing left at the end
