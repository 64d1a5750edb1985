"""Benchmark: which share of the corpus's unique URLs each site rule covers.

Run:  .venv/bin/python bench/rule_coverage.py [--notes ../shared/corpus/notes] [--top 25]

Extracts the notes' links exactly as ``linkhealth extract --format jsonl`` does (it
runs that command), keeps the unique http(s) URLs, and matches each one against the
built-in site rules the way classification does (``RuleSet.match``: the host or a
parent domain, then the rule's path pattern; the most specific rule wins). Prints,
per rule, the URLs it covers and their share; the total share covered by a named
rule; and the largest uncovered registrable domains (an approximation: the last two
labels, three under a two-level public suffix such as com.cn), which only the generic
checks look at. Platform-software rules (``generator``) are keyed by the fetched page,
so their share cannot be known from URLs: they are listed as "by page", and an
uncovered URL may still be judged by one. Reads files only; contacts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checker.rules import load_rules  # noqa: E402
from checker.settings import HealthSettings  # noqa: E402

# Two-level suffixes seen in the corpus: enough for a readable tail, not a public-suffix list.
_TWO_LEVEL = {"com.cn", "net.cn", "org.cn", "edu.cn", "gov.cn", "ac.cn", "co.uk", "ac.uk", "org.uk",
              "com.tw", "edu.tw", "com.hk", "co.jp", "ac.jp", "ne.jp", "or.jp", "com.au", "edu.au",
              "co.kr", "ac.kr", "com.sg", "edu.sg", "com.br"}


def corpus_urls(notes: Path) -> list[str]:
    """The unique http(s) URLs that ``linkhealth extract`` finds in the notes, in first-seen order."""
    exe = Path(sys.executable).with_name("linkhealth")
    out = subprocess.run([str(exe), "extract", str(notes), "--format", "jsonl"], check=True,
                         capture_output=True, text=True, encoding="utf-8").stdout
    seen: dict[str, None] = {}
    for line in out.splitlines():
        url = json.loads(line)["url"]
        if url.lower().startswith(("http://", "https://")):
            seen.setdefault(url, None)
    return list(seen)


def registrable(host: str) -> str:
    """The approximate registrable domain of a host (see the module docstring)."""
    labels = host.rstrip(".").split(".")
    keep = 3 if ".".join(labels[-2:]) in _TWO_LEVEL else 2
    return ".".join(labels[-keep:])


def host_of(url: str) -> str:
    """The lower-cased host of a URL, "" when it has none or is malformed."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def main() -> None:
    """Match every unique corpus URL against the built-in rules and print the coverage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", default=str(ROOT.parent / "shared" / "corpus" / "notes"))
    parser.add_argument("--top", type=int, default=25, help="uncovered domains to list")
    args = parser.parse_args()

    rules = load_rules(HealthSettings())
    urls = corpus_urls(Path(args.notes))
    per_rule: Counter[str] = Counter()
    uncovered: Counter[str] = Counter()
    for url in urls:
        rule = rules.match(url)
        if rule is not None:
            per_rule[rule.name] += 1
        else:
            uncovered[registrable(host_of(url))] += 1
    total = len(urls)
    covered = sum(per_rule.values())
    print(f"unique http(s) URLs: {total}; rules: {len(rules)}")
    print(f"{'rule':<24} {'URLs':>7} {'share':>8}")
    for rule in rules.rules:
        if rule.generator:    # keyed by the fetched page: a URL cannot say whether it applies
            print(f"{rule.name:<24} {'-':>7} {'by page':>8}  (generator {', '.join(rule.generator)}; any host)")
            continue
        print(f"{rule.name:<24} {per_rule[rule.name]:>7} {per_rule[rule.name] / total:>8.2%}")
    print(f"{'named rules, total':<24} {covered:>7} {covered / total:>8.2%}")
    print(f"{'generic checks only':<24} {total - covered:>7} {(total - covered) / total:>8.2%}")
    print(f"largest uncovered registrable domains (of {len(uncovered)}):")
    for domain, n in uncovered.most_common(args.top):
        print(f"  {domain:<30} {n:>6} {n / total:>7.2%}")


if __name__ == "__main__":
    main()
