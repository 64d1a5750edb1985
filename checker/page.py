"""Page bodies: which content types are HTML, how to decode them, what their title is.

Chinese pages often declare GBK or GB2312, or nothing at all; both labels are decoded
with GB18030, their superset (the WHATWG Encoding Standard maps "gb2312" and "gbk" to
the same decoder for this reason). Undeclared bodies are tried as UTF-8 first, then
detected with charset-normalizer.
"""

from __future__ import annotations

import codecs
import html as htmllib
import re

import lxml.html
from lxml import etree

__all__ = ["is_html", "is_json", "charset_from_content_type", "decode_body", "extract_title"]

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_CT_CHARSET_RE = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)
# WHATWG Encoding Standard: these labels all mean the GBK decoder; GB18030 decodes all of them.
_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030",
            "csgb2312": "gb18030", "chinese": "gb18030", "iso-ir-58": "gb18030",
            "iso-8859-1": "cp1252", "latin1": "cp1252", "ascii": "cp1252", "us-ascii": "cp1252"}
_MAX_TITLE = 500
# Text codecs that cannot decode a web page's bytes as sent (they need a BOM or are not
# byte encodings of a document): declared by a hostile or broken server, they are ignored.
_NOT_FOR_HTML = frozenset({"idna", "punycode", "utf-16", "utf-32", "unicode-escape",
                           "raw-unicode-escape", "undefined", "mbcs", "oem"})
_HEAD_END = re.compile(r"</head\s*>|<body[\s>]", re.I)


def is_html(content_type: str | None) -> bool:
    """True for HTML content types (and for a missing one: many servers omit it)."""
    if not content_type:
        return True
    return content_type.split(";", 1)[0].strip().lower() in _HTML_TYPES


def is_json(content_type: str | None) -> bool:
    """True for JSON content types (``application/json``, ``application/problem+json``)."""
    if not content_type:
        return False
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def charset_from_content_type(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type header, lower-cased, or None."""
    if not content_type:
        return None
    match = _CT_CHARSET_RE.search(content_type)
    return match.group(1).lower() if match else None


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().lower()
    label = _ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
    except LookupError:
        return None
    # A server may name any codec (base64, rot13, zlib, idna...): only text encodings
    # decode HTML; anything else falls back to detection (WHATWG Encoding: unknown label).
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_FOR_HTML:
        return None
    return info.name


def decode_body(raw: bytes, content_type: str | None = None, *, truncated: bool = False) -> str:
    """Decode an HTML body: BOM, declared charset (header, then <meta>), UTF-8, detection.

    ``truncated`` says the bytes were cut at the byte limit, so a multi-byte
    character may be split at the end; that tail is dropped instead of failing.
    """
    if raw.startswith(codecs.BOM_UTF8):
        return raw[3:].decode("utf-8", "replace")
    declared = _codec(charset_from_content_type(content_type))
    if declared is None:
        match = _CHARSET_RE.search(raw[:4096])
        declared = _codec(match.group(1).decode("ascii", "ignore")) if match else None
    if declared is not None:
        try:
            return _decode(raw, declared, truncated, errors="replace")
        except (UnicodeError, ValueError, TypeError, LookupError):
            pass   # a codec that fails on these bytes anyway: detect instead
    try:
        return _decode(raw, "utf-8", truncated, errors="strict")
    except UnicodeDecodeError:
        pass
    return _decode(raw, _detect(raw), truncated, errors="replace")


def _decode(raw: bytes, codec: str, truncated: bool, *, errors: str) -> str:
    decoder = codecs.getincrementaldecoder(codec)(errors=errors)
    # final=False keeps an incomplete trailing character out instead of raising.
    return decoder.decode(raw, final=not truncated)


def _detect(raw: bytes) -> str:
    # GBK pages without a declaration are common in these notes, and statistical
    # detection misreads short Chinese texts (often as Big5 or a Cyrillic code page).
    # So GB18030 goes first, kept only when what it yields is mostly CJK.
    sample = raw[:65536]
    try:
        text = _decode(sample, "gb18030", True, errors="strict")
    except UnicodeDecodeError:
        text = ""
    non_ascii = [ch for ch in text if ord(ch) > 127]
    if non_ascii and sum(_is_cjk(ch) for ch in non_ascii) >= 0.8 * len(non_ascii):
        return "gb18030"
    from charset_normalizer import from_bytes  # imported lazily: rarely needed, slow to import

    best = from_bytes(raw[:65536], cp_isolation=None).best()
    codec = _codec(best.encoding) if best is not None else None
    return codec or "gb18030"


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return 0x4E00 <= code <= 0x9FFF or 0x3000 <= code <= 0x303F or 0xFF00 <= code <= 0xFFEF


def extract_title(html: str) -> str | None:
    """The page title: <title> text, else <meta property="og:title">; whitespace collapsed."""
    if not html:
        return None
    # Only the head is parsed: titles live there, and parsing 256 KiB per URL in the
    # event loop would make the engine CPU-bound.
    end = _HEAD_END.search(html)
    head = html[: end.start()] if end else html[:65536]
    title = _title_with_lxml(head) if head.strip() else None
    if title is None and end is not None:
        title = _title_with_lxml(html[:65536])   # <title> misplaced in the body
    return title


def _title_with_lxml(fragment: str) -> str | None:
    try:
        doc = lxml.html.document_fromstring(fragment, parser=_parser())
    except (etree.ParserError, ValueError):
        return None
    for element in doc.iter("title"):
        text = _clean(element.text_content())
        if text:
            return text
    for element in doc.iter("meta"):
        prop = (element.get("property") or element.get("name") or "").lower()
        if prop == "og:title":
            text = _clean(element.get("content") or "")
            if text:
                return text
    return None


def _parser() -> lxml.html.HTMLParser:
    return lxml.html.HTMLParser(recover=True, no_network=True, remove_comments=True)


def _clean(text: str) -> str | None:
    text = " ".join(htmllib.unescape(text).split())
    return text[:_MAX_TITLE] or None
