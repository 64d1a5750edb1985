"""The readable copy: one self-contained HTML file a reader opens offline (pure).

Why one file with data: URIs rather than a folder of files: a single file can be copied,
mailed or moved without breaking, opens the same from file:// and from the daemon's
/archive/ route, and lets the Content-Security-Policy forbid every load that is not a
data: URI (a folder would need 'self', which for file:// pages means the whole disk
in some browsers). The cost is size (base64 adds a third, and a picture shared by many
pages is stored in each copy; the WARC, not the copy, is deduplicated).

What is done to the page (after SingleFile and monolith):
- scripts, noscript, base, iframes/objects/embeds, meta refresh, event handlers,
  javascript: URLs and form actions are removed (iframes leave a link to their source);
- pictures are inlined (inline.py): lazy ones (``data-src`` & co.) replace their placeholder
  ``src``, ``srcset``/``<picture>`` become their best candidate, CSS ``url()`` in
  stylesheets, ``<style>`` and ``style`` attributes become data: URIs (``@import``
  inlined); what could not be fetched becomes ``url("data:,")``: no request, ever;
- content hidden until a script runs is shown (WeChat's ``#js_content`` has
  ``visibility: hidden; opacity: 0`` inline);
- links to other pages stay live links (made absolute);
- a reader's header says what this is: original URL, capture time, title, and for
  WeChat the account and publish time.
"""

from __future__ import annotations

import html as htmllib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from bs4 import BeautifulSoup

from .inline import css_text, data_uri, inline_css
from .pagemeta import PageMeta, main_content
from .resources import CSS_URL, LAZY_ATTRS, absolute, document_base, picture_url

__all__ = ["Readable", "build_readable", "CSP"]

#: Opening the copy may load nothing but data: URIs; forms cannot submit anywhere.
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline' data:; font-src data:; "
       "media-src data:; form-action 'none'; base-uri 'none'")

_REMOVE = ("script", "noscript", "base", "object", "embed", "applet", "portal", "template")
_FRAMES = ("iframe", "frame", "frameset")
_HIDDEN = re.compile(r"(?:^|;)\s*(visibility\s*:\s*hidden|opacity\s*:\s*0(?:\.0+)?|display\s*:\s*none)\s*(?:!important)?\s*(?=;|$)", re.I)
_LOADING_ATTRS = ("srcset", "sizes", "loading", "data-srcset", "data-lazy-srcset", "lowsrc") + LAZY_ATTRS

HEADER_STYLE = ("font:13px/1.5 -apple-system,'Segoe UI','PingFang SC','Microsoft YaHei',sans-serif;"
                "background:#fffbe6;color:#333;padding:8px 12px;border-bottom:1px solid #e6d98c;"
                "position:relative;z-index:2147483647;text-align:left;letter-spacing:0")


@dataclass(frozen=True, slots=True)
class Readable:
    """The copy's HTML and what it kept: pictures found on the page and inlined."""

    html: str
    pictures_found: int
    pictures_kept: int
    missing: tuple[str, ...] = ()


def build_readable(page, text: str, resources: Mapping[str, object], meta: PageMeta,
                   captured: datetime) -> Readable:
    """The self-contained copy of ``page`` (its decoded ``text``) with ``resources`` (URL -> Fetched) inlined."""
    soup = BeautifulSoup(text, "lxml")
    base = document_base(soup, page.final_url)
    _neutralise(soup, base)
    stats = _Stats()
    _pictures(soup, base, resources, stats)
    _styles(soup, base, resources, stats)
    _unhide(soup)
    _head(soup)
    _header(soup, page.url, meta, captured, stats)
    return Readable(str(soup), stats.found, stats.kept, tuple(stats.missing))


class _Stats:
    def __init__(self) -> None:
        self.found = 0
        self.kept = 0
        self.missing: list[str] = []

    def count(self, url: str, kept: bool) -> None:
        self.found += 1
        self.kept += kept
        if not kept:
            self.missing.append(url)


def _neutralise(soup, base: str) -> None:
    """Remove what runs, navigates, submits or loads by itself; keep links live."""
    for tag in soup.find_all(_REMOVE):
        tag.decompose()
    for tag in soup.find_all(_FRAMES):
        src = absolute(tag.get("src") or tag.get("data-src"), base)
        if src:
            note = soup.new_tag("p", attrs={"class": "linkhealth-embed"})
            note.append("[embedded content: ")
            note.append(soup.new_tag("a", attrs={"href": src}))
            note.a.string = src
            note.append("]")
            tag.replace_with(note)
        else:
            tag.decompose()
    for meta in soup.find_all("meta"):
        equiv = (meta.get("http-equiv") or "").lower()
        if equiv or meta.get("charset") or (meta.get("name") or "").lower() == "referrer":
            meta.decompose()      # refresh, set-cookie, old CSP, charset: ours replace them
    for link in soup.find_all("link"):
        rel = {r.lower() for r in (link.get("rel") or [])}
        if not rel & {"stylesheet", "icon", "shortcut", "apple-touch-icon"}:
            link.decompose()      # preload, prefetch, preconnect, manifest...
    for form in soup.find_all("form"):
        # A form cannot submit if it is no form: pressing Enter in a field submits even
        # without a button, and to the copy's own URL when the action is gone.
        form.name = "div"
        form["data-lh-form"] = ""
    for button in soup.find_all(["button", "input"]):
        if (button.get("type") or "submit").lower() in ("submit", "image") and (
                button.name == "button" or button.get("type")):
            button["type"] = "button"
    for tag in soup.find_all(True):
        for attr in list(tag.attrs):
            low = attr.lower()
            if low.startswith("on") or low in ("ping", "formaction", "manifest", "action", "integrity", "nonce"):
                del tag[attr]
            elif low in ("href", "xlink:href") and tag.name in ("a", "area"):
                tag[attr] = _live_link(tag[attr], base)
                if not tag[attr]:
                    del tag[attr]
            elif low in ("href", "xlink:href", "src") and str(tag.get(attr, "")).strip().lower().startswith("javascript:"):
                del tag[attr]


def _live_link(href: str, base: str) -> str:
    href = (href or "").strip()
    if href.startswith("#") or href.lower().startswith(("mailto:", "tel:")):
        return href
    return absolute(href, base) or ""


def _pictures(soup, base: str, resources: Mapping[str, object], stats: _Stats) -> None:
    for picture in soup.find_all("picture"):
        img = picture.find("img")
        urls = [picture_url(s, base) for s in picture.find_all("source")]
        if img is not None:
            own = picture_url(img, base)
            # As a browser does: the first source it can use, then the img's own picture.
            chosen = next((u for u in [*urls, own] if u and u in resources), own or next(filter(None, urls), None))
            if chosen:
                img["data-lh-src"] = chosen
        for source in picture.find_all("source"):
            source.unwrap()     # (lxml may have nested the img inside a <source>: keep it)
    for img in soup.find_all(["img", "image"]):
        url = img.get("data-lh-src") or (picture_url(img, base) if img.name == "img"
                                          else absolute(img.get("href") or img.get("xlink:href"), base))
        for attr in _LOADING_ATTRS:
            img.attrs.pop(attr, None)
        if img.name == "image":
            img.attrs.pop("xlink:href", None)
        if not url:
            if not str(img.get("src", "")).startswith("data:"):
                img.attrs.pop("src", None)
            continue
        res = resources.get(url)
        img["data-lh-src"] = url
        key = "src" if img.name == "img" else "href"
        if res is not None:
            img[key] = data_uri(res)
        else:
            img.attrs.pop(key, None)
            img["alt"] = img.get("alt") or "[picture not kept]"
        stats.count(url, res is not None)
    for tag in soup.find_all(["video", "audio", "source", "track", "input"]):
        if tag.name == "input" and (tag.get("type") or "").lower() != "image":
            continue
        key = "poster" if tag.name == "video" else "src"
        url = absolute(tag.get(key), base)
        tag.attrs.pop("src", None)
        if tag.name in ("video", "input") and url:
            res = resources.get(url)
            if res is not None:
                tag[key] = data_uri(res)
            else:
                tag.attrs.pop(key, None)
            tag["data-lh-src"] = url
            stats.count(url, res is not None)
    for tag in soup.find_all(background=True):
        url = absolute(tag["background"], base)
        res = resources.get(url) if url else None
        if res is not None:
            tag["background"] = data_uri(res)
        else:
            del tag["background"]


def _styles(soup, base: str, resources: Mapping[str, object], stats: _Stats) -> None:
    for link in soup.find_all("link"):
        rel = {r.lower() for r in (link.get("rel") or [])}
        url = absolute(link.get("href"), base)
        res = resources.get(url) if url else None
        if "stylesheet" in rel:
            if res is None:
                link.decompose()
                continue
            style = soup.new_tag("style", attrs={"media": link["media"]} if link.get("media") else {})
            style["data-lh-href"] = url
            style.string = inline_css(css_text(res), res.final_url, resources)
            link.replace_with(style)
        elif res is not None:
            link["href"] = data_uri(res)
        else:
            link.decompose()
    for style in soup.find_all("style"):
        if not style.get("data-lh-href"):
            style.string = inline_css(style.get_text(), base, resources)
    for tag in soup.find_all(style=True):
        original = tag["style"]
        urls = [absolute(m.group("url"), base) for m in CSS_URL.finditer(original)]
        urls = [u for u in urls if u]
        if not urls:
            continue
        tag["style"] = inline_css(original, base, resources)
        tag["data-lh-bg"] = " ".join(urls)
        for url in urls:
            stats.count(url, url in resources)


def _unhide(soup) -> None:
    """Undo hide-until-script: the main content and its ancestors, and visibility+opacity pairs."""
    main = main_content(soup)
    chain = [main, *main.parents] if main is not None else []
    for tag in chain:
        if getattr(tag, "attrs", None) is not None and tag.get("style"):
            tag["style"] = _HIDDEN.sub("", tag["style"]).strip(" ;")
        if getattr(tag, "attrs", None) is not None:
            tag.attrs.pop("hidden", None)
    for tag in soup.find_all(style=re.compile(r"visibility\s*:\s*hidden", re.I)):
        if re.search(r"opacity\s*:\s*0(?:\.0+)?\s*(?:;|$|!)", tag["style"], re.I):
            tag["style"] = _HIDDEN.sub("", tag["style"]).strip(" ;")


def _head(soup) -> None:
    if soup.html is None:
        soup.append(soup.new_tag("html"))
    head = soup.head
    if head is None:
        head = soup.new_tag("head")
        soup.html.insert(0, head)
    head.insert(0, soup.new_tag("meta", attrs={"charset": "utf-8"}))
    head.insert(1, soup.new_tag("meta", attrs={"http-equiv": "Content-Security-Policy", "content": CSP}))
    head.insert(2, soup.new_tag("meta", attrs={"name": "referrer", "content": "no-referrer"}))
    if not soup.find("link", rel=lambda r: r and "icon" in [x.lower() for x in r]):
        # Without an icon, a copy served over HTTP makes the browser ask for /favicon.ico.
        head.insert(3, soup.new_tag("link", attrs={"rel": "icon", "href": "data:,"}))
    style = soup.new_tag("style", attrs={"data-lh": "visible"})
    style.string = ("#js_content,.rich_media_content{visibility:visible!important;opacity:1!important}"
                    "img[data-lh-src]{max-width:100%}")
    head.append(style)


def _header(soup, url: str, meta: PageMeta, captured: datetime, stats: _Stats) -> None:
    body = soup.body
    if body is None:
        body = soup.new_tag("body")
        soup.html.append(body)
    box = soup.new_tag("div", attrs={"class": "linkhealth-archived", "style": HEADER_STYLE, "lang": "en"})
    rows = [("Archived copy of", url), ("Captured", f"{captured:%Y-%m-%d %H:%M} UTC by linkhealth")]
    if meta.title:
        rows.append(("Title", meta.title))
    if meta.account:
        rows.append(("Account", meta.account))
    if meta.published:
        rows.append(("Published", meta.published))
    if stats.found:
        rows.append(("Pictures", f"{stats.kept} of {stats.found} kept" if stats.kept < stats.found
                     else f"all {stats.found} kept"))
    for label, value in rows:
        line = soup.new_tag("div")
        strong = soup.new_tag("strong")
        strong.string = f"{label}: "
        line.append(strong)
        if label == "Archived copy of":
            link = soup.new_tag("a", attrs={"href": value})
            link.string = value
            line.append(link)
        else:
            line.append(htmllib.unescape(value))
        box.append(line)
    body.insert(0, box)
