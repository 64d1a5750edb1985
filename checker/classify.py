"""Classify: what a probe means. Probe + site rules -> Verdict (status, error, title, final_url).

Layers, in order (each only refines the one before):
1. a target with ``skip`` set gets its verdict without a probe;
2. the generic HTTP/transport mapping (``checker.probe.transport_status``; a local
   fallback with the same rules is used where that function is missing or says None);
3. the site rule's ``blocked_statuses`` and blocked markers, and the generic blocked
   checks (HTTP 999, Cloudflare challenges);
4. on a 2xx page: the site rule's soft-404 markers, then the generic soft-404 checks
   (IABot's redirect-to-root rule, 404-ish redirect targets and titles).

Pure and cheap: markers are substring tests first; the HTML is parsed (lxml, once)
only when a marker's cheap conditions all hold and it needs a CSS selector.
"""

from __future__ import annotations

import html
import random
import re
import string
from urllib.parse import SplitResult, urlsplit, urlunsplit

import lxml.html
from lxml.etree import ParserError

from .models import Cause, Probe, Status, Target, Verdict
from .rules import Marker, Rule, RuleSet, Selector, TitleSource

try:  # the HTTP engine's generic mapping (checker/probe.py), when it is there
    from .probe import transport_status as _engine_status
except ImportError:  # pragma: no cover - depends on the engine being installed
    _engine_status = None

__all__ = ["classify", "generic_status", "same_page", "random_path_url"]

_GOOD = (Status.OK, Status.REDIRECT)
_TITLE_TAG = re.compile(r"<title\b[^>]*>(.*?)</title\s*>", re.I | re.S)
_JS_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)", re.S)
_SPACE = re.compile(r"\s+")

# Generic checks for every host ------------------------------------------------------
# LinkedIn (and a few others) answer robots with the non-standard status 999.
_BLOCKED_GENERIC = frozenset({999})
# Cloudflare marks challenge responses with "cf-mitigated: challenge"
# (developers.cloudflare.com, "Detect a Challenge Page response"); older challenge
# pages are recognised by their markup, served with 403, 429 or 503.
_CF_STATUSES = frozenset({403, 429, 503})
_CF_MARKERS = ("challenge-platform", "cf_chl_opt", "cf-chl-", "<title>Just a moment...</title>",
               "Attention Required! | Cloudflare")
# IABot: a deep link redirected to the site's root, or to a URL whose path says 404 /
# not found, is dead (InternetArchiveBot's dead-link detection, "soft 404" rules).
_INDEX_PATHS = frozenset({"", "/", "/index.html", "/index.htm", "/index.php", "/default.aspx"})
# The final path *is* a not-found page: its last segment says so (/404, /404.html,
# /notfound, /page-not-found, /error/404). A slug that merely mentions 404
# (/questions/1/nginx-returns-404) is an article, not an error page.
_NOT_FOUND_SEGMENT = re.compile(
    r"^(?:404|not[-_]?found|page[-_]?not[-_]?found|error[-_]?404|404[-_]?(?:error|page))"
    r"(?:\.[a-z]{2,5})?$", re.I)
# A title that says the page is not found: "404", "404 Not Found | site", "Error 404",
# "Page not found", 页面不存在. A title that only mentions 404 ("HTTP 404 - Wikipedia",
# "How to fix nginx 404 errors") or "not found" inside a phrase ("bash: command not
# found") is an article about it, and stays ok.
_NOT_FOUND_TITLE = re.compile(
    r"^\s*(?:error\s*)?404(?:\s*error)?\s*(?:$|[|\-–—:·!.]|not\s+found)"
    r"|^\s*(?:error\s+404|404\s+not\s+found)"
    r"|(?:^|[|\-–—:·(\[]\s*)(?:page\s+|file\s+)?not\s+found\s*(?:$|[|\-–—:·!)\]])"
    r"|页面不存在|页面没有找到|页面找不到|找不到页面|页面未找到|您访问的页面不存在",
    re.I)


def classify(target: Target, probe: Probe, rules: RuleSet) -> Verdict:
    """The verdict for one probe of one target, under the site rules."""
    if target.skip is not None:
        return _skipped(target)
    rule = rules.match(target.url)
    at_risk = bool(rule and rule.at_risk)
    page = _Page(probe)
    status = generic_status(probe)
    error, final_url, decided = probe.error, probe.final_url, None

    if rule is not None and probe.http_status in rule.blocked_statuses:
        status, decided = Status.BLOCKED, f"{rule.name}:blocked_statuses"
        error = error or f"HTTP {probe.http_status}: the site refuses robots (rule {rule.name})"
    generic = _generic_blocked(probe, page)
    if generic is not None:
        status, (decided, error) = Status.BLOCKED, generic
    if rule is not None and probe.http_status is not None and page.body:
        hit = _first_hit(rule, rule.blocked, page)
        if hit is not None:
            status, error, decided = Status.BLOCKED, hit[1], f"{rule.name}:{hit[0].name}"
        elif status in _GOOD:
            hit = _first_hit(rule, rule.soft404, page)
            if hit is not None:
                status, error, final_url = _soft404(hit, page, final_url)
                decided = f"{rule.name}:{hit[0].name}"
    if status in _GOOD and decided is None:
        generic = _generic_soft404(target, probe, page)
        if generic is not None:
            status, (decided, error) = Status.SOFT404, generic
    if status in _GOOD and decided is None:
        error = None
    title = _title(rule, page) if rule is not None and rule.title and page.body else None
    return Verdict(status=status, error=error, title=title or probe.title or page.title_tag(),
                   final_url=final_url, at_risk=at_risk, rule=decided)


def _skipped(target: Target) -> Verdict:
    # A malformed URL or a missing local file is broken; every other skip was a choice.
    if target.skip in (Cause.INVALID_URL, Cause.MISSING_FILE):
        return Verdict(Status.BROKEN, error=target.skip_detail or str(target.skip))
    return Verdict(Status.EXCLUDED, error=target.skip_detail or str(target.skip))


def _soft404(hit: tuple[Marker, str], page: "_Page", final_url: str | None):
    marker, error = hit
    if marker.redirect_js is not None and page.body:
        found = find_js_var(marker.redirect_js, marker.redirect_name, page.body)
        new_url = _js_string(found.group(2)).strip() if found else ""
        if new_url.startswith(("http://", "https://")):
            return Status.REDIRECT, None, new_url
    return Status.SOFT404, error, final_url


# ------------------------------------------------------------------------------------
def generic_status(probe: Probe) -> Status:
    """The status from HTTP and transport facts alone (the engine's mapping, or ours)."""
    if _engine_status is not None:
        status = _engine_status(probe)
        if status is not None:
            return status
    return _fallback_status(probe)


_UNREACHABLE = frozenset({Cause.DNS, Cause.REFUSED, Cause.TLS, Cause.DISCONNECTED})
_TIMEOUTS = frozenset({Cause.CONNECT_TIMEOUT, Cause.READ_TIMEOUT})
_EXCLUDED = frozenset({Cause.PRIVATE_ADDRESS, Cause.EXCLUDED_PATTERN, Cause.EXCLUDED_SCHEME})


def _fallback_status(probe: Probe) -> Status:
    """DESIGN.md's table: 2xx ok (redirect after a 301/308 elsewhere), 401/403/429 blocked."""
    code = probe.http_status
    if probe.cause in _TIMEOUTS:
        return Status.TIMEOUT
    if probe.cause in _UNREACHABLE:
        return Status.UNREACHABLE
    if probe.cause in _EXCLUDED:
        return Status.EXCLUDED
    if code is None or probe.cause in (Cause.TOO_MANY_REDIRECTS, Cause.INVALID_URL, Cause.MISSING_FILE):
        return Status.BROKEN if code is not None or probe.cause is not None else Status.UNREACHABLE
    if 200 <= code < 300:
        moved = probe.final_url and probe.final_url != probe.url
        permanent = any(hop.status in (301, 308) for hop in probe.redirects)
        return Status.REDIRECT if moved and permanent else Status.OK
    if code in (401, 403, 429):
        return Status.BLOCKED
    return Status.BROKEN


def _generic_blocked(probe: Probe, page: "_Page") -> tuple[str, str] | None:
    """(check name, error) when a generic blocked check fires."""
    if probe.http_status in _BLOCKED_GENERIC:
        return "generic:999", f"HTTP {probe.http_status}: the site refuses robots"
    if (probe.header("cf-mitigated") or "").strip().lower() == "challenge":
        return "generic:cloudflare", "Cloudflare challenge (cf-mitigated: challenge)"
    if probe.http_status in _CF_STATUSES and page.body and any(m in page.body for m in _CF_MARKERS):
        return "generic:cloudflare", f"Cloudflare challenge page (HTTP {probe.http_status})"
    return None


def _generic_soft404(target: Target, probe: Probe, page: "_Page") -> tuple[str, str] | None:
    """(check name, error) when a generic soft-404 check fires."""
    start = probe.url or target.url
    final = probe.final_url or start
    if final != start:
        try:
            before, after = urlsplit(start), urlsplit(final)
        except ValueError:
            before = after = None
        if before is not None and _same_site(before.hostname, after.hostname):
            if _is_deep(before) and after.path in _INDEX_PATHS and not after.query:
                return "generic:redirect-to-root", f"deep link redirected to the site root ({final})"
            if _is_not_found_path(after.path) and not _is_not_found_path(before.path):
                return "generic:not-found-redirect", f"redirected to a not-found page ({final})"
    title = page.title_tag() or probe.title
    if title and _NOT_FOUND_TITLE.search(title):
        return "generic:not-found-title", f"page title says not found: {title[:120]}"
    return None


def _is_deep(url: SplitResult) -> bool:
    """A link to something below the home page: a path, or a query on the index."""
    return url.path not in _INDEX_PATHS or bool(url.query)


def _same_site(a: str | None, b: str | None) -> bool:
    """Same host, ignoring a leading ``www.``: a short link that lands on another site's
    home page (bit.ly -> python.org) is a working link, not a dead one."""
    def bare(host: str | None) -> str:
        host = (host or "").lower()
        return host[4:] if host.startswith("www.") else host
    return bare(a) == bare(b)


def _is_not_found_path(path: str) -> bool:
    """True when the path's last segment names a not-found page."""
    segments = [segment for segment in path.split("/") if segment]
    return bool(segments) and bool(_NOT_FOUND_SEGMENT.match(segments[-1]))


# ------------------------------------------------------------------------------------
class _Page:
    """The probe's body, with its <title> and its parsed tree computed once, on demand."""

    __slots__ = ("body", "urls", "status", "_title", "_tree")

    def __init__(self, probe: Probe) -> None:
        self.body = probe.body or ""
        self.status = probe.http_status
        # Where the fetch went: the final URL and every redirect hop (captcha redirects).
        self.urls = tuple(u for u in (probe.final_url, *(hop.url for hop in probe.redirects)) if u)
        self._title: str | None | bool = False
        self._tree = False

    def title_tag(self) -> str | None:
        if self._title is False:
            found = _TITLE_TAG.search(self.body) if "<title" in self.body or "<TITLE" in self.body else None
            self._title = _clean(found.group(1)) if found else None
        return self._title

    def tree(self):
        if self._tree is False:
            try:
                # Bytes in, so that an XML encoding declaration in the text does not upset lxml.
                parser = lxml.html.HTMLParser(encoding="utf-8")
                self._tree = lxml.html.document_fromstring(self.body.encode("utf-8", "replace"),
                                                           parser=parser)
            except (ParserError, ValueError):
                self._tree = None
        return self._tree

    def has(self, selector: Selector) -> bool:
        if selector.prefilter is not None and selector.prefilter not in self.body:
            return False
        tree = self.tree()
        return tree is not None and bool(selector.compiled(tree))

    def text_of(self, selector: Selector) -> str | None:
        if selector.prefilter is not None and selector.prefilter not in self.body:
            return None
        tree = self.tree()
        found = selector.compiled(tree) if tree is not None else []
        return _clean(found[0].text_content()) if found else None


def _first_hit(rule: Rule, markers: tuple[Marker, ...], page: _Page) -> tuple[Marker, str] | None:
    """The first marker whose conditions hold, with its error text; none on a live page."""
    for marker in markers:
        matched = _match(marker, page)
        if matched is not None:
            # A marker never fires on a page that has the live-article marker.
            if any(page.has(sel) for sel in rule.live):
                return None
            return marker, marker.error.replace("{match}", matched)
    return None


def _match(marker: Marker, page: _Page) -> str | None:
    """The matched text when every condition of the marker holds, else None (cheap tests first)."""
    body = page.body
    if marker.statuses and page.status not in marker.statuses:
        return None
    if marker.max_body is not None and len(body) > marker.max_body:
        return None
    matched = marker.name
    if marker.url_path is not None and not _url_path_hit(marker, page):
        return None
    if marker.text:
        matched = next((t for t in marker.text if t in body), None)
        if matched is None:
            return None
    if marker.text_all:
        if not all(t in body for t in marker.text_all):
            return None
        matched = matched if marker.text else " ".join(marker.text_all)
    if marker.regex is not None:
        found = marker.regex.search(body)
        if found is None:
            return None
        matched = matched if (marker.text or marker.text_all) else found.group(0)
    if marker.title or marker.title_is is not None:
        title = page.title_tag() or ""
        if marker.title and not any(t in title for t in marker.title):
            return None
        if marker.title_is is not None and title.strip() not in marker.title_is:
            return None
    if not all(page.has(sel) for sel in marker.selectors):
        return None
    if any(page.has(sel) for sel in marker.not_selectors):
        return None
    return matched


def _url_path_hit(marker: Marker, page: _Page) -> bool:
    return any(marker.url_path.search(_path(u)) for u in page.urls)


def _path(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return parts.path + ("?" + parts.query if parts.query else "")


def _title(rule: Rule, page: _Page) -> str | None:
    """The first non-empty title from the rule's sources, in order."""
    for source in rule.title:
        value = _title_from(source, page)
        if value:
            return value
    return None


def _title_from(source: TitleSource, page: _Page) -> str | None:
    body = page.body
    if source.kind == "title":
        return page.title_tag()
    if source.kind == "css":
        return page.text_of(source.selector)
    if source.name not in body:
        return None
    if source.kind == "js":
        found = find_js_var(source.pattern, source.name, body)
        return _clean(_js_string(found.group(2))) if found else None
    found = source.pattern.search(body)
    if found is None:
        return None
    content = re.search(r"\bcontent\s*=\s*(\"([^\"]*)\"|'([^']*)')", found.group(0), re.I)
    return _clean(content.group(2) if content.group(2) is not None else content.group(3)) if content else None


def find_js_var(pattern: re.Pattern, name: str, body: str) -> re.Match | None:
    """The first ``name = "string"`` assignment in the body (found by str.find, then matched)."""
    pos = body.find(name)
    while pos >= 0:
        before = body[pos - 1] if pos else " "
        if not (before.isalnum() or before in "_$"):
            found = pattern.match(body, pos)
            if found is not None:
                return found
        pos = body.find(name, pos + 1)
    return None


def _js_string(text: str) -> str:
    """Undo JS string escapes (WeChat writes ``\\x26amp;``), then HTML entities."""
    def unescape(m: re.Match) -> str:
        esc = m.group(1)
        if esc[0] in "xu" and len(esc) > 1:
            return chr(int(esc[1:], 16))
        return {"n": "\n", "t": "\t", "r": ""}.get(esc, esc)
    return html.unescape(_JS_ESCAPE.sub(unescape, text))


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = _SPACE.sub(" ", html.unescape(text)).strip()
    return text or None


# ------------------------------------------------------------------------------------
def same_page(a: Probe, b: Probe) -> bool:
    """Whether two probes show the same page (a link vs. a random path on its host: soft 404)."""
    if a.http_status != b.http_status:
        return False
    if (a.body or "") == "" or (b.body or "") == "":
        return (a.body or "") == (b.body or "") and a.title == b.title and _path(a.final_url or a.url) == _path(
            b.final_url or b.url)
    if _clean(a.title) != _clean(b.title):
        return False
    # Pages that differ only in the echoed path, numbers (timestamps, request ids) or
    # whitespace are the same template: compare their word sets.
    ta, tb = _words(a), _words(b)
    if not ta and not tb:
        return True
    return len(ta & tb) / len(ta | tb) >= 0.9


def _words(probe: Probe) -> set[str]:
    words = set(re.findall(r"[^\W\d_]{2,}", probe.body or ""))
    for url in (probe.url, probe.final_url or ""):
        words -= set(re.findall(r"[^\W\d_]{2,}", _path(url)))
    return words


def random_path_url(url: str, rng: random.Random) -> str:
    """A URL on the same host with a random path that should not exist (for ``same_page``)."""
    parts = urlsplit(url)
    token = "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(20))
    return urlunsplit((parts.scheme, parts.netloc, f"/{token}/{token[:8]}.html", "", ""))
