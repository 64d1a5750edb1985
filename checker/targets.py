"""Targets: normalise references, decide what is not fetched, and group duplicates.

``normalize`` gives the key used for deduplication and in the database (RFC 3986
section 6.2.2 syntax-based normalisation, plus IDNA hosts and no fragment); the URL
as written stays the display URL. ``to_target`` sets ``skip`` for what is not fetched:

=========================  ===================  ===============================
what                       Target.skip           audit status
=========================  ===================  ===============================
malformed URL              INVALID_URL          broken (skip_detail is the error)
mailto:, git://, ...       EXCLUDED_SCHEME      excluded
check.exclude match        EXCLUDED_PATTERN     excluded
private/loopback IP host   PRIVATE_ADDRESS      excluded (unless check.allow_private)
relative, no site_root     EXCLUDED_SCHEME      excluded
relative, file missing     MISSING_FILE         broken
relative, file present     None, url file://    ok, without any fetch
=========================  ===================  ===============================

A Target whose ``url`` starts with ``file://`` and whose ``skip`` is None is a
relative link whose file exists under ``notes.site_root``: the pipeline records it
as ok and never sends it to the probe engine.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Iterable
from urllib.parse import unquote, urlsplit

from .extract import KNOWN_SCHEMES
from .models import Cause, Kind, Reference, Target
from .netaddr import non_public_reason
from .settings import Settings

__all__ = ["normalize", "to_target", "dedupe", "key_for", "plan", "is_file_target", "from_stored"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21, "ws": 80, "wss": 443}
# RFC 3986: unreserved characters need no escape; an escaped one is decoded (6.2.2.2).
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}|[^A-Za-z0-9\-._~!$&'()*+,;=:@/?]")
_HOST_OK = re.compile(r"[a-z0-9_.-]+\Z")


def _fix_escapes(part: str) -> str:
    """Upper-case escapes, decode unreserved ones, escape the rest as UTF-8 (RFC 3986 2.1)."""
    def one(m: re.Match[str]) -> str:
        token = m.group(0)
        if token[0] == "%" and len(token) == 3:
            char = chr(int(token[1:], 16))
            return char if char in _UNRESERVED else token.upper()
        return "".join(f"%{b:02X}" for b in token.encode("utf-8"))
    return _ESCAPE.sub(one, part)


def _idna(host: str) -> str:
    """The host in lower-case ASCII (IDNA 2008 with UTS 46 mapping, as browsers do)."""
    host = host.rstrip(".").lower()
    if host.isascii():
        return host
    try:
        import idna   # a dependency of aiohttp (via yarl); import here, only when needed
        return idna.encode(host, uts46=True).decode("ascii")
    except ImportError:
        return host.encode("idna").decode("ascii")
    except Exception as exc:   # idna raises several IDNAError subclasses and ValueError
        raise ValueError(f"host {host!r} is not a valid name ({exc})") from None


def normalize(url: str) -> str:
    """The dedup and database key of a URL; ValueError says why when it is malformed."""
    url = url.strip()
    if url.lower().startswith("www."):
        url = "http://" + url        # bare www. mention (notes.bare_www)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise ValueError("no scheme")
    if scheme in ("http", "https") and not parts.netloc:
        raise ValueError("no host")
    if not parts.netloc:
        return f"{scheme}:{parts.path}" + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname or ""
    if scheme in ("http", "https") and not host:
        raise ValueError("no host")
    if host and ":" not in host:
        host = _idna(host)
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    netloc = (userinfo + "@" if userinfo else "") + host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    path = _remove_dot_segments(_fix_escapes(parts.path)) or "/"
    query = f"?{_fix_escapes(parts.query)}" if parts.query or url.rstrip("#").endswith("?") else ""
    return f"{scheme}://{netloc}{path}{query}"


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4: /a/./b/../c -> /a/c (what a browser requests, too)."""
    if "." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/".join(out)


_FILE_KEYS = ("file://", "missing:")


def is_file_target(target: Target) -> bool:
    """True for a relative link whose file exists under site_root: ok without a fetch."""
    return target.skip is None and target.url.startswith(_FILE_KEYS)


def from_stored(url: str, display_url: str, host: str, settings: Settings) -> Target:
    """Rebuild the Target of a stored link (the daemon's due links), filters applied anew.

    A site file is looked at again (it may have appeared or gone); anything else is
    judged from the URL as written, under the current settings.
    """
    if url.startswith(_FILE_KEYS):
        path = Path(unquote(urlsplit(url).path)) if url.startswith("file://") else Path(url[len("missing:"):])
        if path.exists():
            return Target(url, display_url, "")
        return Target(url, display_url, "", Cause.MISSING_FILE, f"missing file: {path.as_posix()}")
    target = to_target(Reference("", 0, 0, display_url, Kind.BARE), settings)
    if target.url != url:   # keep the stored key: the rows hang on it
        target = Target(url, display_url, host or target.host, target.skip, target.skip_detail)
    return target


def _looks_like_http_typo(scheme: str) -> bool:
    """'h1ttps', 'htps', 'ttp', 'hhttp': a mistyped http(s), not another protocol."""
    letters = re.sub(r"[^a-z]", "", scheme)
    return "ttp" in scheme or letters in ("htp", "htps", "htts", "hhtp", "hhtps", "ttps", "tps")


def _private(host: str, settings: Settings) -> str | None:
    """A reason when ``host`` is a literal private/loopback/link-local address, else None."""
    bare = host.strip("[]")
    if bare == "localhost" or bare.endswith(".localhost"):
        return f"{bare} is a loopback name"
    # A name returns None: the probe engine checks its addresses after DNS.
    return non_public_reason(bare)


def _relative(ref: Reference, settings: Settings, note_path: Path | None) -> Target:
    """A relative link: excluded without site_root, else checked against the files."""
    written = ref.url
    root = settings.notes.site_root
    if not root:
        return Target(written, written, "", Cause.EXCLUDED_SCHEME,
                      "relative link: set notes.site_root to check it against the site's files")
    path = unquote(written.split("#", 1)[0].split("?", 1)[0])
    if path.startswith("/"):
        file = Path(root) / path.lstrip("/")
    else:
        base = (note_path or Path(ref.file)).parent
        file = base / path
    file = Path(posixpath.normpath(file.as_posix()))
    if file.exists():
        return Target(file.resolve().as_uri(), written, "")
    return Target(f"missing:{file.as_posix()}", written, "", Cause.MISSING_FILE,
                  f"missing file: {file.as_posix()}")


def to_target(ref: Reference, settings: Settings, *, note_path: Path | None = None) -> Target:
    """The Target for one reference, with ``skip`` set when it is not fetched."""
    if ref.kind is Kind.RELATIVE:
        return _relative(ref, settings, note_path)
    written = ref.url
    scheme = written.split(":", 1)[0].lower() if ":" in written else ""
    if written.lower().startswith("www."):
        scheme = "http"
    if scheme not in ("http", "https"):
        if scheme not in KNOWN_SCHEMES and ("://" in written and _looks_like_http_typo(scheme)):
            return Target(written, written, "", Cause.INVALID_URL,
                          f"malformed URL: scheme {scheme!r} is not a known scheme")
        return Target(written, written, "", Cause.EXCLUDED_SCHEME, f"scheme {scheme or '?'!r} is not checked")
    try:
        key = normalize(written)
    except ValueError as exc:
        return Target(written, written, "", Cause.INVALID_URL, f"malformed URL: {exc}")
    host = urlsplit(key).hostname or ""
    if ":" not in host and not _HOST_OK.match(host):   # IPv6 literals were checked by urlsplit
        return Target(key, written, host, Cause.INVALID_URL, f"malformed URL: host {host!r} is not a valid name")
    for pattern in settings.check.exclude:
        if re.search(pattern, written) or re.search(pattern, key):
            return Target(key, written, host, Cause.EXCLUDED_PATTERN,
                          f"excluded by check.exclude pattern {pattern!r}")
    if not settings.check.allow_private:
        reason = _private(host, settings)
        named = any(rule.host == host.strip("[]") for rule in settings.connect_to)
        if reason and not named:   # a host named in --connect-to is an explicit choice
            return Target(key, written, host, Cause.PRIVATE_ADDRESS,
                          f"not checked: {reason} (set check.allow_private to check it)")
    return Target(key, written, host)


def key_for(ref: Reference) -> str:
    """The grouping key of a reference: its normalized URL, or a stable stand-in."""
    if ref.kind is Kind.RELATIVE:
        if ref.url.startswith("/"):
            return "relative:" + ref.url.split("#", 1)[0]
        folder = posixpath.dirname(ref.file)
        return "relative:" + posixpath.normpath(posixpath.join(folder, ref.url.split("#", 1)[0]))
    try:
        return normalize(ref.url)
    except ValueError:
        return ref.url          # malformed: one group per spelling


def dedupe(refs: Iterable[Reference]) -> dict[str, list[Reference]]:
    """Group references by :func:`key_for`, in first-seen order: one check per unique URL."""
    groups: dict[str, list[Reference]] = {}
    for ref in refs:
        groups.setdefault(key_for(ref), []).append(ref)
    return groups


def plan(refs: Iterable[Reference], settings: Settings) -> list[tuple[Target, list[Reference]]]:
    """One Target per unique reference group (built from its first occurrence)."""
    return [(to_target(group[0], settings, note_path=Path(group[0].file)), group)
            for group in dedupe(refs).values()]
