"""The daemon API's query parameters, read strictly: a bad one is a 400 saying which and why.

A filter that matches nothing because of a typo (``status=brokn``) or a page size that
is silently changed (``limit=-1`` read as 1) gives a wrong answer that looks right;
the API answers 400 instead, naming the parameter and what it accepts. Pure functions
over the query mapping: the web layer turns :class:`BadParam` into the response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .models import Health, Status

__all__ = ["BadParam", "LinksQuery", "links_query", "runs_limit", "MAX_PAGE", "DEFAULT_PAGE"]

DEFAULT_PAGE, MAX_PAGE = 100, 1000
MAX_OFFSET = 10**9
MAX_Q = 500                      # characters of a search: more is no search, it is a payload
STATUSES = (*(s.value for s in Status), "unchecked")   # unchecked: no check yet, as /metrics says
HEALTHS = tuple(h.value for h in Health)
ACTIVE = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False,
          "all": None, "any": None}
LINKS_PARAMS = ("status", "health", "q", "active", "limit", "offset")


class BadParam(ValueError):
    """A query parameter the API cannot honour; the message says what it accepts."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name

    def body(self) -> dict[str, str]:
        """The JSON body of the 400 answer."""
        return {"error": str(self), "parameter": self.name}


@dataclass(frozen=True)
class LinksQuery:
    """A valid ``/api/links`` query."""

    status: str | None = None
    health: str | None = None
    q: str | None = None
    active: bool | None = True
    limit: int = DEFAULT_PAGE
    offset: int = 0


def _one(query: Mapping[str, str], name: str) -> str | None:
    """The parameter's single value (None when absent or empty); given twice is an error."""
    getall = getattr(query, "getall", None)
    values = getall(name, []) if getall else ([query[name]] if name in query else [])
    if len(values) > 1:
        raise BadParam(name, "given more than once")
    return values[0] if values and values[0] != "" else None


def _known(query: Mapping[str, str], names: Iterable[str]) -> None:
    unknown = sorted(set(query) - set(names))
    if unknown:
        raise BadParam(unknown[0], f"unknown parameter; known: {', '.join(names)}")


def _int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = _one(query, name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.lstrip("-").isdigit():
        raise BadParam(name, f"must be a whole number from {low} to {high}, got {raw[:40]!r}")
    value = int(raw)
    if not low <= value <= high:
        raise BadParam(name, f"must be from {low} to {high}, got {value}")
    return value


def _words(query: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    raw = _one(query, name)
    if raw is None:
        return None
    words = [w.strip() for w in raw.split(",")]
    bad = [w for w in words if w not in allowed]
    if bad:
        raise BadParam(name, f"{bad[0][:40]!r} is not one of {', '.join(allowed)} (comma-separate several)")
    return ",".join(words)


def links_query(query: Mapping[str, Any]) -> LinksQuery:
    """Parse ``/api/links``'s parameters; raises BadParam."""
    _known(query, LINKS_PARAMS)
    active_raw = (_one(query, "active") or "1").lower()
    if active_raw not in ACTIVE:
        raise BadParam("active", f"must be one of {', '.join(ACTIVE)}, got {active_raw[:40]!r}")
    q = _one(query, "q")
    if q is not None and len(q) > MAX_Q:
        raise BadParam("q", f"at most {MAX_Q} characters, got {len(q)}")
    return LinksQuery(status=_words(query, "status", STATUSES), health=_words(query, "health", HEALTHS),
                      q=q, active=ACTIVE[active_raw], limit=_int(query, "limit", DEFAULT_PAGE, 1, MAX_PAGE),
                      offset=_int(query, "offset", 0, 0, MAX_OFFSET))


def runs_limit(query: Mapping[str, Any]) -> int:
    """Parse ``/api/runs``'s only parameter, ``limit``; raises BadParam."""
    _known(query, ("limit",))
    return _int(query, "limit", 50, 1, MAX_PAGE)
