"""Classify: what a probe means. Probe + site rules -> Verdict (status, error, title, final_url).

Layers, in order (each only refines the one before):
1. a target with ``skip`` set gets its verdict without a probe;
2. the generic HTTP/transport mapping (``checker.probe.transport_status``; a local
   fallback with the same rules is used where that function is missing or says None);
3. blocked: the site rule's ``blocked_statuses``, the generic blocked checks
   (checker.generic: 999, Cloudflare, anti-bot statuses, verification/login/visitor
   walls), then the site rule's blocked markers (the most specific one decides);
4. on a 2xx page: the site rule's soft-404 markers, then the generic soft-404 checks
   (IABot's redirect-to-root rule, error-page redirects, not-found titles);
5. on a broken (4xx/5xx) page: a soft-404 marker whose ``statuses`` list that status
   names the site's own error page in the error text; the status stays broken.

Precedence: a live marker of the site rule (``live`` selectors, ``live_text``) beats
every marker and generic soft-404 check; the verdict then says so ("rule:live") and
names the marker it beat. The verdict's ``rule`` names whatever decided, and its error
text ends with it in brackets, so that the report (which shows the error) says which
marker decided.

Pure and cheap: markers are substring tests first; the HTML is parsed (lxml, once)
only when a marker's cheap conditions all hold and it needs a CSS selector.
"""

from __future__ import annotations

import html
import random
import re
import string
from urllib.parse import urlsplit, urlunsplit

import lxml.html
from lxml.etree import ParserError

from .generic import Finding, blocked_finding, soft404_finding, url_path as _path
from .models import Cause, Probe, Status, Target, Verdict
from .page import plain_markup_at
from .rules import Marker, Rule, RuleSet, Selector, TitleSource

try:  # the HTTP engine's generic mapping (checker/probe.py), when it is there
    from .probe import transport_status as _engine_status
except ImportError:  # pragma: no cover - depends on the engine being installed
    _engine_status = None

__all__ = ["classify", "explain", "generic_status", "stress_sign", "blocked_by", "same_page", "text_word_count",
           "random_path_url", "rule_for"]

_GOOD = (Status.OK, Status.REDIRECT)
_TITLE_TAG = re.compile(r"<title\b[^>]*>(.*?)</title\s*>", re.I | re.S)
_JS_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)", re.S)
_SPACE = re.compile(r"\s+")
# HTTP statuses that answer our pace itself (RFC 6585 429; 503 with Retry-After, RFC 9110 10.2.3).
_PACE_STATUSES = frozenset({429})


def classify(target: Target, probe: Probe, rules: RuleSet) -> Verdict:
    """The verdict for one probe of one target, under the site rules."""
    if target.skip is not None:
        return _skipped(target)
    page = _Page(probe)
    rule = rule_for(target, page.body, rules)
    at_risk = bool(rule and rule.at_risk)
    status = generic_status(probe)
    final_url = probe.final_url
    found = _blocked(rule, probe, page)
    if found is not None:
        status = Status.BLOCKED
    elif status in _GOOD:
        found, status, final_url = _gone(target, probe, rule, page, status, final_url)
    elif status is Status.BROKEN and rule is not None and page.body:
        found = _named_error_page(rule, page)
    if found is not None:
        error = f"{found.error} [{found.name}]"
    else:
        error = None if status in _GOOD else probe.error
    title = _title(rule, page) if rule is not None and rule.title and page.body else None
    return Verdict(status=status, error=error, title=title or probe.title or page.title_tag(),
                   final_url=final_url, at_risk=at_risk, rule=found.name if found else None)


def stress_sign(target: Target, probe: Probe, rules: RuleSet) -> str | None:
    """The name of what says "you are going too fast" in this answer, else None.

    A verification or captcha page, a rate-limit page or JSON code (a site rule's blocked
    marker with ``stress``, or a generic check such as a captcha redirect), HTTP 429, or
    503 with Retry-After. Not a stress sign: a dead page, a login or visitor wall, a
    plain 401/403 (they refuse every robot whatever the pace). Cheap: no parsing unless a
    marker needs a CSS selector.
    """
    if target.skip is not None:
        return None
    found = blocked_by(target, probe, rules)
    if found is not None and found.stress:
        return found.name
    code = probe.http_status
    if code in _PACE_STATUSES or (code == 503 and probe.header("retry-after")):
        return f"http:{code}"
    return None


def blocked_by(target: Target, probe: Probe, rules: RuleSet) -> Finding | None:
    """What makes this answer ``blocked`` (a rule's marker or a generic check), or None."""
    if target.skip is not None:
        return None
    page = _Page(probe)
    return _blocked(rule_for(target, page.body, rules), probe, page)


def rule_for(target: Target, body: str | None, rules: RuleSet) -> Rule | None:
    """The host rule of the URL, else the platform-software rule the page's generator names."""
    rule = rules.match(target.url)
    return rule if rule is not None or not body else rules.match_page(body)


def _blocked(rule: Rule | None, probe: Probe, page: "_Page") -> Finding | None:
    """The blocked layer: the rule's statuses, the generic checks, the rule's blocked markers."""
    found = blocked_finding(probe, page)
    if rule is not None and probe.http_status in rule.blocked_statuses:
        # The site's own status wins over the generic checks (it is the more specific
        # knowledge); a generic finding on the same page still says whether it is stress.
        found = Finding(f"{rule.name}:blocked_statuses",
                        probe.error or f"HTTP {probe.http_status}: the site refuses robots (rule {rule.name})",
                        stress=bool(found and found.stress))
    if rule is not None and probe.http_status is not None and page.body:
        hit = _first_hit(rule.blocked, page)
        if hit is not None:
            marker, text = hit
            live = _live_marker(rule, page)
            if live is None:
                return Finding(f"{rule.name}:{marker.name}", text, stress=marker.stress)
    return found


def _gone(target: Target, probe: Probe, rule: Rule | None, page: "_Page", status: Status,
          final_url: str | None) -> tuple[Finding | None, Status, str | None]:
    """The soft-404 layer on a 2xx page: the rule's markers, then the generic checks; live wins."""
    if rule is not None and page.body:
        hit = _first_hit(rule.soft404, page)
        if hit is not None:
            live = _live_marker(rule, page)
            if live is not None:
                return _live_wins(rule, live, f"{rule.name}:{hit[0].name}", hit[1]), status, final_url
            return _soft404(rule, hit, page, final_url)
    found = soft404_finding(target, probe, page)
    if found is None:
        return None, status, final_url
    live = _live_marker(rule, page) if rule is not None and page.body else None
    if live is not None:
        return _live_wins(rule, live, found.name, found.error), status, final_url
    return found, Status.SOFT404, final_url


def _named_error_page(rule: Rule, page: "_Page") -> Finding | None:
    """A broken page (4xx/5xx) that one of the rule's soft-404 markers names: it stays broken.

    Only markers whose ``statuses`` list the page's error status take part (a marker
    without that guard is about 2xx pages). The verdict then says which dead form the
    site served, e.g. GitHub Pages' "no site here" (the whole site is gone) rather than
    a bare HTTP 404.
    """
    named = tuple(m for m in rule.soft404 if page.status in m.statuses)
    hit = _first_hit(named, page) if named else None
    return Finding(f"{rule.name}:{hit[0].name}", f"HTTP {page.status}: {hit[1]}") if hit else None


def _live_wins(rule: Rule, live: str, beaten: str, text: str) -> Finding:
    """The finding of a live page that also matched a dead marker: the live marker decided."""
    return Finding(f"{rule.name}:live", f"live page ({live}) although {beaten} matched ({text[:80]})")


def explain(target: Target, probe: Probe, rules: RuleSet) -> list[tuple[str, str, str | None]]:
    """Every check that could decide this page, in order: (name, kind, matched text or None).

    For ``linkhealth rules test``: the site rule's live markers, blocked and soft-404
    markers (each tried on its own, ignoring precedence), then the generic checks.
    """
    page = _Page(probe)
    rule = rule_for(target, page.body, rules)
    out: list[tuple[str, str, str | None]] = []
    if rule is not None:
        for text in rule.live_text:
            out.append((f"{rule.name}:live {text}", "live", text if text in page.body else None))
        for selector in rule.live:
            out.append((f"{rule.name}:live {selector.css}", "live", selector.css if page.has(selector) else None))
        if rule.blocked_statuses:
            hit = probe.http_status in rule.blocked_statuses
            out.append((f"{rule.name}:blocked_statuses", "blocked", f"HTTP {probe.http_status}" if hit else None))
        for marker in rule.blocked + rule.soft404:
            out.append((f"{rule.name}:{marker.name}", marker.kind, _match(marker, page)))
    blocked = blocked_finding(probe, page)
    out.append(("generic blocked checks", "blocked", f"{blocked.name}: {blocked.error}" if blocked else None))
    gone = soft404_finding(target, probe, page)
    out.append(("generic soft-404 checks", "soft404", f"{gone.name}: {gone.error}" if gone else None))
    return out


def _skipped(target: Target) -> Verdict:
    # A malformed URL or a missing local file is broken; every other skip was a choice.
    if target.skip in (Cause.INVALID_URL, Cause.MISSING_FILE):
        return Verdict(Status.BROKEN, error=target.skip_detail or str(target.skip))
    return Verdict(Status.EXCLUDED, error=target.skip_detail or str(target.skip))


def _soft404(rule: Rule, hit: tuple[Marker, str], page: "_Page",
             final_url: str | None) -> tuple[Finding, Status, str | None]:
    marker, error = hit
    name = f"{rule.name}:{marker.name}"
    if marker.redirect_js is not None and page.body:
        found = find_js_var(marker.redirect_js, marker.redirect_name, page.body)
        new_url = _js_string(found.group(2)).strip() if found else ""
        if new_url.startswith(("http://", "https://")):
            return Finding(name, f"moved: {error}; the page names its new address"), Status.REDIRECT, new_url
    return Finding(name, error), Status.SOFT404, final_url


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


# ------------------------------------------------------------------------------------
class _Page:
    """The probe's body, with its <title> and its parsed tree computed once, on demand."""

    __slots__ = ("body", "urls", "status", "_title", "_tree", "_paths")

    def __init__(self, probe: Probe) -> None:
        self.body = probe.body or ""
        self.status = probe.http_status
        # Where the fetch went: the final URL and every redirect hop (captcha redirects).
        self.urls = tuple(u for u in (probe.final_url, *(hop.url for hop in probe.redirects)) if u)
        self._title: str | None | bool = False
        self._tree = False
        self._paths: tuple[str, ...] | None = None

    def paths(self) -> tuple[str, ...]:
        if self._paths is None:
            self._paths = tuple(_path(u) for u in self.urls)
        return self._paths

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
        if selector.id_tag is not None and self._tree is False:
            # A bare #id: a tag carrying it, where a parser would see a tag, decides
            # without parsing (a live WeChat article: its #js_content). Else parse.
            found = selector.id_tag.search(self.body)
            if found is not None and plain_markup_at(self.body, found.start()):
                return True
        tree = self.tree()
        return tree is not None and bool(selector.compiled(tree))

    def text_of(self, selector: Selector) -> str | None:
        if selector.prefilter is not None and selector.prefilter not in self.body:
            return None
        tree = self.tree()
        found = selector.compiled(tree) if tree is not None else []
        return _clean(found[0].text_content()) if found else None


def _first_hit(markers: tuple[Marker, ...], page: _Page) -> tuple[Marker, str] | None:
    """The first marker whose conditions hold, with its error text (live markers not considered)."""
    for marker in markers:
        matched = _match(marker, page)
        if matched is not None:
            return marker, marker.error.replace("{match}", matched)
    return None


def _live_marker(rule: Rule, page: _Page) -> str | None:
    """The rule's first live marker present on the page (a text, then a selector), or None."""
    body = page.body
    for text in rule.live_text:
        if text in body:
            return text
    for selector in rule.live:
        if page.has(selector):
            return selector.css
    return None


def _match(marker: Marker, page: _Page) -> str | None:
    """The matched text when every condition of the marker holds, else None.

    Cheapest and most selective first: status and length guards, the URL, the title
    (one search near the top of the page), the selectors' substring prefilters; only
    then the body scans (``text`` may list a dozen messages) and, last, HTML parsing.
    A live article fails at the title or the prefilter and is never scanned or parsed.
    """
    body = page.body
    if marker.statuses and page.status not in marker.statuses:
        return None
    if marker.max_body is not None and len(body) > marker.max_body:
        return None
    matched = marker.name
    if marker.url_path is not None and not _url_path_hit(marker, page):
        return None
    if marker.title or marker.title_is is not None:
        title = page.title_tag() or ""
        if marker.title and not any(t in title for t in marker.title):
            return None
        if marker.title_is is not None and title.strip() not in marker.title_is:
            return None
    if any(sel.prefilter is not None and sel.prefilter not in body for sel in marker.selectors):
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
    if not all(page.has(sel) for sel in marker.selectors):
        return None
    if any(page.has(sel) for sel in marker.not_selectors):
        return None
    return matched


def _url_path_hit(marker: Marker, page: _Page) -> bool:
    return any(marker.url_path.search(path) for path in page.paths())


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


_INVISIBLE = re.compile(r"<(script|style|noscript|template)\b.*?</\1\s*>|<!--.*?-->", re.I | re.S)
_TAG = re.compile(r"<[^>]*>")


def text_word_count(probe: Probe) -> int:
    """How many distinct words a reader sees on the page (no markup, scripts or noscript text).

    A JavaScript shell has next to none, whatever its markup; a page of text has many.
    """
    text = _TAG.sub(" ", _INVISIBLE.sub(" ", probe.body or ""))
    return len(set(re.findall(r"[^\W\d_]{2,}", html.unescape(text))))


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
