"""The random-sibling probe: does this host answer every path with the same page?

Bar-Yossef, Broder, Kumar and Tomkins ("Sic transit gloria telae: towards an
understanding of the Web's decay", WWW 2004) detect soft 404s by fetching a random
path next to the link: a server that answers a path that cannot exist with the same
page as the link has not really got the link's page either.

Cost is bounded: at most one extra request per host and run, and only for a page that
looked live (ok, no rule decided). The answer to that one request is kept for the run
and every later live page of the host is compared with it, at no extra cost. A page
whose text is too small to compare (a JavaScript shell) is never called a soft 404:
every page of a single-page application looks alike to a robot.
"""

from __future__ import annotations

import asyncio
import random
from typing import Awaitable, Callable
from urllib.parse import urlsplit

from .classify import random_path_url, same_page, text_word_count
from .models import Probe, Status, Target, Verdict
from .rules import RuleSet

__all__ = ["SiblingProbe", "MIN_WORDS"]

#: A page needs at least this many distinct words of visible text (no markup, scripts or
#: noscript) before it is compared: below that -- a JavaScript shell, a bare redirect
#: page, a template whose text is all in scripts -- pages look alike without being gone.
MIN_WORDS = 15

Fetch = Callable[[Target], Awaitable[Probe]]


class SiblingProbe:
    """One random-sibling fetch per host and run; ``requests`` counts the extra requests."""

    def __init__(self, fetch: Fetch, rules: RuleSet, *, enabled: bool, rng: random.Random) -> None:
        self._fetch, self._rules, self._enabled, self._rng = fetch, rules, enabled, rng
        self._decoys: dict[str, asyncio.Future[Probe | None]] = {}
        self.requests = 0

    def wanted(self, target: Target, probe: Probe, verdict: Verdict) -> bool:
        """Whether this verdict is one the probe may overturn (a live-looking page of an enabled host)."""
        if verdict.status is not Status.OK or verdict.rule is not None or not probe.body:
            return False
        rule = self._rules.match(target.url)
        if rule is not None and rule.compare_random_path is not None:
            return rule.compare_random_path
        return self._enabled

    async def check(self, target: Target, probe: Probe, verdict: Verdict) -> Verdict:
        """The verdict, turned into a soft 404 when the page equals its host's random sibling."""
        if not self.wanted(target, probe, verdict):
            return verdict
        decoy = await self._decoy(probe.final_url or target.url, target)
        if decoy is None or text_word_count(probe) < MIN_WORDS or not same_page(probe, decoy):
            return verdict
        return Verdict(Status.SOFT404, error="soft 404: the page is the same as a random path on this host "
                       f"({decoy.url}) [generic:random-sibling]", title=verdict.title, final_url=verdict.final_url,
                       at_risk=verdict.at_risk, rule="generic:random-sibling")

    async def _decoy(self, url: str, target: Target) -> Probe | None:
        """The host's random-sibling answer, fetched once per run (concurrent callers share it)."""
        try:
            host = (urlsplit(url).netloc or "").lower()
        except ValueError:
            return None
        future = self._decoys.get(host)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._decoys[host] = future
            decoy_url = random_path_url(url, self._rng)
            self.requests += 1
            answer = None
            try:
                answer = await self._fetch(Target(url=decoy_url, display_url=decoy_url, host=target.host))
                if answer.http_status is None:      # no answer at all: nothing to compare with
                    answer = None
            except Exception:  # noqa: BLE001 - a failed decoy only means "no comparison"
                answer = None
            finally:   # also when cancelled: the pages waiting on it get "no comparison"
                if not future.done():
                    future.set_result(answer)
        return await asyncio.shield(future)
