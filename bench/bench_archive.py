"""Archive many WeChat-shaped articles into the local archive: speed, disk, memory, revisits.

Run (about 10 minutes on two shared cores for the default 1,000 articles)::

    .venv/bin/python bench/bench_archive.py [--articles 1000] [--photos 8] [--photo-side 120]

All on 127.0.0.1: bench/wechatsite.py serves ``--articles`` articles of one account, each
with ``--photos`` distinct photos (incompressible PNGs of about side*side*3 bytes) plus
the account logo and a background picture shared by every article (so about 10
pictures an article), the shared stylesheet and script, behind mmbiz.qpic.cn's hotlink
rule. Each mode runs in its own child process (so that peak RSS is the archiver's alone,
the site runs in the parent), with the local backend on a SQLite database, one article
after another as the archive queue runs them:

- ``revisits``: resources stored before (same payload digest) are WARC revisit records;
- ``full``: every capture writes every resource again (no resource index).

It prints articles per minute, WARC and readable-copy bytes per article, revisit
records written and peak RSS for both, and the first copy's fidelity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from wechatsite import Site, article_url  # noqa: E402


async def archive_all(connect_to: list[str], ca_file: str, articles: int, work: Path, revisits: bool) -> dict:
    """Child: archive every article once; return the figures."""
    from warcio.archiveiterator import ArchiveIterator

    from checker.archive.base import ArchiveJob
    from checker.archive.local import LocalBackend, http_fetcher
    from checker.archive.policy import Action
    from checker.http import create_session
    from checker.settings import Settings
    from checker.store import Store
    from checker.store.archivequeue import StoreResourceIndex
    settings = Settings().with_overrides({
        "check.connect_to": tuple(connect_to), "check.ca_file": ca_file, "archive.local_dir": str(work / "archive")})
    store = await Store.open(f"sqlite:///{work / 'linkhealth.db'}")
    index = StoreResourceIndex(store, lambda: __import__("datetime").datetime.now(
        __import__("datetime").timezone.utc)) if revisits else None
    fidelity, failures = None, 0
    started = time.perf_counter()
    try:
        async with create_session(settings) as session:
            backend = LocalBackend(settings, http_fetcher(session), resource_index=index)
            backend.prepare()
            for n in range(articles):
                result = await backend.run(ArchiveJob(n + 1, n + 1, article_url(n), "local", Action.SAVE, "pending"))
                if result.snapshot is None or result.snapshot.fidelity.verdict != "ok":
                    failures += 1
                if fidelity is None and result.snapshot is not None:
                    fidelity = result.snapshot.fidelity.summary()
    finally:
        await store.close()
    seconds = time.perf_counter() - started
    warcs = list((work / "archive").rglob("*.warc.gz"))
    copies = list((work / "archive").rglob("*.html"))
    kinds: dict[str, int] = {}
    for path in warcs:
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                kinds[rec.rec_type] = kinds.get(rec.rec_type, 0) + 1
    return {"mode": "revisits" if revisits else "full", "articles": articles, "seconds": seconds,
            "warc_bytes": sum(p.stat().st_size for p in warcs), "copy_bytes": sum(p.stat().st_size for p in copies),
            "records": kinds, "failures": failures, "first_fidelity": fidelity,
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def main() -> int:
    """Serve the site, run both modes in child processes, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--photo-side", type=int, default=120)
    parser.add_argument("--child", choices=("revisits", "full"), help=argparse.SUPPRESS)
    parser.add_argument("--connect-to", action="append", help=argparse.SUPPRESS)
    parser.add_argument("--ca-file", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(archive_all(args.connect_to, args.ca_file, args.articles, Path(args.work),
                                                 args.child == "revisits"))))
        return 0
    ca_dir = Path(tempfile.mkdtemp(prefix="bench-archive-ca-"))
    site = Site(args.photos, args.photo_side, ca_dir)
    site.start()
    results = []
    try:
        for mode in ("revisits", "full"):
            with tempfile.TemporaryDirectory(prefix=f"bench-archive-{mode}-") as work:
                rules = [arg for rule in site.connect_to() for arg in ("--connect-to", rule)]
                done = subprocess.run([sys.executable, __file__, "--child", mode, *rules, "--ca-file", site.ca_file,
                                       "--articles", str(args.articles), "--work", work],
                                      capture_output=True, text=True)
                if done.returncode:
                    print(done.stdout, done.stderr, file=sys.stderr)
                    return 1
                results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        site.stop()
        shutil.rmtree(ca_dir, ignore_errors=True)
    for r in results:
        n = r["articles"]
        print(f"{r['mode']:9} {n} articles in {r['seconds']:.1f} s = {60 * n / r['seconds']:.0f} articles/min; "
              f"WARC {r['warc_bytes'] / n / 1024:.1f} KiB/article, readable copy {r['copy_bytes'] / n / 1024:.1f} "
              f"KiB/article; records {r['records']}; copies not ok: {r['failures']}; "
              f"peak RSS {r['peak_rss_kib'] / 1024:.0f} MiB")
    print(f"first copy: {results[0]['first_fidelity']}")
    saved = 1 - results[0]["warc_bytes"] / results[1]["warc_bytes"]
    print(f"revisit records save {saved:.0%} of WARC bytes "
          f"({(results[1]['warc_bytes'] - results[0]['warc_bytes']) / 1024 / 1024:.1f} MiB for {results[0]['articles']} articles)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
