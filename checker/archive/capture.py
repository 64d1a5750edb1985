"""Fetching what a page shows, within the per-page budgets (count, bytes, seconds).

Resources come from any host (WeChat pictures live on mmbiz.qpic.cn, others on CDNs),
through the same session as checks (SSRF guard, --connect-to, CA file) and the same
per-host limits (:class:`checker.ratelimit.Limiter`). Each is fetched with the Referer
a browser would send (the page, or for a stylesheet's fonts and backgrounds the
stylesheet), because picture hosts judge by it: mmbiz.qpic.cn answers a foreign
Referer with a "not allowed" picture, while no Referer or the article's own URL works.
A page that asks for ``<meta name="referrer" content="no-referrer">`` gets none.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable
from urllib.parse import urlsplit

from ..ratelimit import Limiter
from ..settings import Settings
from .resources import Ref, css_refs, document_base, page_refs

__all__ = ["Budget", "Capture", "capture_resources", "page_referer", "MAX_CSS_DEPTH"]

#: Stylesheets importing stylesheets: followed this deep (browsers have no limit; pages
#: in the notes never go past two).
MAX_CSS_DEPTH = 3

ResourceFetch = Callable[[str, int, "str | None"], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Budget:
    """What one page's resources may cost: how many, how many bytes, how many seconds."""

    count: int
    bytes: int
    seconds: float

    @classmethod
    def from_settings(cls, settings: Settings, page_bytes: int) -> "Budget":
        """The budget left once the page itself is fetched."""
        cfg = settings.archive
        return cls(cfg.local_max_resources, max(0, cfg.local_max_bytes - page_bytes), cfg.local_max_seconds)


@dataclass
class Capture:
    """The resources of one page: fetched (by URL), failed (URL -> reason), budget notes."""

    refs: list[Ref] = field(default_factory=list)
    fetched: dict[str, object] = field(default_factory=dict)     # url -> Fetched
    failed: dict[str, str] = field(default_factory=dict)
    budget_hit: list[str] = field(default_factory=list)

    def ordered(self) -> list[object]:
        """Fetched resources in the order they were found."""
        return [self.fetched[r.url] for r in self.refs if r.url in self.fetched]


def page_referer(soup, page_url: str) -> str | None:
    """The Referer the page's resources get: the page URL unless it asks for none.

    Referrer-Policy (W3C): no-referrer sends nothing; origin-style policies send the
    origin; anything else the page URL, which is what hotlink-protected hosts accept.
    """
    meta = soup.find("meta", attrs={"name": lambda v: v and v.lower() == "referrer"})
    policy = (meta.get("content") or "").strip().lower() if meta else ""
    if policy in ("no-referrer", "never", "none"):
        return None
    if policy in ("origin", "strict-origin", "origin-when-cross-origin", "strict-origin-when-cross-origin"):
        parts = urlsplit(page_url)
        return f"{parts.scheme}://{parts.netloc}/"
    return page_url


async def capture_resources(soup, page, fetch: ResourceFetch, budget: Budget, limiter: Limiter, *,
                            clock: Callable[[], float] = time.monotonic) -> Capture:
    """Fetch the page's resources (and those of its stylesheets), bounded by ``budget``."""
    base = document_base(soup, page.final_url)
    cap = Capture(refs=page_refs(soup, base, page_referer(soup, page.final_url)))
    run = _Run(cap, fetch, budget, limiter)
    for ref in cap.refs:
        run.queue.put_nowait((ref, 0))
    deadline = clock() + budget.seconds
    try:
        # Stylesheets add work while others run: go on until the queue is drained, not only
        # until the first wave of workers found it empty.
        while not run.queue.empty():
            left = deadline - clock()
            if left <= 0:
                raise asyncio.TimeoutError
            await asyncio.wait_for(run.wave(max(1, limiter_width(limiter))), timeout=left)
    except asyncio.TimeoutError:
        while not run.queue.empty():
            cap.budget_hit.append(run.queue.get_nowait()[0].url)
        cap.budget_hit.append(f"time budget of {budget.seconds:g} s spent")
    return cap


class _Run:
    """The fetching of one page's resources: a queue, workers, the budget left."""

    def __init__(self, cap: Capture, fetch: ResourceFetch, budget: Budget, limiter: Limiter) -> None:
        self.cap, self.fetch, self.limiter = cap, fetch, limiter
        self.queue: asyncio.Queue[tuple[Ref, int]] = asyncio.Queue()
        self.bytes_left, self.count_left = budget.bytes, budget.count

    async def wave(self, width: int) -> None:
        """Workers until the queue is empty (wait_for cancels them on the deadline)."""
        await asyncio.gather(*(self._worker() for _ in range(width)))

    async def _worker(self) -> None:
        while not self.queue.empty():
            ref, depth = self.queue.get_nowait()
            await self._one(ref, depth)

    async def _one(self, ref: Ref, depth: int) -> None:
        cap = self.cap
        if self.count_left <= 0 or self.bytes_left <= 0:
            cap.budget_hit.append(ref.url)
            return
        self.count_left -= 1
        async with self.limiter.slot(urlsplit(ref.url).hostname or ""):
            got = await self.fetch(ref.url, self.bytes_left, ref.referer)
        if got.status is None or not 200 <= got.status < 300:
            cap.failed[ref.url] = got.error or f"HTTP {got.status}"
            return
        if got.truncated or len(got.body) > self.bytes_left:
            cap.failed[ref.url] = "over the page's byte budget"
            cap.budget_hit.append(ref.url)
            return
        self.bytes_left -= len(got.body)
        cap.fetched[ref.url] = got
        if ref.kind == "css" and depth < MAX_CSS_DEPTH:
            self._follow(ref, got, depth)

    def _follow(self, ref: Ref, sheet, depth: int) -> None:
        """Queue a stylesheet's imports, backgrounds and fonts (their Referer: the stylesheet)."""
        known = {r.url for r in self.cap.refs}
        for url, kind in css_refs(sheet.body.decode("utf-8", "replace"), sheet.final_url):
            if url not in known:
                known.add(url)
                child = Ref(url, kind, sheet.final_url if ref.referer is not None else None)
                self.cap.refs.append(child)
                self.queue.put_nowait((child, depth + 1))


def limiter_width(limiter: Limiter) -> int:
    """How many resources to fetch at once: the per-host limit (hosts share one pool)."""
    return limiter.limits("").per_host
