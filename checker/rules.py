"""Site rules: which hosts are at risk, and how their pages say "gone" or "blocked".

Rules come from TOML files. The built-in defaults (``checker/data/rules.toml``, the
single source of truth, shipped as package data) are read first unless
``health.builtin_rules = false``; then each file of ``health.rules_files`` in order.
A later rule with the same ``name`` replaces the earlier one (``enabled = false``
removes it). Everything is compiled once here (regexes, CSS selectors) so that
classifying a page costs substring tests in the common case.

File format (see ``config/rules.toml`` for the documented example)::

    [[rule]]
    name = "wechat"                 # required, unique
    hosts = ["mp.weixin.qq.com"]    # required; a host also matches its subdomains
    # generator = ["WordPress"]     # instead of hosts: a platform-software rule (see below)
    path = "^/s"                    # optional regex searched in the path (+ ?query)
    at_risk = true
    live = ["#js_content"]          # selectors of a live page: no marker fires when present
    live_text = ["picture_page_info_list"]  # substrings of a live page (same effect)
    title = ["js:msg_title", "meta:og:title", "css:#activity-name", "title"]
    blocked_statuses = [403]        # HTTP statuses meaning "refused", not "broken"
    headers = { Referer = "https://example.com/" }
    per_host = 2                    # concurrency override for these hosts
    interval = "1s"                 # minimum interval between requests to one host
    start_per_host = 1              # where the learned pace starts (checker.pace): window
    start_interval = "1s"           # and interval; it then moves within per_host/interval
    compare_random_path = false     # the random-sibling probe for these hosts (default: health.sibling_probe)
    source = "https://..."          # where the page forms come from (shown by `linkhealth rules`)
    [[rule.soft404]]                # markers; also [[rule.blocked]]
    text = ["deleted"]              # any of these in the body (the match is the error text)
    ...                             # see Marker below

Precedence: a live marker (``live``, ``live_text``) beats every soft404 and blocked
marker of its rule; the verdict then names the live marker and the marker it beat.
Unknown keys are errors, so that a misspelt key never silently does nothing; new keys
(politeness, say) are added to ``_RULE_KEYS`` and to ``Rule``.

A platform-software rule has ``generator`` instead of ``hosts``: it holds on any host
whose page declares that software in ``<meta name="generator" content="...">``
(a substring of the content, e.g. "WordPress", "Discuz!"), and is tried only when no
host rule matches the URL. It is known only once the page is fetched, so the keys that
act before (``path``, ``at_risk``, ``headers``, ``per_host``, ``interval``,
``compare_random_path``) are errors on it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

from lxml.cssselect import CSSSelector
from cssselect import SelectorError

from .errors import ConfigError
from .models import HostPolicy
from .settings import HealthSettings, parse_duration

__all__ = ["Selector", "Marker", "TitleSource", "Rule", "RuleSet", "load_rules", "parse_rules",
           "BUILTIN_RULES"]

#: Package resource holding the default rules.
BUILTIN_RULES = "data/rules.toml"

_RULE_KEYS = {
    "name", "hosts", "path", "at_risk", "live", "live_text", "title", "blocked_statuses", "headers",
    "per_host", "interval", "compare_random_path", "soft404", "blocked", "source", "enabled", "generator",
    "start_per_host", "start_interval",
}
# Keys that act before a page is fetched: meaningless on a rule keyed by the page's generator.
_HOST_ONLY_KEYS = ("path", "at_risk", "headers", "per_host", "interval", "compare_random_path",
                   "start_per_host", "start_interval")
_MARKER_KEYS = {
    "name", "text", "text_all", "regex", "title", "title_is", "selectors", "not_selectors",
    "url_path", "statuses", "max_body", "error", "redirect_js", "source", "stress",
}
_CONDITIONS = _MARKER_KEYS - {"name", "error", "redirect_js", "source", "max_body", "statuses", "stress"}
_NAME_TOKEN = re.compile(r"[#.]([A-Za-z0-9_-]+)")
# Matched with .match() where the name is found by str.find (see classify.find_js_var):
# a regex search would scan a long article position by position.
_JS_VAR = r"{name}\s*=\s*(['\"])((?:\\.|(?!\1).)*)\1"
# <meta name="generator" content="..."> near the top of a page (it lives in <head>).
_GENERATOR_META = re.compile(r"<meta\b[^>]*?\bname\s*=\s*[\"']?generator[\"'\s/>][^>]*>", re.I)
_CONTENT_ATTR = re.compile(r"\bcontent\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+))", re.I)
_HEAD_CHARS = 32768
_BARE_ID = re.compile(r"#([A-Za-z_][\w-]*)")


@dataclass(frozen=True, slots=True)
class Selector:
    """A CSS selector compiled once, with a substring that must be in the HTML for it to match."""

    css: str
    prefilter: str | None        # an id or class name from the selector; None: always parse
    compiled: CSSSelector = field(compare=False, repr=False)
    #: For a bare ``#id`` selector: a tag with that id, found without parsing (the caller
    #: still parses when the tag may not be markup: checker.page.plain_markup_at).
    id_tag: re.Pattern | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Marker:
    """A set of conditions (all must hold) meaning "gone" (soft404) or "blocked".

    Conditions: ``text`` any substring of the body; ``text_all`` every substring;
    ``regex`` searched in the body; ``title`` any substring of the title;
    ``title_is`` the stripped title equals one of these; ``selectors`` all present;
    ``not_selectors`` none present; ``url_path`` regex searched in the path of the
    final URL or of any redirect hop. Guards: ``statuses`` (HTTP status in this set),
    ``max_body`` (body no longer than this many characters, so that an article merely
    quoting the phrase does not count). ``error`` is the error text (``{match}`` is the
    matched text, the default); ``redirect_js`` names a JS variable holding the page's
    new URL, which turns the verdict into a redirect to it. ``stress`` (blocked markers,
    default true) says the answer is a verification, captcha or rate-limit page, a sign
    that our pace is too fast (a login or visitor wall is not).
    """

    name: str
    kind: str
    text: tuple[str, ...] = ()
    text_all: tuple[str, ...] = ()
    regex: re.Pattern | None = None
    title: tuple[str, ...] = ()
    title_is: tuple[str, ...] | None = None
    selectors: tuple[Selector, ...] = ()
    not_selectors: tuple[Selector, ...] = ()
    url_path: re.Pattern | None = None
    statuses: frozenset[int] = frozenset()
    max_body: int | None = None
    error: str = "{match}"
    redirect_js: re.Pattern | None = None
    redirect_name: str = ""      # the variable named by redirect_js
    stress: bool = False         # a blocked answer caused by our pace (captcha, rate limit)
    cite: str = ""               # the marker's own public source, when it has one


@dataclass(frozen=True, slots=True)
class TitleSource:
    """One place to read a title from: ``js`` variable, ``meta`` property, ``css`` selector, ``title``."""

    kind: str
    name: str
    pattern: re.Pattern | None = None
    selector: Selector | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled site rule."""

    name: str
    hosts: tuple[str, ...]
    path: re.Pattern | None = None
    at_risk: bool = False
    live: tuple[Selector, ...] = ()
    live_text: tuple[str, ...] = ()
    title: tuple[TitleSource, ...] = ()
    blocked_statuses: frozenset[int] = frozenset()
    headers: tuple[tuple[str, str], ...] = ()
    per_host: int | None = None
    interval: float | None = None
    start_per_host: int | None = None
    start_interval: float | None = None
    compare_random_path: bool | None = None   # None: health.sibling_probe decides
    blocked: tuple[Marker, ...] = ()
    soft404: tuple[Marker, ...] = ()
    source: str = ""     # the file the rule came from
    cite: str = ""       # the rule's ``source`` key: where the page forms it encodes come from
    generator: tuple[str, ...] = ()   # a platform-software rule: substrings of the page's generator

    def specificity(self, host_len: int) -> tuple[int, int, int]:
        """Sort key: longer host match, then a path pattern, then a longer pattern."""
        return (host_len, self.path is not None, len(self.path.pattern) if self.path else 0)


class RuleSet:
    """Compiled rules indexed by host; ``match`` finds the most specific rule for a URL."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._by_host: dict[str, list[Rule]] = {}
        self._seen: dict[str, list[tuple[int, Rule]]] = {}   # host -> candidates (a run has ~2,000 hosts)
        self.page_rules: tuple[Rule, ...] = tuple(r for r in self.rules if r.generator)
        for rule in self.rules:
            for host in rule.hosts:
                self._by_host.setdefault(host, []).append(rule)

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, name: str) -> Rule | None:
        """The rule with this name, or None."""
        return next((r for r in self.rules if r.name == name), None)

    def _candidates(self, host: str) -> list[tuple[int, Rule]]:
        found = self._seen.get(host)
        if found is None:
            found = self._seen[host] = self._find_candidates(host)
        return found

    def _find_candidates(self, host: str) -> list[tuple[int, Rule]]:
        host = host.lower().rstrip(".")
        out: list[tuple[int, Rule]] = []
        labels = host.split(".")
        for i in range(len(labels)):
            suffix = ".".join(labels[i:])
            for rule in self._by_host.get(suffix, ()):
                out.append((len(labels) - i, rule))
        return out

    def match(self, url: str) -> Rule | None:
        """The most specific rule whose host (or a parent domain) and path pattern match."""
        host = _simple_host(url)
        if host is None:
            try:
                host = urlsplit(url).hostname or ""
            except ValueError:
                return None
        best: tuple[tuple[int, int, int], Rule] | None = None
        path: str | None = None
        for host_len, rule in self._candidates(host):
            if rule.path is not None:
                if path is None:
                    parts = urlsplit(url)
                    path = parts.path + ("?" + parts.query if parts.query else "")
                if not rule.path.search(path):
                    continue
            key = rule.specificity(host_len)
            if best is None or key > best[0]:
                best = (key, rule)
        return best[1] if best else None

    def match_page(self, body: str) -> Rule | None:
        """The first platform-software rule whose generator the page declares, or None."""
        if not self.page_rules:
            return None
        generator = page_generator(body)
        if generator is None:
            return None
        return next((r for r in self.page_rules if any(g in generator for g in r.generator)), None)

    def at_risk(self, url: str) -> bool:
        """Whether the URL's pages tend to vanish (the matching rule says so)."""
        rule = self.match(url)
        return bool(rule and rule.at_risk)

    def host_policy(self, host: str) -> HostPolicy:
        """Per-host concurrency, interval and extra headers from the closest rule that sets them.

        Politeness is per host, so a rule with a path pattern counts too; at equal
        host depth a rule without a path pattern is preferred.
        """
        ranked = sorted(self._candidates(host), key=lambda pair: (pair[0], pair[1].path is None),
                        reverse=True)
        for _, rule in ranked:
            if (rule.per_host is not None or rule.interval is not None or rule.headers
                    or rule.start_per_host is not None or rule.start_interval is not None):
                return HostPolicy(per_host=rule.per_host, interval=rule.interval, headers=rule.headers,
                                  start_per_host=rule.start_per_host, start_interval=rule.start_interval)
        return HostPolicy()


def page_generator(body: str) -> str | None:
    """The content of the page's ``<meta name="generator">`` (searched in its first 32 KiB), or None."""
    if body.find("enerator", 0, _HEAD_CHARS) < 0:      # the cheap test: most pages have none
        return None
    meta = _GENERATOR_META.search(body, 0, _HEAD_CHARS)
    content = _CONTENT_ATTR.search(meta.group(0)) if meta else None
    return next((v for v in content.groups() if v is not None), None) if content else None


def _simple_host(url: str) -> str | None:
    """The lower-cased host of a plain "scheme://host[:port]/..." URL without urlsplit
    (classify matches a rule for every page); None for anything unusual."""
    _, sep, rest = url.partition("://")
    if not sep:
        return None
    netloc = rest.partition("/")[0]
    if any(c in netloc for c in "?#@[\\"):
        return None
    return netloc.partition(":")[0].lower()


def load_rules(settings: HealthSettings) -> RuleSet:
    """Built-in rules (unless ``builtin_rules`` is false), then each ``rules_files`` file in order."""
    merged: dict[str, Rule | None] = {}
    if settings.builtin_rules:
        text = resources.files("checker").joinpath(BUILTIN_RULES).read_text(encoding="utf-8")
        _merge(merged, parse_rules(text, source=f"checker/{BUILTIN_RULES}"))
    for name in settings.rules_files:
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError("rules file not found", source=str(path), key="health.rules_files") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", source=str(path)) from None
        _merge(merged, parse_rules(text, source=str(path)))
    return RuleSet(rule for rule in merged.values() if rule is not None)


def _merge(merged: dict[str, Rule | None], rules: list[tuple[Rule, bool]]) -> None:
    for rule, enabled in rules:
        merged.pop(rule.name, None)       # re-insert: a replaced rule takes the later position
        merged[rule.name] = rule if enabled else None


def parse_rules(text: str, *, source: str) -> list[tuple[Rule, bool]]:
    """Parse and compile the rules of one TOML text: (rule, enabled) pairs, in file order."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise ConfigError(f"TOML syntax error: {exc}", source=source,
                          line=int(match.group(1)) if match else None) from None
    unknown = set(data) - {"rule"}
    if unknown:
        raise ConfigError(f"unknown top-level key {sorted(unknown)[0]!r} (only [[rule]] tables)",
                          source=source, key=sorted(unknown)[0])
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise ConfigError("'rule' must be an array of tables: [[rule]]", source=source, key="rule")
    return [_Builder(text, source, i, raw).build() for i, raw in enumerate(raw_rules)]


class _Builder:
    """Validates and compiles one [[rule]] table; errors name the file, rule, key and line."""

    def __init__(self, text: str, source: str, index: int, raw: dict[str, Any]) -> None:
        self.text, self.source, self.index, self.raw = text, source, index, raw
        self.name = raw.get("name") if isinstance(raw.get("name"), str) else f"#{index + 1}"

    def fail(self, message: str, key: str, marker: tuple[str, int] | None = None) -> ConfigError:
        """A ConfigError for this rule and key, with the line where the key is written."""
        where = f"rule {self.name!r}" + (f" [[rule.{marker[0]}]] #{marker[1] + 1}" if marker else "")
        return ConfigError(f"{where}: {key!r}: {message}", source=self.source,
                           line=_find_line(self.text, self.index, key, marker), key=key)

    def build(self) -> tuple[Rule, bool]:
        raw = self.raw
        for key in raw:
            if key not in _RULE_KEYS:
                raise self.fail(f"unknown key; known: {', '.join(sorted(_RULE_KEYS))}", key)
        if not isinstance(raw.get("name"), str) or not raw["name"]:
            raise self.fail("every rule needs a name", "name")
        if not self.boolean("enabled", default=True):
            return Rule(name=raw["name"], hosts=(), source=self.source), False   # removes a rule
        hosts = tuple(h.lower().strip(".") for h in self.strings("hosts"))
        generator = tuple(g for g in self.strings("generator") if g.strip())
        if "generator" in raw and not generator:
            raise self.fail("expected a non-empty generator name", "generator")
        if hosts and generator:
            raise self.fail("a rule is keyed by hosts or by generator, not both", "generator")
        if not hosts and not generator:
            raise self.fail("every rule needs at least one host (or a generator)", "hosts")
        for key in _HOST_ONLY_KEYS if generator else ():
            if key in raw:
                raise self.fail("not on a generator rule: it acts before the page is fetched", key)
        headers = raw.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise self.fail("expected a table of strings", "headers")
        rule = Rule(
            name=raw["name"], hosts=hosts, path=self.regex(raw.get("path"), "path"),
            at_risk=self.boolean("at_risk"),
            live=tuple(self.selector(s, "live") for s in self.strings("live")),
            live_text=self.strings("live_text"),
            title=tuple(self.title_source(s) for s in self.strings("title")),
            blocked_statuses=self.statuses(raw.get("blocked_statuses", []), "blocked_statuses"),
            headers=tuple((k, v) for k, v in headers.items()),
            per_host=self.positive_int("per_host"), interval=self.duration("interval"),
            start_per_host=self.positive_int("start_per_host"),
            start_interval=self.duration("start_interval"),
            compare_random_path=self.boolean("compare_random_path", default=None),
            blocked=self.markers("blocked"), soft404=self.markers("soft404"),
            source=self.source, cite=self.string("source"), generator=generator,
        )
        return rule, True

    # -- typed getters ---------------------------------------------------------------
    def strings(self, key: str, raw: dict | None = None, marker=None) -> tuple[str, ...]:
        value = (self.raw if raw is None else raw).get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail("expected a string or a list of strings", key, marker)
        return tuple(value)

    def boolean(self, key: str, default: bool | None = False, raw: dict | None = None, marker=None) -> bool:
        value = (self.raw if raw is None else raw).get(key, default)
        if not isinstance(value, bool) and not (value is None and default is None):
            raise self.fail("expected true or false", key, marker)
        return value

    def string(self, key: str, raw: dict | None = None, marker=None) -> str:
        value = (self.raw if raw is None else raw).get(key, "")
        if not isinstance(value, str):
            raise self.fail("expected a string", key, marker)
        return value

    def positive_int(self, key: str) -> int | None:
        value = self.raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise self.fail("expected a positive whole number", key)
        return value

    def duration(self, key: str) -> float | None:
        value = self.raw.get(key)
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.fail(str(exc), key) from None

    def statuses(self, value: Any, key: str, marker=None) -> frozenset[int]:
        if not isinstance(value, list) or not all(isinstance(v, int) and 100 <= v <= 999 for v in value):
            raise self.fail("expected a list of HTTP status numbers (100-999)", key, marker)
        return frozenset(value)

    def regex(self, value: Any, key: str, marker=None) -> re.Pattern | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail("expected a regular expression string", key, marker)
        try:
            return re.compile(value)
        except re.error as exc:
            raise self.fail(f"bad regular expression {value!r}: {exc}", key, marker) from None

    def selector(self, css: str, key: str, marker=None) -> Selector:
        try:
            compiled = CSSSelector(css)
        except (SelectorError, ValueError) as exc:
            raise self.fail(f"bad CSS selector {css!r}: {exc}", key, marker) from None
        # A selector with one id or class can only match when that name is in the HTML:
        # the cheap substring test that lets most pages skip parsing altogether.
        names = _NAME_TOKEN.findall(css)
        prefilter = max(names, key=len) if names and "," not in css else None
        bare_id = _BARE_ID.fullmatch(css.strip())
        # The attribute's name is case-insensitive, its value (the id) is not.
        id_tag = re.compile(r"<[a-zA-Z][^<>]*?\s(?i:id)\s*=\s*([\"']?)" + re.escape(bare_id.group(1))
                            + r"\1(?=[\s/>])") if bare_id else None
        return Selector(css, prefilter, compiled, id_tag)

    def title_source(self, spec: str) -> TitleSource:
        kind, _, name = spec.partition(":")
        if kind == "title" and not name:
            return TitleSource("title", "")
        if kind == "js" and re.fullmatch(r"[A-Za-z_$][\w$]*", name):
            return TitleSource("js", name, re.compile(_JS_VAR.format(name=re.escape(name))))
        if kind == "meta" and name:
            attr = re.compile(r"<meta\b[^>]*?\b(?:property|name)\s*=\s*[\"']?" + re.escape(name)
                              + r"[\"'\s/>][^>]*>", re.I)
            return TitleSource("meta", name, attr)
        if kind == "css" and name:
            return TitleSource("css", name, selector=self.selector(name, "title"))
        raise self.fail(f"bad title source {spec!r}; use js:VAR, meta:PROPERTY, css:SELECTOR or title",
                        "title")

    def markers(self, kind: str) -> tuple[Marker, ...]:
        raw = self.raw.get(kind, [])
        if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
            raise self.fail(f"expected [[rule.{kind}]] tables", kind)
        return tuple(self.marker(kind, i, m) for i, m in enumerate(raw))

    def marker(self, kind: str, index: int, raw: dict[str, Any]) -> Marker:
        where = (kind, index)
        for key in raw:
            if key not in _MARKER_KEYS:
                raise self.fail(f"unknown key; known: {', '.join(sorted(_MARKER_KEYS))}", key, where)
        if not any(key in raw for key in _CONDITIONS):
            raise self.fail(f"a marker needs a condition ({', '.join(sorted(_CONDITIONS))})", kind, where)
        max_body = raw.get("max_body")
        if max_body is not None and (isinstance(max_body, bool) or not isinstance(max_body, int) or max_body <= 0):
            raise self.fail("expected a positive number of characters", "max_body", where)
        error = self.string("error", raw, where) if "error" in raw else "{match}"
        if "stress" in raw and kind != "blocked":
            raise self.fail("only [[rule.blocked]] markers are stress signs", "stress", where)
        redirect_js = raw.get("redirect_js")
        if redirect_js is not None and not (isinstance(redirect_js, str)
                                            and re.fullmatch(r"[A-Za-z_$][\w$]*", redirect_js)):
            raise self.fail("expected a JavaScript variable name", "redirect_js", where)
        return Marker(
            name=str(raw.get("name", f"{kind} #{index + 1}")), kind=kind,
            text=self.strings("text", raw, where), text_all=self.strings("text_all", raw, where),
            regex=self.regex(raw.get("regex"), "regex", where),
            title=self.strings("title", raw, where),
            title_is=tuple(t.strip() for t in self.strings("title_is", raw, where)) if "title_is" in raw else None,
            selectors=tuple(self.selector(s, "selectors", where) for s in self.strings("selectors", raw, where)),
            not_selectors=tuple(self.selector(s, "not_selectors", where)
                                for s in self.strings("not_selectors", raw, where)),
            url_path=self.regex(raw.get("url_path"), "url_path", where),
            statuses=self.statuses(raw.get("statuses", []), "statuses", where),
            max_body=max_body, error=error,
            redirect_js=re.compile(_JS_VAR.format(name=re.escape(redirect_js))) if redirect_js else None,
            redirect_name=redirect_js or "",
            stress=kind == "blocked" and self.boolean("stress", True, raw, where),
            cite=self.string("source", raw, where),
        )


_RULE_HEADER = re.compile(r"^\s*\[\[\s*rule\s*\]\]")


def _find_line(text: str, index: int, key: str, marker: tuple[str, int] | None) -> int | None:
    """Best-effort 1-based line of ``key`` in the index-th [[rule]] (tomllib gives no positions)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _RULE_HEADER.match(line)]
    if index >= len(starts):
        return None
    start = starts[index]
    end = starts[index + 1] if index + 1 < len(starts) else len(lines)
    if marker is not None:
        head = re.compile(r"^\s*\[\[\s*rule\." + re.escape(marker[0]) + r"\s*\]\]")
        heads = [i for i in range(start, end) if head.match(lines[i])]
        if marker[1] < len(heads):
            start = heads[marker[1]]
    key_line = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
    for i in range(start, end):
        if key_line.match(lines[i]):
            return i + 1
    return start + 1
