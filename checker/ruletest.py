"""`linkhealth rules test`: which site rule and marker fire on a page, and why.

The page is a saved file (its URL given with ``--url``, so that the right site rule is
chosen) or a URL fetched now with the normal probe engine. The answer is the verdict
linkhealth would record and every check that could have decided it, so that a user
can write a rule for a site of their own in ``config/rules.toml`` and see it fire.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .classify import classify, explain, rule_for
from .errors import InputError
from .models import Kind, Probe, Reference, Target, Verdict
from .page import decode_body, extract_title
from .rules import Rule, RuleSet
from .settings import Settings

__all__ = ["RuleTest", "saved_page", "fetched_page", "check_page"]


@dataclass(frozen=True)
class RuleTest:
    """The outcome of one ``rules test``: the rule chosen, the verdict, each check's result."""

    url: str
    rule: Rule | None
    verdict: Verdict
    checks: tuple[tuple[str, str, str | None], ...]


def saved_page(path: str, url: str | None, status: int = 200) -> tuple[Target, Probe]:
    """A Target and Probe for a page saved on disk (as the engine would have decoded it)."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    url = url or file.resolve().as_uri()
    body = decode_body(raw, "text/html")
    probe = Probe(url=url, http_status=status, final_url=url, content_type="text/html", body=body,
                  title=extract_title(body))
    return Target(url=url, display_url=url, host=(urlsplit(url).hostname or "")), probe


async def fetched_page(url: str, settings: Settings, rules: RuleSet) -> tuple[Target, Probe]:
    """A Target and the Probe of fetching ``url`` now (settings' connect-to, CA file and limits apply)."""
    from .probe import Prober
    from .targets import to_target

    target = to_target(Reference("", 0, 0, url, Kind.BARE), settings)
    if target.skip is not None:   # excluded or malformed: classify says which, nothing is fetched
        return target, Probe(url=target.url, cause=target.skip, error=target.skip_detail, attempts=0)
    async with Prober(settings, host_policy=rules.host_policy) as prober:
        return target, await prober.fetch(target)


def check_page(target: Target, probe: Probe, rules: RuleSet) -> RuleTest:
    """Classify the page and list every check that could have decided it."""
    return RuleTest(url=target.url, rule=rule_for(target, probe.body, rules),
                    verdict=classify(target, probe, rules),
                    checks=tuple(explain(target, probe, rules)))
