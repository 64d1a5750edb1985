"""Extract: every reference in a note's text, with 1-based line and column.

What is found (kind):
  link       ``[text](http://...)``              image     ``![alt](http://...)``
  reference  ``[label]: http://...``              autolink  ``<http://...>``
  html       ``href/src/srcset/poster/data`` of ``a img source video audio iframe
             object embed track link area``
  bare       a URL in prose, tables, blockquotes, HTML blocks, or in code; also a
             scheme typo (``h1ttps://x``) or a lone ``http://``, which the filter
             marks malformed; and ``www.host/...`` when ``bare_www`` is on
  relative   a link, image or HTML attribute without a scheme (``/images/x.png``)

What is not: fragment-only links (``#top``), protocol-relative ``//host/x`` in prose,
e-mail addresses without ``mailto:``, the text of a link (only its target counts),
HTML comments, URL templates (``http://%(host)s``, ``https://<USER>@github.com``, ``.../{id}``,
``{{ site.url }}``), and anything inside kramdown math ``$$...$$``.

Block structure (fenced and indented code, blockquotes, list items, HTML blocks,
kramdown ``$$`` math blocks) follows CommonMark 0.31 (https://spec.commonmark.org/).
It is computed by a line scanner of our own rather than by markdown-it-py because
markdown-it's block pass alone costs ~2.3 s CPU on the 8.5 MB reference corpus
(the budget is 1 s for the whole extraction); tests/test_corpus.py and
tests/test_extract.py check that the scanner agrees with markdown-it-py on which
URLs sit in code and on every link target.

Bare URL boundaries follow how a careful reader reads mixed Chinese/English prose:
see :func:`_cut_bare`.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterator

from .models import Kind, Reference

__all__ = ["extract", "KNOWN_SCHEMES"]

#: Schemes accepted as real (not typos). Anything else followed by ``://`` is
#: reported as bare and judged by the filter (checker.targets).
KNOWN_SCHEMES = frozenset({
    "http", "https", "ftp", "ftps", "sftp", "git", "ssh", "svn", "file", "chrome",
    "chrome-extension", "about", "hkp", "hkps", "ws", "wss", "rtsp", "rtmp", "rtp", "udp",
    "tcp", "smb", "nfs", "s3", "gs", "hdfs", "irc", "ircs", "telnet", "ldap", "ldaps",
    "redis", "mongodb", "mysql", "postgres", "postgresql", "jdbc", "amqp", "mqtt", "rsync",
    "magnet", "ed2k", "thunder", "vscode", "steam", "news", "nntp", "gopher", "feed",
    "webcal", "content", "android-app", "intent", "res", "jar", "resource", "view-source",
    "edge", "opera", "moz-extension", "ipfs", "ipns", "docker", "oci", "zotero",
})

_FILL = "\x01"   # replaces masked regions; never part of a URL
_BLOCK_CHARS = frozenset(" \t>-*+`~<$#=_0123456789[|")   # may start a block or need care

# ---- block structure -----------------------------------------------------------------

_LIST = re.compile(r"([-+*]|\d{1,9}[.)])(?=[ \t]|$)")
_HR = re.compile(r"(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")
_FENCE = re.compile(r"(`{3,}|~{3,})(.*)$")
_ATX = re.compile(r"#{1,6}(?:[ \t]|$)")
_SETEXT = re.compile(r"(?:=+|-+)[ \t]*$")
_HTML1 = re.compile(r"<(script|pre|style|textarea)(?:[ \t>]|$)", re.I)
_HTML6 = re.compile(
    r"</?(address|article|aside|base|basefont|blockquote|body|caption|center|col|colgroup|dd|"
    r"details|dialog|dir|div|dl|dt|fieldset|figcaption|figure|footer|form|frame|frameset|h1|"
    r"h2|h3|h4|h5|h6|head|header|hr|html|iframe|legend|li|link|main|menu|menuitem|nav|"
    r"noframes|ol|optgroup|option|p|param|search|section|summary|table|tbody|td|tfoot|th|"
    r"thead|title|tr|track|ul)(?:[ \t>]|/>|$)", re.I)
_HTML7 = re.compile(r"(?:<[A-Za-z][A-Za-z0-9-]*(?:\s+[A-Za-z_:][\w.:-]*(?:\s*=\s*(?:[^\s\"'=<>`]+|'[^']*'|\"[^\"]*\"))?)*\s*/?>|</[A-Za-z][A-Za-z0-9-]*\s*>)[ \t]*$")


@dataclass(slots=True)
class _Block:
    """A run of lines handled together: 'para' (markdown inline), 'html' or 'code'."""

    kind: str
    lines: list[tuple[int, int, str]]   # (1-based line number, content start col, content)


def _expand_indent(line: str, pos: int, col: int) -> tuple[int, int]:
    """Skip spaces and tabs from ``pos``; return (new pos, visual column) (tab stop 4)."""
    n = len(line)
    while pos < n:
        ch = line[pos]
        if ch == " ":
            col += 1
        elif ch == "\t":
            col += 4 - col % 4
        else:
            break
        pos += 1
    return pos, col


def _strip_quotes(line: str, limit: int | None = None) -> tuple[int, int]:
    """Strip blockquote markers (``>``) from the start; return (content pos, depth)."""
    pos, depth = 0, 0
    while limit is None or depth < limit:
        p, col = _expand_indent(line, pos, 0)
        if col > 3 or p >= len(line) or line[p] != ">":
            break
        pos = p + 1
        if pos < len(line) and line[pos] in " \t":
            pos += 1
        depth += 1
    return pos, depth


def _interrupts(rest: str) -> bool:
    """True when ``rest`` (indent <= 3) starts a block that ends a paragraph."""
    ch = rest[:1]
    if ch not in _BLOCK_CHARS:
        return False
    if ch in "`~":
        return bool(_FENCE.match(rest)) and not (ch == "`" and "`" in _FENCE.match(rest).group(2))
    if ch == "#":
        return bool(_ATX.match(rest))
    if ch == ">":
        return True
    if ch == "<":
        return bool(_HTML1.match(rest) or _HTML6.match(rest) or rest.startswith(("<!--", "<?", "<![")))
    if ch == "$":
        return rest.startswith("$$")
    if _HR.match(rest):
        return True
    m = _LIST.match(rest)
    if m:
        # An empty item, or an ordered item not starting at 1, cannot interrupt (CommonMark 5.2).
        marker = m.group(1)
        if not rest[m.end():].strip():
            return False
        return not marker[0].isdigit() or marker[:-1] == "1"
    return False


def _candidate_lines(text: str, www: bool) -> set[int]:
    """1-based numbers of the lines that may hold a reference (one C-speed regex pass)."""
    lines: set[int] = set()
    pattern = _CANDIDATE_WWW if www else _CANDIDATE
    last, lineno = 0, 1
    for m in pattern.finditer(text):
        pos = m.start()
        lineno += text.count("\n", last, pos)
        last = pos
        lines.add(lineno)
    return lines


def _blocks(text: str, wanted: set[int]) -> Iterator[_Block]:
    """Split a note into paragraph, HTML and code blocks (CommonMark block structure).

    Only blocks with a line in ``wanted`` are yielded: the others cannot hold a
    reference, and skipping them keeps the whole corpus within its CPU budget.
    """
    para: list[tuple[int, int, str]] = []
    para_depth = 0
    lists: list[tuple[int, int]] = []          # open list items: (quote depth, content column)
    fence: tuple[str, int, int, int] | None = None   # (char, length, container column, depth)
    html_end: str | None = None                # end marker of an open HTML block; "" = blank line
    html: list[tuple[int, int, str]] = []
    math = False
    lineno = 0
    for raw in text.split("\n"):
        lineno += 1
        line = raw
        # Fast path: a line that starts with an ordinary character, outside any open
        # construct, is paragraph text (CommonMark: only the characters in _BLOCK_CHARS
        # can start another block at column 0).
        if fence is None and html_end is None and not math and line and line[0] not in _BLOCK_CHARS:
            if para and para_depth == 0 and not lists:
                para.append((lineno, 0, line))
                continue
            if not lists and not para:
                para.append((lineno, 0, line))
                para_depth = 0
                continue
        if fence is not None:
            fchar, flen, fcol, fdepth = fence
            pos, depth = _strip_quotes(line, fdepth) if fdepth else (0, 0)
            p, col = _expand_indent(line, pos, 0)
            blank = p >= len(line)
            if depth < fdepth or (not blank and col < fcol):
                fence = None          # the container ended, and the fence with it
            else:
                rest = line[p:]
                if col - fcol <= 3 and rest.startswith(fchar * flen) and not rest.strip().strip(fchar):
                    fence = None
                elif lineno in wanted:
                    yield _Block("code", [(lineno, pos, line[pos:])])
                continue
        if html_end is not None:
            if html_end == "" and not line.strip():
                if _any(html, wanted):
                    yield _Block("html", html)
                html, html_end = [], None
                continue
            html.append((lineno, 0, line))
            if html_end and html_end in line.lower():
                if _any(html, wanted):
                    yield _Block("html", html)
                html, html_end = [], None
            continue
        if math:
            # kramdown math block: ends at a line ending in $$, or (so that a stray
            # "$$" cannot hide the rest of the note) at a blank line.
            if not line.strip() or line.rstrip().endswith("$$"):
                math = False
            continue
        pos, depth = _strip_quotes(line) if ">" in line[:8] else (0, 0)
        p, col = _expand_indent(line, pos, 0)
        rest = line[p:]
        if not rest:                       # blank line
            if para:
                if _any(para, wanted):
                    yield _Block("para", para)
                para = []
            continue
        if para:
            interrupt = col - _base(lists, depth) <= 3 and _interrupts(rest)
            if not interrupt and depth <= para_depth:
                para.append((lineno, p, rest))      # continuation (lazy when depth is less)
                continue
            if _any(para, wanted):
                yield _Block("para", para)
            para = []
        while lists and (lists[-1][0] > depth or (lists[-1][0] == depth and col < lists[-1][1])):
            lists.pop()
        # Open new list items (possibly several on one line: "- 1. x").
        while True:
            rel = col - _base(lists, depth)
            if rel >= 4:
                if lineno in wanted:
                    yield _Block("code", [(lineno, p, rest)])
                break
            m = _LIST.match(rest)
            if m and not _HR.match(rest):
                after = m.end()
                q, c2 = _expand_indent(rest, after, col + after)
                if q >= len(rest) or c2 - (col + after) > 4:
                    c2 = col + after + 1
                    q = min(len(rest), after + 1)
                lists.append((depth, c2))
                p, col, rest = p + q, c2, rest[q:]
                if not rest:
                    break
                continue
            fm = _FENCE.match(rest)
            if fm and not (rest[0] == "`" and "`" in fm.group(2)):
                fence = (rest[0], len(fm.group(1)), _base(lists, depth), depth)
                break
            if rest.startswith("$$"):
                math = not (len(rest.rstrip()) > 3 and rest.rstrip().endswith("$$"))
                break
            if rest[0] == "<":
                end = _html_start(rest)
                if end is not None:
                    html = [(lineno, p, rest)]
                    if end and end in rest.lower()[2:]:
                        if _any(html, wanted):
                            yield _Block("html", html)
                        html = []
                    else:
                        html_end = end
                    break
            if _HR.match(rest) or (rest[0] in "=-" and _SETEXT.match(rest)):
                break
            if rest[0] == "#" and _ATX.match(rest):
                if lineno in wanted:
                    yield _Block("para", [(lineno, p, rest)])
                break
            para, para_depth = [(lineno, p, rest)], depth
            break
    if para:
        if _any(para, wanted):
            yield _Block("para", para)
    if html:
        if _any(html, wanted):
            yield _Block("html", html)


def _any(lines: list[tuple[int, int, str]], wanted: set[int]) -> bool:
    """True when one of the lines is in ``wanted``."""
    for entry in lines:
        if entry[0] in wanted:
            return True
    return False


def _base(lists: list[tuple[int, int]], depth: int) -> int:
    """Content column of the innermost open list item at this quote depth (0 if none)."""
    for d, c in reversed(lists):
        if d == depth:
            return c
        if d < depth:
            break
    return 0


def _html_start(rest: str) -> str | None:
    """End marker of the HTML block that ``rest`` starts ("" = a blank line), or None."""
    low = rest.lower()
    m = _HTML1.match(rest)
    if m:
        return f"</{m.group(1).lower()}>"
    if low.startswith("<!--"):
        return "-->"
    if low.startswith("<?"):
        return "?>"
    if low.startswith("<![cdata["):
        return "]]>"
    if low.startswith("<!") and len(low) > 2 and low[2].isalpha():
        return ">"
    if _HTML6.match(rest) or _HTML7.match(rest):
        return ""
    return None


# ---- inline: code spans, HTML, autolinks, links ------------------------------------------

_CANDIDATE = re.compile(r"://|\]\(|\]:|<[A-Za-z]|[Mm][Aa][Ii][Ll][Tt][Oo]:")
_CANDIDATE_WWW = re.compile(r"://|\]\(|\]:|<[A-Za-z]|[Mm][Aa][Ii][Ll][Tt][Oo]:|[Ww][Ww][Ww]\.")
_TICKS = re.compile(r"`+")
_TAG = re.compile(r"<!--.{0,4096}?-->|</?([A-Za-z][A-Za-z0-9-]*)((?:\s[^<>]*)?)>", re.S)
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*)>")
_MATH = re.compile(r"\$\$.{1,4096}?\$\$", re.S)
_ATTR = re.compile(r"""([A-Za-z_:][\w.:-]*)\s*=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+)""")
_URL_ATTRS = frozenset({"href", "src", "srcset", "poster", "data"})
_URL_TAGS = frozenset({"a", "img", "source", "video", "audio", "iframe", "object", "embed",
                       "track", "link", "area", "input", "script", "frame"})
_REFDEF = re.compile(r"[ ]{0,3}\[((?:[^\[\]\\]|\\.){1,999})\]:[ \t]*(?:\n[ \t]*)?(<[^<>\n]*>|\S+)")
_BRACKETS = re.compile(r"[\[\]]")
# CommonMark link destination: <...> or a run without spaces with balanced parentheses
# (one level of nesting covers Matrix_(mathematics)); then an optional title.
_DEST = re.compile(
    r"[ \t]*\n?[ \t]*(<[^<>\n]*>|[^\s()<>\x01]*(?:\([^\s()<>\x01]*\)[^\s()<>\x01]*)*)"
    r"(?:[ \t]*\n?[ \t]*(?:\"[^\"]{0,2000}\"|'[^']{0,2000}'|\([^()]{0,2000}\)))?[ \t]*\n?[ \t]*\)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(slots=True)
class _Para:
    """A block's text joined by newlines, with the map back to note lines and columns."""

    text: str
    starts: list[int]          # offset in text where each line begins
    lines: list[tuple[int, int, str]]

    def where(self, offset: int) -> tuple[int, int]:
        """(line, col), 1-based, of a text offset."""
        i = bisect.bisect_right(self.starts, offset) - 1
        lineno, col0, _ = self.lines[i]
        return lineno, col0 + offset - self.starts[i] + 1


def _join(lines: list[tuple[int, int, str]]) -> _Para:
    starts, off = [], 0
    for _, _, content in lines:
        starts.append(off)
        off += len(content) + 1
    return _Para("\n".join(c for _, _, c in lines), starts, lines)


def _code_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each code span, backticks included (CommonMark 6.1)."""
    runs = [(m.start(), m.end()) for m in _TICKS.finditer(text)]
    if len(runs) < 2:
        return []
    by_len: dict[int, list[int]] = {}
    for i, (s, e) in enumerate(runs):
        by_len.setdefault(e - s, []).append(i)
    spans, i = [], 0
    while i < len(runs):
        s, e = runs[i]
        same = by_len.get(e - s, [])
        k = bisect.bisect_right(same, i)
        if k < len(same):
            j = same[k]
            spans.append((s, runs[j][1]))
            i = j + 1
        else:
            i += 1
    return spans


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each (start, end) span replaced by filler of the same length."""
    if not spans:
        return text
    out, last = [], 0
    for s, e in sorted(spans):
        if s < last:
            s = last
        if e <= s:
            continue
        out.append(text[last:s])
        out.append(_FILL * (e - s))
        last = e
    out.append(text[last:])
    return "".join(out)


def _target_kind(url: str, absolute: Kind) -> Kind | None:
    """``absolute`` for a URL with a scheme, RELATIVE for a path, None for '#x' or ''."""
    if not url or url.startswith("#"):
        return None
    if _SCHEME.match(url) and not re.match(r"^[A-Za-z]:[\\/]", url):   # not C:\path
        return absolute
    if url.startswith("//"):
        return absolute
    if "{{" in url or "{%" in url:       # Liquid template (Jekyll)
        return None
    return Kind.RELATIVE


def _html_refs(para: _Para, text: str, out: list[tuple[int, Kind, str]]) -> list[tuple[int, int]]:
    """Record URL attributes of HTML tags and autolinks; return the spans they cover."""
    spans: list[tuple[int, int]] = []
    for m in _AUTOLINK.finditer(text):
        url = m.group(1)
        if not _is_template(url):
            out.append((m.start(1), Kind.AUTOLINK, url))
        spans.append((m.start(), m.end()))
    for m in _TAG.finditer(text):
        if spans and spans[-1][0] <= m.start() < spans[-1][1]:
            continue
        name = (m.group(1) or "").lower()
        if name in _URL_TAGS and m.group(2):
            base = m.start(2)
            for a in _ATTR.finditer(m.group(2)):
                attr = a.group(1).lower()
                if attr not in _URL_ATTRS:
                    continue
                value, vstart = a.group(2), base + a.start(2)
                if value[:1] in "\"'":
                    value, vstart = value[1:-1], vstart + 1
                for off, url in _attr_urls(attr, value):
                    kind = _target_kind(url, Kind.HTML)
                    if kind is not None and not _is_template(url):
                        out.append((vstart + off, kind, url))
        spans.append((m.start(), m.end()))
    return spans


def _attr_urls(attr: str, value: str) -> Iterator[tuple[int, str]]:
    """(offset, url) in an attribute value; srcset holds 'url descriptor, url ...'."""
    if attr != "srcset":
        lead = len(value) - len(value.lstrip())
        yield lead, value.strip()
        return
    for m in re.finditer(r"[^\s,][^\s]*", value):
        url = m.group(0).rstrip(",")
        if re.fullmatch(r"\d+(?:\.\d+)?[wx]", url):
            continue
        yield m.start(), url


def _links(text: str, out: list[tuple[int, Kind, str]]) -> list[tuple[int, int]]:
    """Record inline links and images; return the spans they cover (text and target)."""
    spans: list[tuple[int, int]] = []
    stack: list[int] = []
    for m in _BRACKETS.finditer(text):
        pos = m.start()
        if pos and text[pos - 1] == "\\":
            continue
        if text[pos] == "[":
            if len(stack) < 10_000:      # deeper nesting is noise; keeps memory bounded
                stack.append(pos)
            continue
        if not stack:
            continue
        opener = stack.pop()
        if text.startswith("(", pos + 1):
            d = _DEST.match(text, pos + 2)
            if d is None:
                continue
            url, ustart = d.group(1), d.start(1)
            if url.startswith("<"):
                url, ustart = url[1:-1], ustart + 1
            image = opener > 0 and text[opener - 1] == "!"
            kind = _target_kind(url, Kind.IMAGE if image else Kind.LINK)
            if kind is not None and not _is_template(url):
                out.append((ustart, kind, url))
            spans.append((opener - 1 if image else opener, d.end()))
            if not image:
                stack.clear()    # links cannot contain links (CommonMark 6.3)
    return spans


def _refdefs(para: _Para, text: str, out: list[tuple[int, Kind, str]]) -> list[tuple[int, int]]:
    """Record reference definitions at the start of a paragraph (CommonMark 4.7)."""
    spans, pos = [], 0
    while True:
        m = _REFDEF.match(text, pos)
        if m is None or (m.end() < len(text) and text[m.end()] not in " \t\n"):
            break
        url, ustart = m.group(2), m.start(2)
        if url.startswith("<"):
            url, ustart = url[1:-1], ustart + 1
        kind = _target_kind(url, Kind.REFERENCE)
        if kind is not None and not _is_template(url):
            out.append((ustart, kind, url))
        nl = text.find("\n", m.end())
        end = len(text) if nl < 0 else nl
        spans.append((m.start(), end))
        if nl < 0:
            break
        pos = nl + 1
    return spans


# ---- bare URLs -----------------------------------------------------------------------------

_BARE = re.compile(r"(?<![A-Za-z])([A-Za-z][A-Za-z0-9+.-]{0,30})://|(?<![A-Za-z0-9])(mailto):(?=[^\s<>])", re.I)
_WWW = re.compile(r"(?<![A-Za-z0-9/@:_-])(?<![A-Za-z]\.)www\.[A-Za-z0-9-]+\.[A-Za-z]", re.I)
# Control characters (C0, DEL, C1) never belong to a URL (RFC 3986 section 2; WHATWG URL
# strips them): a URL ends at one, as at whitespace.
_HARD_END = re.compile(r"[\s<>\"`\x00-\x1f\x7f-\x9f]")
_CJK = re.compile("[\u2014-\u201f\u2026\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f"
                  "\uff00-\uffef\U00020000-\U0003ffff]")
_DELIM = re.compile(r"[/?&=#]")
_TRAIL = ".,;:!?'\"*"
_PLAIN_URL = re.compile(r"(https?://)([!#$%&'()*+,\-./0-9:;=?@A-Z\[\]_a-z~]+)[ \t]*$")
_CLOSERS = {"'": "'", "\u2018": "\u2019", "\u201c": "\u201d", "\u300c": "\u300d", "\u300e": "\u300f"}
_HTML_TAG_NAMES = frozenset({
    "a", "abbr", "b", "br", "blockquote", "code", "dd", "del", "div", "dl", "dt", "em", "font",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "ol", "p", "pre",
    "s", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr",
    "u", "ul", "center", "section", "details", "summary", "mark", "q", "cite", "figure",
    "figcaption", "source", "video", "audio", "iframe", "label", "button", "input", "nobr",
    "wbr", "url", "text", "link", "script", "style", "tt", "var", "samp",
})


def _is_template(url: str) -> bool:
    """True for URL templates, not references: %(x)s, {id}, ${VAR}, {{ liquid }}."""
    return "%(" in url or "{" in url or "}" in url or "$(" in url


def _is_cjk_punct(ch: str) -> bool:
    """Full-width or CJK punctuation (，。（）“” ...), which ends a sentence, not a path.

    ASCII punctuation such as '-' or '.' is ordinary path text (生成模型-生成对抗网络.pdf).
    """
    return ord(ch) > 0x2000 and unicodedata.category(ch)[0] in "PSZ" and bool(_CJK.match(ch))


def _cut_bare(text: str, start: int, body: int, end: int) -> int:
    """End offset of the bare URL that starts at ``start`` (body after ``://``).

    The run up to whitespace or ``< > " `` is cut further where a reader would:
    at CJK text or full-width punctuation glued to it, unless the CJK text is a
    whole path segment (it begins right after ``/ = ? & #`` and continues to a
    ``/``, or runs to the end of the run without sentence punctuation, like
    ``/item/图灵机``); then trailing ``. , ; : ! ? ' " *`` and unbalanced ``) ] ）``
    are dropped.
    """
    opener = text[start - 1] if start else ""
    closer = _CLOSERS.get(opener)
    if closer:
        c = text.find(closer, body, end)
        if c >= 0:
            end = c
    k = body
    host_end = _DELIM.search(text, body, end)
    host_end = host_end.start() if host_end else end
    while True:
        m = _CJK.search(text, k, end)
        if m is None:
            break
        k = m.start()
        if k < host_end or text[k - 1] not in "/?&=#":
            end = k
            break
        d = _DELIM.search(text, k, end)
        if d is not None:
            seg_end = d.start()
            if text[seg_end] != "/" and any(_is_cjk_punct(ch) for ch in text[k:seg_end]):
                end = k
                break
            k = seg_end + 1
            continue
        seg = text[k:end].rstrip(_TRAIL)
        if any(_is_cjk_punct(ch) for ch in seg):
            end = k
        break
    return _trim(text, body, end)


def _trim(text: str, body: int, end: int) -> int:
    """Drop trailing punctuation and unbalanced closing brackets."""
    while end > body:
        ch = text[end - 1]
        if ch in _TRAIL:
            end -= 1
        elif ch in ")]\uff09":
            pair = {")": "(", "]": "[", "\uff09": "\uff08"}[ch]
            seg = text[body:end]
            if seg.count(ch) > seg.count(pair):
                end -= 1
            else:
                break
        else:
            break
    return end


def _bare(text: str, lo: int, hi: int, out: list[tuple[int, Kind, str]], *, www: bool,
          table: bool = False) -> None:
    """Record bare URLs in text[lo:hi] (outside any masked span)."""
    consumed = lo
    hard = -1
    for m in _BARE.finditer(text, lo, hi):
        start = m.start()
        if start < consumed:
            continue
        body = m.end()
        if hard < body:
            h = _HARD_END.search(text, body, hi)
            hard = h.start() if h else hi
        end = hard
        if table:
            bar = text.find("|", body, end)
            end = bar if bar >= 0 else end
        if m.group(2):                       # mailto:
            stop = _trim(text, body, end)
            if stop > body:
                out.append((start, Kind.BARE, text[start:stop]))
                consumed = stop
            continue
        stop = _cut_bare(text, start, body, end)
        url = text[start:stop]
        if _is_template(url) or (end < hi and text[end] == "<" and _placeholder_tag(text, end)
                                 and not text[stop:end].strip(_TRAIL)):
            consumed = max(end, body)
            continue
        if stop == body and body < hi and text[body] in "<%{$[":
            continue                          # https://<USER>@host: a template
        if stop == body and m.group(1).lower() not in ("http", "https"):
            consumed = body                   # "替换为hdfs://形式": a scheme named, no link
            continue
        out.append((start, Kind.BARE, url))
        consumed = max(stop, body)
    if www:
        for m in _WWW.finditer(text, lo, hi):
            start = m.start()
            if any(s <= start < s + len(u) for s, _, u in out[-8:]):
                continue
            h = _HARD_END.search(text, start, hi)
            end = h.start() if h else hi
            stop = _cut_bare(text, start, start, end)
            url = text[start:stop]
            if not _is_template(url):
                out.append((start, Kind.BARE, url))


def _placeholder_tag(text: str, pos: int) -> bool:
    """True when ``<...>`` at ``pos`` is a placeholder like ``<commit-id>``, not HTML."""
    m = re.match(r"</?([A-Za-z][\w-]*)", text[pos:pos + 64])
    return bool(m) and m.group(1).lower() not in _HTML_TAG_NAMES


# ---- per block ----------------------------------------------------------------------------

def _para_refs(block: _Block, www: bool) -> list[tuple[int, int, Kind, str, bool]]:
    """References of a paragraph or heading: markdown inline syntax applies."""
    if len(block.lines) == 1:
        # Fast path for the common note layout: a plain ASCII URL alone on its line.
        lineno, col0, content = block.lines[0]
        m = _PLAIN_URL.match(content)
        if m is not None and "%(" not in content and "](" not in content:
            stop = _trim(content, m.end(1), m.end(2))
            return [(lineno, col0 + 1, Kind.BARE, content[:stop], False)]
    para = _join(block.lines)
    text = para.text
    found: list[tuple[int, Kind, str]] = []
    in_code: list[tuple[int, Kind, str]] = []
    table = text.lstrip().startswith("|")
    if "`" not in text and "<" not in text and "[" not in text and "$" not in text:
        _bare(text, 0, len(text), found, www=www, table=table)
    else:
        spans = _code_spans(text) if "`" in text else []
        for s, e in spans:
            _bare(text, s, e, in_code, www=www)
        masked = _mask(text, spans)
        more: list[tuple[int, int]] = []
        if "$$" in masked:
            more += [(m.start(), m.end()) for m in _MATH.finditer(masked)]
            masked = _mask(masked, more)
        if "<" in masked:
            masked = _mask(masked, _html_refs(para, masked, found))
        if "[" in masked:
            masked = _mask(masked, _refdefs(para, masked, found))
            masked = _mask(masked, _links(masked, found))
        _bare(masked, 0, len(masked), found, www=www, table=table)
    refs = [(off, kind, url, False) for off, kind, url in found]
    refs += [(off, kind, url, True) for off, kind, url in in_code]
    refs.sort(key=lambda r: r[0])
    return [(*para.where(off), kind, url, code) for off, kind, url, code in refs]


def _html_block_refs(block: _Block, www: bool) -> list[tuple[int, int, Kind, str, bool]]:
    """References of an HTML block: tag attributes and URLs in its text, no markdown."""
    para = _join(block.lines)
    text = para.text
    found: list[tuple[int, Kind, str]] = []
    masked = _mask(text, _html_refs(para, text, found))
    _bare(masked, 0, len(masked), found, www=www)
    found.sort(key=lambda r: r[0])
    return [(*para.where(off), kind, url, False) for off, kind, url in found]


def _code_refs(block: _Block, www: bool) -> list[tuple[int, int, Kind, str, bool]]:
    """URLs in a line of a code block (in_code); no markdown or HTML applies."""
    lineno, col0, content = block.lines[0]
    if "://" not in content and not (www and "www." in content):
        return []
    found: list[tuple[int, Kind, str]] = []
    _bare(content, 0, len(content), found, www=www)
    return [(lineno, col0 + off + 1, kind, url, True) for off, kind, url in found]


_HANDLERS = {"para": _para_refs, "html": _html_block_refs, "code": _code_refs}


# Terminal escape sequences (ECMA-48): CSI "ESC [ params final" (also the one-byte C1
# CSI U+009B), OSC "ESC ] ... BEL or ESC \\" (window titles, hyperlinks), and the
# two-byte "ESC x" forms. A note pasted from a terminal carries them; the "m" ending
# "ESC [31m" is not the start of a scheme ("mhttp://").
_ESCAPE = re.compile(r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
                     r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c\n]{0,4096}(?:\x07|\x1b\\|\x9c)?"
                     r"|\x1b[\x20-\x2f]*[\x30-\x7e]?")


def _mask_escapes(text: str) -> str:
    """``text`` with terminal escape sequences replaced by filler (columns unchanged)."""
    return _ESCAPE.sub(lambda m: _FILL * len(m.group()), text)


def extract(text: str, file: str, *, bare_www: bool = False) -> list[Reference]:
    """Every reference in a note's text, in source order (see the module docstring)."""
    refs: list[Reference] = []
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if "\x1b" in text or "\x9b" in text or "\x9d" in text:
        text = _mask_escapes(text)
    for block in _blocks(text, _candidate_lines(text, bare_www)):
        for line, col, kind, url, code in _HANDLERS[block.kind](block, bare_www):
            if _FILL in url:   # a target that lay inside a masked region (e.g. a tag): no URL
                continue
            refs.append(Reference(file, line, col, url, kind, code))
    return refs
