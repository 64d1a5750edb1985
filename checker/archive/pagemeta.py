"""What a reader's header says about a page: title, and for WeChat the account and date (pure).

A WeChat article fills its visible byline from script variables, so a copy without
scripts shows an empty one. The same variables are read here, as the WeChat exporters
do (we-extract reads ``var nickname``/``var ct``; wechat-article-exporter reads
``var oriCreateTime``): ``var nickname = htmlDecode("...")`` or ``"..."``,
``var ct = "1529491955"`` (unix seconds, sometimes ``"..."*1``), ``var publish_time =
"2018-06-20" || ""``; the elements ``#js_name`` and ``#activity-name`` are the fallback.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, timezone

__all__ = ["PageMeta", "read_meta", "main_content"]

_NICKNAME = re.compile(r"""var\s+nickname\s*=\s*(?:htmlDecode\(\s*)?(["'])(?P<v>(?:\\.|(?!\1).)*)\1""")
_CT = re.compile(r"""var\s+(?:ct|oriCreateTime|create_time)\s*=\s*(["'])(?P<v>\d{9,11})\1""")
_PUBLISH = re.compile(r"""var\s+publish_time\s*=\s*(["'])(?P<v>[0-9][0-9 :-]{7,18})\1""")

#: The element holding a page's own text, most specific first (WeChat, CSDN, Zhihu,
#: common blog engines); the whole body when none is there.
MAIN_SELECTORS = ("#js_content", ".rich_media_content", "#content_views", "#article_content",
                  ".RichText", "article", "main", "[role=main]", ".post-content", ".entry-content",
                  "#content")


@dataclass(frozen=True, slots=True)
class PageMeta:
    """Title, and (WeChat) the account name and publish time, as the page states them."""

    title: str = ""
    account: str = ""
    published: str = ""     # "2018-06-20 18:52 UTC" or the page's own date text


def read_meta(soup, source: str) -> PageMeta:
    """Read the page's title and, for WeChat articles, its account and publish time."""
    title = _text(soup.select_one("#activity-name")) or _meta(soup, "og:title") or _text(soup.title)
    account = ""
    match = _NICKNAME.search(source)
    if match:
        account = html.unescape(re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)),
                                       match.group("v")))
    account = account.strip() or _text(soup.select_one("#js_name")) or _text(soup.select_one(".profile_nickname"))
    published = ""
    match = _CT.search(source)
    if match:
        published = datetime.fromtimestamp(int(match.group("v")), timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    elif (match := _PUBLISH.search(source)):
        published = match.group("v").strip()
    else:
        published = _text(soup.select_one("#publish_time"))
    return PageMeta(title, account, published)


def main_content(soup):
    """The element holding the page's own text (see MAIN_SELECTORS), else the body."""
    for selector in MAIN_SELECTORS:
        found = soup.select_one(selector)
        if found is not None and found.get_text(strip=True):
            return found
    return soup.body or soup


def _text(tag) -> str:
    return " ".join(tag.get_text(" ").split()) if tag is not None else ""


def _meta(soup, prop: str) -> str:
    tag = soup.find("meta", attrs={"property": prop})
    return (tag.get("content") or "").strip() if tag else ""
