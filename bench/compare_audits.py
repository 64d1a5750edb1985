"""Compare two audits' verdicts URL by URL: did a change call live pages dead?

Run (after bench/corpus_report.py has run before and after a change, each with its own
--out folder)::

    .venv/bin/python bench/compare_audits.py BEFORE/corpus-work/audit.json AFTER/corpus-work/audit.json

Prints how many URLs changed status, the transitions (before -> after) with counts and
an example of each, and the numbers that matter: new false deaths (ok or redirect
before, failing after: broken, soft404, timeout, unreachable), the same counted only on
pages that answered in both audits (a timeout is the loaded machine's, not a verdict),
and new blocks (ok or redirect before, blocked after). Exits 1 when a page that
answered in both audits went from ok or redirect to failing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

GOOD = {"ok", "redirect"}
FAILING = {"broken", "soft404", "timeout", "unreachable"}


def load(path: Path) -> dict[str, dict]:
    """URL -> link object of an audit's JSON output."""
    return {link["url"]: link for link in json.loads(path.read_text(encoding="utf-8"))["links"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    before, after = load(args.before), load(args.after)
    common = before.keys() & after.keys()
    moves: Counter = Counter()
    example: dict[tuple[str, str], tuple[str, str | None]] = {}
    for url in sorted(common):
        old, new = before[url]["status"], after[url]["status"]
        if old != new:
            moves[(old, new)] += 1
            example.setdefault((old, new), (url, after[url].get("error")))
    print(f"URLs in both audits: {len(common)} (only before: {len(before.keys() - common)}, "
          f"only after: {len(after.keys() - common)}); status changed: {sum(moves.values())}")
    for (old, new), n in moves.most_common():
        url, error = example[(old, new)]
        print(f"  {old:>11} -> {new:<11} {n:6}   e.g. {url}  ({(error or '')[:100]})")
    deaths = sum(n for (old, new), n in moves.items() if old in GOOD and new in FAILING)
    blocks = sum(n for (old, new), n in moves.items() if old in GOOD and new == "blocked")
    # A timeout says nothing of the page (a loaded machine misses the deadline); the
    # verdicts that matter are those on pages that answered in both audits.
    answered = [url for url in common if before[url]["status"] != "timeout" and after[url]["status"] != "timeout"]
    verdict_deaths = [url for url in answered if before[url]["status"] in GOOD and after[url]["status"] in FAILING]
    print(f"new false deaths (ok/redirect -> failing): {deaths}, of which timeouts: "
          f"{deaths - len(verdict_deaths)}")
    print(f"new false deaths on pages that answered in both audits: {len(verdict_deaths)}"
          + "".join(f"\n  {url}: {after[url]['status']} ({after[url].get('error')})" for url in verdict_deaths[:20]))
    print(f"new blocks (ok/redirect -> blocked): {blocks}")
    return 1 if verdict_deaths else 0


if __name__ == "__main__":
    sys.exit(main())
