"""A simulated web for benchmarks: many hosts, each slow in its own way, on 127.0.0.1.

Run alone (prints the plan and serves until Ctrl-C)::

    .venv/bin/python bench/simweb.py --urls 2000 --hosts 60

Used by bench/bench_audit.py. One HTTPS server on a random loopback port answers
for every host (the client reaches it with ``--connect-to ::127.0.0.1:PORT`` and
trusts the trustme CA written to ``ca.pem``). Each host has a fixed latency drawn
from 20-300 ms; host sizes are skewed like the real corpus (one host, WeChat, has
about half of all URLs; the rest follow a Zipf-like tail). Pages: mostly 200 HTML
with a Chinese title and a ~20 KiB body; some 404s; some 301s to a 200 page.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

BIG_HOST = "mp.weixin.qq.com"


@dataclass
class Plan:
    """Hosts, their latencies and URLs; ``requests`` is how many requests each URL costs."""

    latency: dict[str, float] = field(default_factory=dict)      # host -> seconds
    urls: list[str] = field(default_factory=list)
    kind: dict[str, str] = field(default_factory=dict)           # path -> ok | missing | moved

    def politeness_bound(self, per_host: int) -> tuple[float, str]:
        """max over hosts of (sum of its request latencies) / per_host, and that host."""
        total: dict[str, float] = {}
        for url in self.urls:
            host, path = url.split("/", 3)[2], "/" + url.split("/", 3)[3]
            cost = 2 if self.kind[path] == "moved" else 1
            total[host] = total.get(host, 0.0) + cost * self.latency[host]
        host = max(total, key=total.__getitem__)
        return total[host] / per_host, host

    def hosts(self) -> dict[str, int]:
        """URL count per host."""
        counts: dict[str, int] = {}
        for url in self.urls:
            host = url.split("/", 3)[2]
            counts[host] = counts.get(host, 0) + 1
        return counts


def make_plan(n_urls: int = 2000, n_hosts: int = 60, seed: int = 7,
              big_fraction: float = 0.5) -> Plan:
    """A deterministic plan: hosts, skewed sizes, latencies in 20-300 ms."""
    rng = random.Random(seed)
    hosts = [BIG_HOST] + [f"site{i:02d}.example.com" for i in range(1, n_hosts)]
    plan = Plan(latency={h: rng.uniform(0.020, 0.300) for h in hosts})
    big = int(n_urls * big_fraction)
    weights = [1 / (rank ** 1.1) for rank in range(1, n_hosts)]
    rest = n_urls - big
    sizes = [max(1, int(rest * w / sum(weights))) for w in weights]
    sizes[0] += rest - sum(sizes)
    counts = [big] + sizes
    serial = 0
    for host, count in zip(hosts, counts):
        for _ in range(count):
            serial += 1
            roll = rng.random()
            kind = "missing" if roll < 0.05 else "moved" if roll < 0.10 else "ok"
            path = f"/s/{serial:05d}" if host == BIG_HOST else f"/p/{serial:05d}.html"
            plan.kind[path] = kind
            plan.urls.append(f"https://{host}{path}")
    return plan


def build_app(plan: Plan) -> web.Application:
    """The aiohttp app serving ``plan`` with each host's latency."""
    filler = ("<p>" + "这是一段用于基准测试的正文内容。" * 20 + "</p>\n") * 30   # ~20 KiB

    async def handle(request: web.Request) -> web.StreamResponse:
        host = request.host.split(":")[0]
        await asyncio.sleep(plan.latency.get(host, 0.1))
        path = request.path
        if path.startswith("/final/"):
            path = path[len("/final"):]
            kind = "ok"
        else:
            kind = plan.kind.get(path, "missing")
        if kind == "missing":
            return web.Response(status=404, text="<title>404 Not Found</title>", content_type="text/html")
        if kind == "moved":
            return web.Response(status=301, headers={"Location": f"/final{path}"})
        html = (f"<html><head><meta charset='utf-8'><title>文章 {path} 的标题</title></head>"
                f"<body>{filler}</body></html>")
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def tls_setup(directory: Path, plan: Plan) -> tuple[ssl.SSLContext, Path]:
    """Server TLS context for every planned host, and the CA's PEM path."""
    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    names = sorted({BIG_HOST, "*.example.com"})
    ca.issue_cert(*names).configure_cert(context)
    ca_path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return context, ca_path


async def serve(plan: Plan, context: ssl.SSLContext) -> tuple[web.AppRunner, int]:
    """Start the app on a random port of 127.0.0.1 with TLS; returns (runner, port)."""
    runner = web.AppRunner(build_app(plan), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # the public API gives no port
    return runner, port


async def _main(args: argparse.Namespace) -> None:
    plan = make_plan(args.urls, args.hosts)
    context, ca = tls_setup(Path(args.dir), plan)
    runner, port = await serve(plan, context)
    bound, host = plan.politeness_bound(4)
    print(f"serving {len(plan.urls)} URLs on {len(plan.latency)} hosts at 127.0.0.1:{port}; "
          f"CA {ca}; bound at per-host 4: {bound:.1f}s ({host})")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=60)
    parser.add_argument("--dir", default=".")
    try:
        asyncio.run(_main(parser.parse_args()))
    except KeyboardInterrupt:
        pass
