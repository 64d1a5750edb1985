"""What a page shows: the pictures, stylesheets, fonts and icons a local copy needs (pure).

A browser draws more than ``<img src>``: lazy-loading sites keep the real picture in
``data-src`` (WeChat: ``<img data-src="https://mmbiz.qpic.cn/..." src="data:...1x1...">``),
``data-original`` (jQuery lazyload), ``data-lazy-src`` (WordPress), ``data-actualsrc``
(Zhihu); responsive ones in ``srcset`` and ``<picture><source>``; and backgrounds and
fonts come from CSS ``url(...)`` in ``style`` attributes, ``<style>`` and stylesheets
(with ``@import``). This module finds them; capture.py fetches, readable.py inlines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator
from urllib.parse import urljoin, urlsplit

__all__ = ["Ref", "LAZY_ATTRS", "best_srcset", "picture_url", "css_refs", "page_refs",
           "absolute", "is_placeholder", "document_base", "CSS_URL"]

#: Attributes lazy-loading scripts read the real picture from, most specific first.
LAZY_ATTRS = ("data-src", "data-original", "data-lazy-src", "data-actualsrc", "data-original-src",
              "data-lazyload", "data-echo")
_LAZY_SRCSET = ("data-srcset", "data-lazy-srcset")

# url(...) with optional quotes; @import "x" / @import url(x). CSS escapes in URLs are rare
# enough in the cited pages to be left alone.
CSS_URL = re.compile(r"""url\(\s*(?P<q>['"]?)(?P<url>[^'")]*?)(?P=q)\s*\)""", re.I)
_CSS_IMPORT = re.compile(r"""@import\s+(?:url\(\s*)?(?P<q>['"]?)(?P<url>[^'")\s;]+)(?P=q)\s*\)?""", re.I)


@dataclass(frozen=True, slots=True)
class Ref:
    """A resource a page needs: absolute URL, kind (image, css, icon, script) and Referer."""

    url: str
    kind: str
    referer: str | None = None


def absolute(ref: str | None, base: str) -> str | None:
    """``ref`` made absolute against ``base``; None unless it is http(s)."""
    if not ref:
        return None
    ref = ref.strip()
    if not ref or ref.startswith(("data:", "#", "javascript:", "about:", "blob:")):
        return None
    url = urljoin(base, ref)
    return url if urlsplit(url).scheme in ("http", "https") else None


def document_base(soup, page_url: str) -> str:
    """The URL relative references resolve against: ``<base href>`` when given, else the page."""
    base = soup.find("base", href=True)
    return absolute(base["href"], page_url) or page_url if base is not None else page_url


def best_srcset(value: str | None) -> str | None:
    """The largest candidate of a ``srcset`` (by its ``w`` or ``x`` descriptor; none is 1x)."""
    if not value:
        return None
    best, best_size = None, -1.0
    # Candidates are "URL [descriptor]" separated by commas; a URL may itself hold commas
    # (rare, WeChat's do not), so split on comma followed by whitespace or end first.
    for part in re.split(r",\s+|,$", value.strip()):
        bits = part.strip().split()
        if not bits:
            continue
        size = 1.0
        if len(bits) > 1:
            try:
                size = float(bits[1][:-1]) if bits[1][-1] in "wxWX" else 1.0
            except ValueError:
                size = 1.0
        if size > best_size:
            best, best_size = bits[0], size
    return best


def is_placeholder(src: str | None) -> bool:
    """True for an ``src`` that is no real picture: empty, a data: URI, about:blank."""
    return not src or not src.strip() or src.strip().startswith(("data:", "about:"))


def picture_url(tag, base: str) -> str | None:
    """The real picture of an ``<img>`` (or ``<source>``): lazy attribute, srcset, then src."""
    for attr in LAZY_ATTRS:
        url = absolute(tag.get(attr), base)
        if url:
            return url
    for attr in _LAZY_SRCSET + ("srcset",):
        url = absolute(best_srcset(tag.get(attr)), base)
        if url:
            return url
    src = tag.get("src")
    return None if is_placeholder(src) else absolute(src, base)


def css_refs(text: str, base: str) -> list[tuple[str, str]]:
    """(absolute URL, kind) of a stylesheet's ``@import`` (kind css) and ``url()`` (kind image)."""
    out: list[tuple[str, str]] = []
    imported = set()
    for match in _CSS_IMPORT.finditer(text):
        url = absolute(match.group("url"), base)
        if url:
            imported.add(url)
            out.append((url, "css"))
    for match in CSS_URL.finditer(text):
        url = absolute(match.group("url"), base)
        if url and url not in imported:
            out.append((url, "image"))
    return out


def page_refs(soup, base: str, referer: str | None) -> list[Ref]:
    """Every resource the page shows, stylesheets first (fonts and backgrounds hang off them)."""
    seen: set[str] = set()
    out: list[Ref] = []

    def add(url: str | None, kind: str) -> None:
        if url and url not in seen:
            seen.add(url)
            out.append(Ref(url, kind, referer))

    for link in soup.find_all("link", href=True):
        rel = {r.lower() for r in (link.get("rel") or [])}
        if "stylesheet" in rel:
            add(absolute(link["href"], base), "css")
    for style in soup.find_all("style"):
        for url, kind in css_refs(style.get_text(), base):
            add(url, kind)
    for url, kind in _body_refs(soup, base):
        add(url, kind)
    for link in soup.find_all("link", href=True):
        rel = {r.lower() for r in (link.get("rel") or [])}
        if rel & {"icon", "shortcut", "apple-touch-icon"}:
            add(absolute(link["href"], base), "icon")
    # Scripts go into the WARC only (never into the readable copy): a replay tool such as
    # pywb runs them, and WeChat's own script is what shows its body and lazy pictures.
    # Last, so that the budget goes to what the copy needs first.
    for script in soup.find_all("script", src=True):
        add(absolute(script["src"], base), "script")
    return out


def _body_refs(soup, base: str) -> Iterator[tuple[str, str]]:
    for tag in soup.find_all(True):
        name = tag.name
        if name == "img" or (name == "source" and tag.parent is not None and tag.parent.name == "picture"):
            yield from _some(picture_url(tag, base), "image")
        elif name in ("video",):
            yield from _some(absolute(tag.get("poster"), base), "image")
        elif name == "input" and (tag.get("type") or "").lower() == "image":
            yield from _some(absolute(tag.get("src"), base), "image")
        elif name in ("table", "td", "th", "body") and tag.get("background"):
            yield from _some(absolute(tag.get("background"), base), "image")
        if tag.get("style"):
            for url, kind in css_refs(tag["style"], base):
                yield url, kind


def _some(url: str | None, kind: str) -> Iterable[tuple[str, str]]:
    return ((url, kind),) if url else ()
