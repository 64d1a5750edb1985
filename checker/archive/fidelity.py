"""Is the copy as good as the page? Measured on the written file, not on what was meant (pure).

Text: the characters a reader sees in the copy's main content (elements hidden by an
inline style or ``hidden`` do not count, so a body left invisible reads as empty)
against the characters of the live page's main content (everything its scripts would
show). Pictures: those the page shows (marked ``data-lh-src``/``data-lh-bg`` by the
copy) against those drawn from a data: URI in the copy. Bytes: the copy and the WARC.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

from .base import Fidelity
from .pagemeta import main_content
from .resources import CSS_URL

__all__ = ["measure", "visible_chars", "live_chars"]


_SKIP = ("script", "style", "noscript", "template", "head", "title")
_HIDDEN = re.compile(r"(?:^|;)\s*(?:visibility\s*:\s*hidden|display\s*:\s*none|opacity\s*:\s*0(?:\.0+)?\s*(?:;|$|!))", re.I)


def _chars(text: str) -> int:
    return len("".join(text.split()))


def live_chars(soup) -> int:
    """Characters of the live page's main content (whitespace not counted)."""
    main = main_content(soup)
    return sum(_chars(s) for s in main.find_all(string=True) if not _in_skipped(s, main, hidden=False))


def visible_chars(soup) -> int:
    """Characters of the copy's main content a reader can see (whitespace not counted)."""
    main = main_content(soup)
    if main is None or _hidden(main) or any(_hidden(p) for p in main.parents if hasattr(p, "attrs")):
        return 0
    return sum(_chars(s) for s in main.find_all(string=True) if not _in_skipped(s, main, hidden=True))


def _hidden(tag) -> bool:
    attrs = getattr(tag, "attrs", None) or {}
    return "hidden" in attrs or bool(_HIDDEN.search(attrs.get("style", "") or ""))


def _in_skipped(node, stop, hidden: bool) -> bool:
    for parent in node.parents:
        if parent is stop:
            return False
        if parent.name in _SKIP or (hidden and _hidden(parent)) or "linkhealth-archived" in (parent.get("class") or []):
            return True
    return False


def measure(live_soup, copy_html: str, warc_bytes: int) -> Fidelity:
    """The fidelity figures of a written copy against the live page."""
    copy = BeautifulSoup(copy_html, "lxml")
    found = kept = 0
    for tag in copy.find_all(attrs={"data-lh-src": True}):
        found += 1
        value = tag.get("src") or tag.get("poster") or tag.get("href") or ""
        kept += value.startswith("data:") and value != "data:,"
    for tag in copy.find_all(attrs={"data-lh-bg": True}):
        wanted = len(tag["data-lh-bg"].split())
        urls = [m.group("url") for m in CSS_URL.finditer(tag.get("style", ""))]
        found += wanted
        kept += min(wanted, sum(u.startswith("data:") and u != "data:," for u in urls))
    return Fidelity(text_chars=visible_chars(copy), live_text_chars=live_chars(live_soup),
                    pictures_kept=kept, pictures_found=found,
                    copy_bytes=len(copy_html.encode("utf-8")), warc_bytes=warc_bytes)
