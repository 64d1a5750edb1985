"""Benchmark: classification cost per page (target: < 0.1 ms on average).

Run:  .venv/bin/python bench/bench_classify.py [--pages 25000] [--corpus ../shared/corpus]

Builds Probes from the hand-written fixture pages (tests/fixtures/pages), scaled up
to --pages probes. URLs come from the notes corpus when it is there (so hosts are
distributed as in real notes: about half WeChat), else from the fixture index.
Each URL gets a fixture body of its host's kind: WeChat URLs mostly live articles
(some long, some quoting deletion messages) with a share of gone notices, Zhihu
URLs live, deleted or refused, other hosts ordinary pages with a few soft 404s.
Prints rule loading time, and the mean, median and p99 classification time.
The random-sibling probe's cost is not CPU but requests: bench/corpus_report.py counts
them (one per host at most, recorded in runs.counts.sibling_probes).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checker.classify import classify  # noqa: E402
from checker.models import Hop, Probe, Target  # noqa: E402
from checker.rules import load_rules  # noqa: E402
from checker.settings import HealthSettings  # noqa: E402

PAGES = ROOT / "tests" / "fixtures" / "pages"
MAX_BODY = 256 * 1024
URL_RE = re.compile(r"https?://[^\s<>()\"'`\u3000-\u303f\uff00-\uffef\u4e00-\u9fff]+")

# (fixture file, weight) per kind of host.
MIX = {
    "wechat": [("wechat_live.html", 60), ("wechat_quote_long.html", 20), ("wechat_quote_short.html", 5),
               ("wechat_live_heading_only.html", 3), ("wechat_deleted.html", 4), ("wechat_violation.html", 2),
               ("wechat_account_closed.html", 2), ("wechat_migrated.html", 1), ("wechat_env_check.html", 2),
               ("wechat_too_frequent.html", 1), ("wechat_picture_post.html", 2), ("wechat_script_verify.html", 1),
               ("wechat_verify_continue.html", 1)],
    "zhihu": [("zhihu_live.html", 50), ("zhihu_quote_long.html", 20), ("zhihu_deleted.html", 10),
              ("zhihu_403.html", 15), ("zhihu_40362.json", 5), ("zhihu_unhuman.html", 2)],
    "other": [("plain_article.html", 50), ("csdn_article.html", 20), ("gbk_article.html", 10),
              ("title_404.html", 5), ("cloudflare_challenge.html", 5), ("title_not_found_article.html", 10),
              ("csdn_follow_wall.html", 5), ("csdn_login_wall.html", 3), ("arxiv_withdrawn.html", 2),
              ("docs_browser_banner.html", 2), ("bilibili_live.html", 1), ("baike_live_404.html", 1),
              ("verification_title.html", 1), ("antibot_412.html", 1), ("wordpress_post.html", 3),
              ("wordpress_404.html", 1), ("discuz_thread_live.html", 1), ("discuz_thread_gone.html", 1)],
}
STATUS = {"zhihu_403.html": 403, "zhihu_40362.json": 403, "cloudflare_challenge.html": 403, "antibot_412.html": 412}
CHARSET = {"gbk_article.html": "gbk", "gbk_not_found.html": "gbk"}


def corpus_urls(corpus: Path) -> list[str]:
    """Every http(s) URL in the corpus notes (a rough cut is enough for a benchmark)."""
    urls: list[str] = []
    for note in sorted((corpus / "notes").glob("*.markdown")):
        urls.extend(m.group(0).rstrip(".,;:!?*)") for m in URL_RE.finditer(note.read_text("utf-8", "replace")))
    return urls


def index_urls() -> list[str]:
    index = tomllib.loads((PAGES / "index.toml").read_text(encoding="utf-8"))["page"]
    return [f"https://{e['host']}{e['path']}" for e in index]


def kind_of(host: str) -> str:
    if host.endswith("weixin.qq.com"):
        return "wechat"
    return "zhihu" if host.endswith("zhihu.com") else "other"


def build_probes(urls: list[str], n: int, rng: random.Random) -> list[tuple[Target, Probe]]:
    bodies = {name: (PAGES / name).read_bytes()[:MAX_BODY].decode(CHARSET.get(name, "utf-8"), "replace")
              for mix in MIX.values() for name, _ in mix}
    out = []
    for i in range(n):
        url = urls[i % len(urls)]
        host = (re.match(r"https?://([^/:?#]+)", url) or re.match(r"(.*)", "x")).group(1).lower()
        names, weights = zip(*MIX[kind_of(host)])
        name = rng.choices(names, weights)[0]
        status = STATUS.get(name, 200)
        hops = (Hop(url, 301),) if rng.random() < 0.05 else ()
        final = url.replace("http://", "https://", 1) if hops else url
        probe = Probe(url=url, http_status=status, final_url=final, redirects=hops,
                      headers=(("content-type", "text/html"),), body=bodies[name])
        out.append((Target(url, url, host), probe))
    return out


def main() -> None:
    """Time classify() over scaled-up fixture probes and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=25000)
    parser.add_argument("--corpus", default=os.environ.get("LINKHEALTH_TEST_CORPUS", str(ROOT.parent / "shared" / "corpus")))
    args = parser.parse_args()

    t0 = time.perf_counter()
    rules = load_rules(HealthSettings())
    load_ms = (time.perf_counter() - t0) * 1000
    corpus = Path(args.corpus)
    urls = corpus_urls(corpus) if (corpus / "notes").is_dir() else index_urls()
    probes = build_probes(urls, args.pages, random.Random(1))
    avg_body = statistics.mean(len(p.body or "") for _, p in probes)

    times = []
    statuses: dict[str, int] = {}
    start = time.perf_counter()
    for target, probe in probes:
        t = time.perf_counter()
        verdict = classify(target, probe, rules)
        times.append(time.perf_counter() - t)
        statuses[str(verdict.status)] = statuses.get(str(verdict.status), 0) + 1
    total = time.perf_counter() - start

    times.sort()
    print(f"rules loaded and compiled in {load_ms:.1f} ms ({len(rules)} rules)")
    print(f"urls from {'corpus' if (corpus / 'notes').is_dir() else 'fixture index'}: {len(urls)}; "
          f"pages classified: {len(probes)}; mean body {avg_body / 1024:.1f} KiB")
    print(f"statuses: {dict(sorted(statuses.items()))}")
    print(f"classify: mean {total / len(probes) * 1000:.3f} ms/page, median {times[len(times) // 2] * 1000:.3f} ms, "
          f"p99 {times[int(len(times) * 0.99)] * 1000:.3f} ms, max {times[-1] * 1000:.2f} ms")
    print("target: mean < 0.1 ms/page -> " + ("PASS" if total / len(probes) < 0.0001 else "FAIL"))


if __name__ == "__main__":
    main()
