"""Generic checks: what holds on any site, before or after its site rule.

Blocked (the site refuses robots: unknown, never dead):
- HTTP 999 (LinkedIn and a few others);
- Cloudflare challenges (``cf-mitigated: challenge``, or the challenge page's markup);
- anti-bot statuses with a recognisable body: 412 (Bilibili's risk control), 400 "browser
  not supported" (X) -- a bare 400 or 412 stays broken;
- a redirect to a verification, captcha, anti-crawl, visitor or login page, recognised by
  the path of any hop or of the final URL, and a verification page recognised by its title.

Soft 404 (the server says 200, the content is gone):
- a deep link redirected to the site's root, or to an error page (404.html, /404/,
  /error..., notfound), after InternetArchiveBot's dead-link checker
  (wikimedia/DeadlinkChecker, src/CheckIfDead.php: "REDIRECT TO ROOT", "REDIRECT TO 404"
  for final URLs containing 404.htm, /404/ or notfound);
- a page whose title says it is not found.

Each check returns a :class:`Finding` (its name as ``generic:...``, the error text and
whether it is a stress sign: an answer to our pace, such as a captcha or a rate limit)
or None. Pure functions over the probe and a page view (body, title, URLs), no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import SplitResult, urlsplit

from .models import Probe, Target

__all__ = ["Finding", "blocked_finding", "soft404_finding", "wall_kind", "url_path"]


@dataclass(frozen=True, slots=True)
class Finding:
    """What a check found: its name ("generic:..." or "rule:marker"), the error text, a stress sign."""

    name: str
    error: str
    stress: bool = False


class PageView(Protocol):
    """What the checks read of a page (classify's lazily parsed page)."""

    body: str
    urls: tuple[str, ...]

    def paths(self) -> tuple[str, ...]: ...     # path (+ "?query") of each of ``urls``

    def title_tag(self) -> str | None: ...


# LinkedIn (and a few others) answer robots with the non-standard status 999.
_BLOCKED_STATUSES = frozenset({999})
# Cloudflare marks challenge responses with "cf-mitigated: challenge"
# (developers.cloudflare.com, "Detect a Challenge Page response"); older challenge
# pages are recognised by their markup, served with 403, 429 or 503.
_CF_STATUSES = frozenset({403, 429, 503})
_CF_MARKERS = ("challenge-platform", "cf_chl_opt", "cf-chl-", "<title>Just a moment...</title>",
               "Attention Required! | Cloudflare")
# Statuses some sites use for "we do not serve robots" instead of 403: Bilibili answers
# 412 when its risk control refuses a client (SocialSisterYi/bilibili-API-collect issue
# #872: {"code": -412, "message": "request was banned"}), X answers 400 to browsers it
# does not support. Without a body saying so they stay broken (a real 400 is a bad URL).
_ANTIBOT_STATUSES = frozenset({400, 412})
_ANTIBOT_BODY = re.compile(
    r"captcha|验证码|人机验证|安全验证|风控|security control|request was banned|请求被拦截"
    r"|访问过于频繁|访问频繁|too many requests|rate limit"
    r"|(?:browser|浏览器)[^<>]{0,40}?(?:not|no longer|不再?)[^<>]{0,20}?(?:supported|支持)"
    r"|unsupported browser|javascript is not available|enable javascript", re.I)
_ANTIBOT_STRESS = re.compile(r"captcha|验证码|频繁|too many requests|rate limit|request was banned|风控"
                             r"|security control", re.I)

# Path segments of pages that stand between a robot and the content. A deep link that
# lands on one was refused, not removed. Verification pages are stress signs (our pace
# tripped them); login and visitor walls are not (they refuse every anonymous client).
# Sources: WeChat /mp/wappoc_appmsgcaptcha and Zhihu /account/unhuman (issue 12 and the
# public crawlers quoting them), Baidu wappass.baidu.com/static/captcha, Weibo's
# passport.weibo.com/visitor/visitor (bindog/bindog.github.com,
# _posts/2014-10-15-set-the-ua-to-bypass-sina-visitor-system.md), Cloudflare
# /cdn-cgi/challenge-platform.
_VERIFY_SEGMENT = re.compile(
    r"captcha|^verif(?:y|ication)(?:[-_]|$)|^security[-_]?(?:check|verify)|^challenge(?:[-_]|$)|^unhuman$"
    r"|^anti[-_]?(?:spider|crawl|bot)|^antispider|^human[-_]?verif", re.I)
_LOGIN_SEGMENT = re.compile(r"^(?:log[-_]?in|sign[-_]?in|signon|sso)(?:\.[a-z]{2,5})?$", re.I)
_VISITOR_SEGMENT = re.compile(r"^visitor(?:\.[a-z]{2,5})?$", re.I)
# Titles of verification pages served in place (no redirect).
_VERIFY_TITLE = re.compile(
    r"^\s*(?:百度安全验证|安全验证|人机验证|验证码|security check|verify you are human|human verification"
    r"|captcha)\s*(?:$|[|\-–—_:])", re.I)

# IABot: a deep link redirected to the site's root is dead.
_INDEX_PATHS = frozenset({"", "/", "/index.html", "/index.htm", "/index.php", "/default.aspx"})
# The final path *is* an error page: its last segment says so (/404, /404.html,
# /notfound.htm, /page-not-found, /error.html, /error_isp.html), a segment is 404
# (DeadlinkChecker's "/404/"), or it is the site's top-level /error page. A slug that
# merely mentions 404 (/questions/1/nginx-returns-404) is an article, and so is a deep
# page named Error (MDN's .../Global_Objects/Error, where .../error redirects).
_NOT_FOUND_SEGMENT = re.compile(
    r"^(?:404|not[-_]?found|page[-_]?not[-_]?found|404[-_]?(?:error|page)|error[-_]?(?:404|page|isp)"
    r"|errorpage)(?:\.[a-z]{2,5})?$|^error\.(?:html?|php|aspx?|jsp)$", re.I)
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


def blocked_finding(probe: Probe, page: PageView) -> Finding | None:
    """The generic blocked check that fires on this probe, or None."""
    code = probe.http_status
    if code in _BLOCKED_STATUSES:
        return Finding("generic:999", f"HTTP {code}: the site refuses robots", stress=True)
    if (probe.header("cf-mitigated") or "").strip().lower() == "challenge":
        return Finding("generic:cloudflare", "Cloudflare challenge (cf-mitigated: challenge)", stress=True)
    body = page.body
    if code in _CF_STATUSES and body and any(m in body for m in _CF_MARKERS):
        return Finding("generic:cloudflare", f"Cloudflare challenge page (HTTP {code})", stress=True)
    if code in _ANTIBOT_STATUSES and body:
        head = body[:65536]
        found = _ANTIBOT_BODY.search(head)
        if found is not None:
            return Finding("generic:anti-bot-status", f"HTTP {code} anti-bot answer ({found.group(0)})",
                           stress=bool(_ANTIBOT_STRESS.search(head)))
    return _wall(probe, page)


def _wall(probe: Probe, page: PageView) -> Finding | None:
    """A redirect to a verification, visitor or login page; or such a page served in place."""
    if probe.redirects:
        start = url_path(probe.url)
        for url, path in zip(page.urls, page.paths()):
            if path == start:
                continue
            kind = wall_kind(path)
            if kind is not None and wall_kind(start) is None:
                return Finding(f"generic:{kind}-redirect", f"redirected to a {kind} page ({url[:200]})",
                               stress=kind == "verification")
    title = page.title_tag() if page.body else None
    if title and _VERIFY_TITLE.search(title):
        return Finding("generic:verification-page", f"verification page: {title[:120]}", stress=True)
    return None


def wall_kind(path: str) -> str | None:
    """"verification", "visitor" or "login" when a URL path is such a page, else None."""
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    if any(_VERIFY_SEGMENT.search(s) for s in segments):
        return "verification"
    if any(_VISITOR_SEGMENT.match(s) for s in segments):
        return "visitor"
    if any(_LOGIN_SEGMENT.match(s) for s in segments):
        return "login"
    return None


def soft404_finding(target: Target, probe: Probe, page: PageView) -> Finding | None:
    """The generic soft-404 check that fires on a 2xx page, or None."""
    start = probe.url or target.url
    final = probe.final_url or start
    if final != start:
        try:
            before, after = urlsplit(start), urlsplit(final)
        except ValueError:
            before = after = None
        if before is not None and _same_site(before.hostname, after.hostname):
            if _is_deep(before) and after.path in _INDEX_PATHS and not after.query:
                return Finding("generic:redirect-to-root", f"deep link redirected to the site root ({final})")
        if before is not None and _is_not_found_path(after.path) and not _is_not_found_path(before.path):
            return Finding("generic:not-found-redirect", f"redirected to a not-found page ({final[:200]})")
    title = page.title_tag() or probe.title
    if title and _NOT_FOUND_TITLE.search(title):
        return Finding("generic:not-found-title", f"page title says not found: {title[:120]}")
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
    """True when the path names an error page: its last segment, or any segment "404"."""
    segments = [segment for segment in path.split("/") if segment]
    if not segments:
        return False
    return bool(_NOT_FOUND_SEGMENT.match(segments[-1])) or "404" in segments[:-1] or segments[0] == "error"


def url_path(url: str | None) -> str:
    """The path of a URL with its "?query" (empty for a URL that does not parse)."""
    fast = _simple_path(url or "")
    if fast is not None:
        return fast
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return ""
    return parts.path + ("?" + parts.query if parts.query else "")


def _simple_path(url: str) -> str | None:
    """``url_path`` without urlsplit for the common "scheme://host/path?query#frag" URL
    (classify asks for several paths per page; urlsplit was a sixth of its time)."""
    _, sep, rest = url.partition("://")
    if not sep:
        return None
    host, slash, tail = rest.partition("/")
    if "?" in host or "#" in host:
        return None
    if not slash:
        return ""
    path, _, query = tail.split("#", 1)[0].partition("?")
    return "/" + path + ("?" + query if query else "")
