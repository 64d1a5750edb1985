"""Page bodies: which content types are HTML, how to decode them, what their title is.

Decoding follows the HTML standard's encoding sniffing, as a browser would read the
page (https://html.spec.whatwg.org/#determining-the-character-encoding): a byte-order
mark first, then the Content-Type charset, then a ``<meta>`` charset, each only when it
is a label of the WHATWG Encoding Standard (checker.charsets: ``utf-7`` is none, and
ISO-2022-KR and friends decode to U+FFFD). Chinese pages often declare GBK or GB2312, or
nothing at all; both labels are decoded with GB18030, their superset. Undeclared bodies
are tried as UTF-8 first, then detected with charset-normalizer.
"""

from __future__ import annotations

import codecs
import html as htmllib
import re
import threading

import lxml.html
from lxml import etree

from .charsets import REPLACEMENT, decode_replacement, detect_encoding, python_codec, sniff_bom, \
    whatwg_encoding

__all__ = ["is_html", "is_json", "charset_from_content_type", "decode_body", "extract_title", "plain_markup_at"]

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_CT_CHARSET_RE = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)
_MAX_TITLE = 500
_HEAD_END = re.compile(r"</head\s*>|<body[\s>]", re.I)
_TITLE_TAG = re.compile(r"<title(?=[\s/>])[^>]*>(.*?)</title\s*>", re.I | re.S)
#: Elements whose text is not markup: a "<title>" inside one (a script's string, a
#: comment) is not the page's title, so a regex cannot be trusted past an open one.
_RAW_TEXT = ("script", "style", "noscript", "template", "textarea", "xmp", "svg", "math")


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


def decode_body(raw: bytes, content_type: str | None = None, *, truncated: bool = False) -> str:
    """Decode an HTML body: BOM, declared charset (header, then <meta>), UTF-8, detection.

    ``truncated`` says the bytes were cut at the byte limit, so a multi-byte
    character may be split at the end; that tail is dropped instead of failing.
    """
    bom = sniff_bom(raw)
    if bom is not None:
        encoding, skip = bom
        return _decode(raw[skip:], python_codec(encoding), truncated, errors="replace")
    encoding = whatwg_encoding(charset_from_content_type(content_type)) or _meta_encoding(raw)
    if encoding == REPLACEMENT:
        return decode_replacement(raw)
    if encoding is not None:
        return _decode(raw, python_codec(encoding), truncated, errors="replace")
    try:
        return _decode(raw, "utf-8", truncated, errors="strict")
    except UnicodeDecodeError:
        pass
    return _decode(raw, _detect(raw), truncated, errors="replace")


def _meta_encoding(raw: bytes) -> str | None:
    match = _CHARSET_RE.search(raw[:4096])
    encoding = whatwg_encoding(match.group(1).decode("ascii", "ignore")) if match else None
    # HTML's prescan: a <meta> found by reading the bytes as ASCII cannot be in UTF-16,
    # and x-user-defined there means windows-1252 (HTML, "prescan a byte stream").
    if encoding in ("UTF-16BE", "UTF-16LE"):
        return "UTF-8"
    if encoding == "x-user-defined":
        return "windows-1252"
    return encoding


def _decode(raw: bytes, codec: str, truncated: bool, *, errors: str) -> str:
    if not truncated:
        return raw.decode(codec, errors)
    decoder = codecs.getincrementaldecoder(codec)(errors=errors)
    # final=False keeps an incomplete trailing character out instead of raising.
    return decoder.decode(raw, final=False)


def _detect(raw: bytes) -> str:
    # Undecided bodies fall back to GB18030, the most common undeclared charset here.
    return detect_encoding(raw) or "gb18030"


def extract_title(html: str) -> str | None:
    """The page title: <title> text, else <meta property="og:title">; whitespace collapsed."""
    if not html:
        return None
    # Only the head is parsed: titles live there, and parsing 256 KiB per URL in the
    # event loop would make the engine CPU-bound.
    end = _HEAD_END.search(html)
    head = html[: end.start()] if end else html[:65536]
    title = _title_by_regex(head)
    if title is False:
        title = _title_with_lxml(head) if head.strip() else None
    if title is None and end is not None:
        title = _title_with_lxml(html[:65536])   # <title> misplaced in the body
    return title


def _title_by_regex(head: str) -> str | None | bool:
    """The first ``<title>``'s text where a regex finds what the parser would; False when
    the parser must decide (no title, an empty one, markup inside it, or a place the
    parser may read otherwise: see :func:`plain_markup_at`). On a small head, after 10 ms
    idle as in a paced audit (bench/bench_cold.py): lxml 189 us, the regex 58 us."""
    found = _TITLE_TAG.search(head)
    if found is None or "<" in found.group(1) or not plain_markup_at(head, found.start()):
        return False
    # lxml decodes the entities once and _clean once more: the same here.
    return _clean(htmllib.unescape(found.group(1))) or False


def plain_markup_at(html: str, start: int) -> bool:
    """Whether the tag at ``start`` is one an HTML parser would see as a tag: not inside a
    comment or another ``<!``-declaration, an element whose text is not markup (script,
    style...), or another tag's attribute (judged from the last tag before it: closed,
    with its quotes paired). When unsure it says False, and the caller parses."""
    before = html[:start].lower()
    if before.count("<!") != before.count("<!--") + before.count("<!doctype"):
        return False
    if before.rfind("<!--") > before.rfind("-->"):
        return False
    for name in _RAW_TEXT:
        opened = before.rfind("<" + name)
        if opened >= 0 and opened > before.rfind("</" + name):
            return False
    last = before.rfind("<")
    if last >= 0:
        tag = before[last:]
        if ">" not in tag or tag.count('"') % 2 or tag.count("'") % 2:
            return False
    return True


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


_local = threading.local()


def _parser() -> lxml.html.HTMLParser:
    # One per thread: a parser is reusable but not thread-safe, and costly to build.
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = lxml.html.HTMLParser(recover=True, no_network=True, remove_comments=True)
    return parser


def _clean(text: str) -> str | None:
    text = " ".join(htmllib.unescape(text).split())
    return text[:_MAX_TITLE] or None
