"""Resources as data: URIs, and CSS with every url() and @import inlined (pure).

What cannot be inlined becomes ``url("data:,")``: valid CSS, an empty resource, and no
request when the copy is opened.
"""

from __future__ import annotations

import base64
import re
from typing import Mapping

from .resources import CSS_URL, absolute

__all__ = ["mime_of", "data_uri", "css_text", "inline_css", "MISSING"]

#: What an url() that could not be kept becomes: valid CSS, an empty resource, no request.
MISSING = 'url("data:,")'
_IMPORT_STMT = re.compile(r"""@import\s+(?:url\(\s*)?(['"]?)([^'")\s;]+)\1\s*\)?\s*([^;]*);?""", re.I)


def mime_of(res) -> str:
    """The MIME type of a fetched resource: sniffed for pictures, else its Content-Type."""
    head = res.body[:16]
    for magic, mime in ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
                        (b"wOF2", "font/woff2"), (b"wOFF", "font/woff")):
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF" and res.body[8:12] == b"WEBP":
        return "image/webp"
    declared = res.header("Content-Type").split(";")[0].strip().lower()
    if declared:
        return declared
    return "image/svg+xml" if b"<svg" in res.body[:512] else "application/octet-stream"


def data_uri(res) -> str:
    """A fetched resource as a data: URI."""
    return f"data:{mime_of(res)};base64,{base64.b64encode(res.body).decode('ascii')}"


def css_text(res) -> str:
    """A fetched stylesheet as text (its declared charset, else UTF-8)."""
    charset = re.search(r"charset=([\w-]+)", res.header("Content-Type"), re.I)
    try:
        return res.body.decode(charset.group(1) if charset else "utf-8", "replace")
    except LookupError:
        return res.body.decode("utf-8", "replace")


def inline_css(text: str, base: str, resources: Mapping[str, object], depth: int = 0) -> str:
    """CSS with ``@import`` inlined and every ``url()`` a data: URI (or MISSING)."""
    def imported(match: re.Match) -> str:
        url = absolute(match.group(2), base)
        res = resources.get(url) if url else None
        if res is None or depth >= 3:
            return ""
        inner = inline_css(css_text(res), res.final_url, resources, depth + 1)
        media = match.group(3).strip()
        return f"@media {media} {{\n{inner}\n}}\n" if media else inner + "\n"

    def url(match: re.Match) -> str:
        raw = match.group("url")
        if raw.strip().startswith("data:"):
            return match.group(0)
        target = absolute(raw, base)
        res = resources.get(target) if target else None
        if raw.strip().startswith("#"):
            return match.group(0)      # a fragment (SVG filter/marker in the same document)
        return f'url("{data_uri(res)}")' if res is not None else MISSING

    return CSS_URL.sub(url, _IMPORT_STMT.sub(imported, text))
