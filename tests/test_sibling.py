"""The random-sibling probe (checker/sibling.py): once per host and run, only for live-looking pages."""

from __future__ import annotations

import asyncio
import random

import pytest

from checker.models import Probe, Status, Target, Verdict
from checker.rules import RuleSet, load_rules, parse_rules
from checker.settings import HealthSettings
from checker.sibling import MIN_WORDS, SiblingProbe

SHELL = "<html><head><title>App</title></head><body><div id=root></div></body></html>"
PAGE = ("<html><head><title>小站</title></head><body><p>Welcome to this small site: reading notes, travel "
        "photos and the occasional programming tip, updated now and then by its author.</p></body></html>")
OTHER = ("<html><head><title>Not here</title></head><body><p>Sorry, nothing lives at this address; try the "
         "search box or the archive of older posts instead.</p></body></html>")


class FakeWeb:
    """A fetch function: ``pages`` maps a host to the body its random paths answer (None: 404)."""

    def __init__(self, pages: dict[str, str | None]) -> None:
        self.pages, self.fetched = pages, []

    async def __call__(self, target: Target) -> Probe:
        self.fetched.append(target.url)
        await asyncio.sleep(0.01)       # concurrent callers overlap
        body = self.pages.get(target.url.split("/")[2])
        if body is None:
            return Probe(url=target.url, http_status=404, final_url=target.url, body="<title>404</title>")
        return Probe(url=target.url, http_status=200, final_url=target.url, body=body, title=None)


def live(url: str, body: str = PAGE) -> tuple[Target, Probe, Verdict]:
    target = Target(url, url, url.split("/")[2])
    return target, Probe(url=url, http_status=200, final_url=url, body=body), Verdict(Status.OK)


def prober(web: FakeWeb, rules: RuleSet | None = None, enabled: bool = True) -> SiblingProbe:
    rules = rules if rules is not None else load_rules(HealthSettings())
    return SiblingProbe(web, rules, enabled=enabled, rng=random.Random(3))


async def test_same_page_everywhere_is_soft404_with_one_extra_request_per_host():
    web = FakeWeb({"same.example": PAGE, "fine.example": None})
    sibling = prober(web)
    urls = [f"https://same.example/post/{i}" for i in range(5)] + [f"https://fine.example/p/{i}" for i in range(5)]
    verdicts = await asyncio.gather(*(sibling.check(*live(u)) for u in urls))
    assert [v.status for v in verdicts[:5]] == [Status.SOFT404] * 5
    assert all(v.rule == "generic:random-sibling" and "random path" in v.error for v in verdicts[:5])
    assert [v.status for v in verdicts[5:]] == [Status.OK] * 5
    assert sibling.requests == 2 and len(web.fetched) == 2      # one per host, shared by concurrent pages
    assert all("/post/" not in u and "/p/" not in u for u in web.fetched)


async def test_only_live_looking_pages_are_probed():
    web = FakeWeb({"same.example": PAGE})
    sibling = prober(web)
    target, probe, _ = live("https://same.example/a")
    for verdict in (Verdict(Status.SOFT404, rule="generic:not-found-title"), Verdict(Status.BLOCKED),
                    Verdict(Status.OK, rule="x:live")):
        assert await sibling.check(target, probe, verdict) is verdict
    assert sibling.requests == 0


async def test_a_javascript_shell_is_never_called_a_soft404():
    web = FakeWeb({"app.example": SHELL})
    sibling = prober(web)
    verdict = await sibling.check(*live("https://app.example/dashboard/42", SHELL))
    assert verdict.status is Status.OK and sibling.requests == 1


async def test_different_pages_stay_ok():
    web = FakeWeb({"blog.example": OTHER})
    verdict = await prober(web).check(*live("https://blog.example/2020/01/post.html"))
    assert verdict.status is Status.OK


async def test_switched_off_by_setting_or_rule():
    web = FakeWeb({"same.example": PAGE, "forum.example": PAGE})
    off = prober(web, enabled=False)
    assert (await off.check(*live("https://same.example/a"))).status is Status.OK and off.requests == 0
    rules = RuleSet(r for r, _ in parse_rules('[[rule]]\nname = "f"\nhosts = ["forum.example"]\n'
                                              'compare_random_path = false\n'
                                              '[[rule]]\nname = "s"\nhosts = ["same.example"]\n'
                                              'compare_random_path = true\n', source="t"))
    sibling = prober(web, rules, enabled=False)
    assert (await sibling.check(*live("https://forum.example/t/1"))).status is Status.OK
    assert (await sibling.check(*live("https://same.example/b"))).status is Status.SOFT404
    assert sibling.requests == 1


async def test_a_failed_decoy_means_no_comparison():
    async def broken(target: Target) -> Probe:
        raise RuntimeError("boom")
    sibling = SiblingProbe(broken, load_rules(HealthSettings()), enabled=True, rng=random.Random(1))
    assert (await sibling.check(*live("https://x.example/a"))).status is Status.OK
    assert (await sibling.check(*live("https://x.example/b"))).status is Status.OK
    assert sibling.requests == 1


def test_min_words_is_a_real_bar():
    from checker.classify import text_word_count
    assert text_word_count(Probe(url="https://a.example/x", body=SHELL)) < MIN_WORDS
    assert text_word_count(Probe(url="https://a.example/x", body=PAGE)) >= MIN_WORDS
    # Markup and scripts do not count: a template whose text lives in a script is a shell.
    scripted = ("<html><head><title>文章 1234</title><script>var msg_title = 'one two three four five six "
                "seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen';</script></head><body>"
                "<div id=js_article><div id=js_content><p>正文正文正文</p></div></div>"
                "<noscript>JavaScript is not available. Please enable JavaScript or switch to a supported "
                "browser to continue using this site and see its many pages.</noscript></body></html>")
    assert text_word_count(Probe(url="https://a.example/x", body=scripted)) < 5
