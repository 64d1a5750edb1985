"""Prove linkhealth's local WARCs replay in pywb: WeChat-shaped pages with all their pictures.

Run (pywb is in the bench extra: ``.venv/bin/pip install -e '.[bench]'``; Chromium at
/usr/bin/chromium)::

    .venv/bin/python bench/bench_pywb.py [--pages 20]

What it does, all on 127.0.0.1: bench/wechatsite.py serves WeChat-shaped articles of one
account over HTTPS (hidden body, lazy ``data-src`` pictures, a CSS background, a shared
logo, stylesheet and script, pictures behind mmbiz.qpic.cn's hotlink rule). Every
article is archived by the local backend with a resource index on SQLite, so the shared
resources of the second and later articles are WARC revisit records pointing at the
first. Then: ``warcio check`` on every file; ``wb-manager add`` indexes them into a pywb
collection; pywb's ``wayback`` server replays every page byte-exact (``id_`` mode) and
every resource of every page (revisits resolved to the first capture); and headless
Chromium opens the first and the last article in pywb's unframed replay (the page's own
script running under wombat) and counts the pictures drawn (naturalWidth > 0 at their
real size, and the CSS background) against those the article has. Chromium resolves
no host name: only pywb on 127.0.0.1 answers. Exits non-zero on any mismatch.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from warcio.archiveiterator import ArchiveIterator  # noqa: E402

from checker.archive.base import ArchiveJob  # noqa: E402
from checker.archive.local import LocalBackend, http_fetcher  # noqa: E402
from checker.archive.policy import Action  # noqa: E402
from checker.http import create_session  # noqa: E402
from checker.settings import Settings  # noqa: E402
from checker.store import Store  # noqa: E402
from checker.store.archivequeue import StoreResourceIndex  # noqa: E402
from wechatsite import Site, article_url  # noqa: E402

BIN = Path(sys.executable).parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--no-pings",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"]


async def archive_pages(site: Site, root: Path, pages: int) -> tuple[list[tuple[str, Path]], float]:
    """Archive every article with the local backend (revisits across captures); (url, warc) pairs, seconds."""
    settings = Settings().with_overrides({"check.connect_to": site.connect_to(), "check.ca_file": site.ca_file,
                                          "archive.local_dir": str(root)})
    store = await Store.open(f"sqlite:///{root.parent / 'linkhealth.db'}")
    out = []
    started = time.perf_counter()
    try:
        async with create_session(settings) as session:
            from datetime import datetime, timezone
            backend = LocalBackend(settings, http_fetcher(session),
                                   resource_index=StoreResourceIndex(store, lambda: datetime.now(timezone.utc)))
            backend.prepare()
            for i in range(pages):
                url = article_url(i)
                result = await backend.run(ArchiveJob(i + 1, i + 1, url, "local", Action.SAVE, "pending"))
                if result.snapshot is None or result.snapshot.fidelity.verdict != "ok":
                    raise SystemExit(f"archiving {url} failed: {result.error}")
                out.append((url, Path(result.snapshot.local_path)))
                await asyncio.sleep(1.05)   # one capture a second: distinct 14-digit timestamps
    finally:
        await store.close()
    return out, time.perf_counter() - started


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> tuple[int, bytes]:
    """GET on loopback (no proxies)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def warc_contents(warcs: list[Path]) -> tuple[dict[str, bytes], dict[Path, list[tuple[str, str, str]]]]:
    """Payload of every full response by URL, and per WARC its (type, URL, WARC-Date) records."""
    payloads: dict[str, bytes] = {}
    records: dict[Path, list[tuple[str, str, str]]] = {}
    for path in warcs:
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                uri = rec.rec_headers.get_header("WARC-Target-URI")
                if rec.rec_type == "response":
                    payloads[uri] = rec.content_stream().read()
                if rec.rec_type in ("response", "revisit"):
                    records.setdefault(path, []).append((rec.rec_type, uri, rec.rec_headers.get_header("WARC-Date")))
    return payloads, records


def stamp(date: str) -> str:
    """WARC-Date -> the 14-digit timestamp of a replay URL."""
    return date.replace("-", "").replace("T", "").replace(":", "").replace("Z", "")


async def replay_in_chromium(base: str, pages: list[tuple[str, str]], side: int) -> list[str]:
    """Open each (timestamp, url) in pywb's replay mode; one line per page: pictures drawn / expected."""
    from playwright.async_api import async_playwright
    lines = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for ts, url in pages:
            page = await browser.new_page()
            await page.goto(f"{base}/notes/{ts}/{url}", wait_until="load")
            await page.wait_for_function("[...document.querySelectorAll('#js_content img, .profile_avatar')]"
                                         ".every(i => i.complete && i.naturalWidth > 0)", timeout=20000)
            state = await page.evaluate("""async () => {
                const c = document.getElementById('js_content'), s = getComputedStyle(c);
                const imgs = [...document.querySelectorAll('#js_content img, .profile_avatar')];
                const bg = getComputedStyle(document.getElementById('lh-bg')).backgroundImage;
                const m = /url\\("?(.*?)"?\\)$/.exec(bg); let bgw = 0;
                if (m) { const i = new Image(); i.src = m[1]; await i.decode(); bgw = i.naturalWidth; }
                return {visible: s.visibility === 'visible' && s.opacity === '1' && c.offsetHeight > 0,
                        sizes: imgs.map(i => i.naturalWidth), bg: bgw}; }""")
            drawn = sum(w > 0 for w in state["sizes"]) + (state["bg"] > 0)
            expected = len(state["sizes"]) + 1
            ok = state["visible"] and drawn == expected and all(w in (side, 100) for w in state["sizes"])
            lines.append(f"{'ok' if ok else 'FAIL'}: {url} body visible {state['visible']}, "
                         f"pictures drawn {drawn}/{expected} (sizes {state['sizes']}, background {state['bg']})")
            await page.close()
        await browser.close()
    return lines


def main() -> int:
    """Archive, check, index with pywb, replay (bytes and in Chromium); print numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--photos", type=int, default=8)
    args = parser.parse_args()
    if not (BIN / "wb-manager").exists():
        print("pywb is not installed in this venv: .venv/bin/pip install -e '.[bench]'", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-pywb-"))
    site = Site(args.photos, 80, work)
    site.start()
    try:
        archived, took = asyncio.run(archive_pages(site, work / "archive", args.pages))
        print(f"archived {len(archived)} pages in {took:.2f} s (with a 1 s pause between captures)")
        for _, warc in archived:
            check = subprocess.run([str(BIN / "warcio"), "check", str(warc)], capture_output=True, text=True)
            if check.returncode:
                print(f"warcio check failed on {warc}: {check.stdout}{check.stderr}")
                return 1
        print(f"warcio check: {len(archived)} files ok")
        payloads, records = warc_contents([w for _, w in archived])
        revisits = sum(t == "revisit" for recs in records.values() for t, _, _ in recs)
        env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
        subprocess.run([str(BIN / "wb-manager"), "init", "notes"], cwd=work, check=True, capture_output=True, env=env)
        # Unframed replay: the page itself at /notes/<ts>/<url> (rewritten, wombat injected),
        # rather than pywb's banner frame around it.
        (work / "config.yaml").write_text("framed_replay: false\n", encoding="utf-8")
        t0 = time.perf_counter()
        subprocess.run([str(BIN / "wb-manager"), "add", "notes", *[str(w) for _, w in archived]],
                       cwd=work, check=True, capture_output=True, env=env)
        index = list((work / "collections" / "notes" / "indexes").glob("*.cdxj"))
        lines = sum(len(p.read_text().splitlines()) for p in index)
        print(f"pywb indexed {lines} CDXJ lines ({revisits} revisit records) in {time.perf_counter() - t0:.2f} s")
        port = free_port()
        # pywb logs every request to stderr: to a file, not a pipe nobody reads (a full pipe
        # blocks pywb after a few hundred requests).
        log = open(work / "wayback.log", "wb")
        server = subprocess.Popen([str(BIN / "wayback"), "-b", "127.0.0.1", "-p", str(port)], cwd=work,
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(600):      # pywb (gevent) takes a while to start on a busy machine
                try:
                    if fetch(f"{base}/")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            else:
                print("pywb did not start")
                return 1
            bad = checked = 0
            t0 = time.perf_counter()
            for _, warc in archived:
                for kind, uri, date in records[warc]:
                    if os.environ.get("BENCH_VERBOSE"):
                        print(f"  {kind} {stamp(date)} {uri}", file=sys.stderr, flush=True)
                    status, body = fetch(f"{base}/notes/{stamp(date)}id_/{uri}")
                    checked += 1
                    if status != 200 or body != payloads[uri]:
                        bad += 1
                        print(f"replay mismatch ({kind}) for {uri}: HTTP {status}")
            per = 1000 * (time.perf_counter() - t0) / checked
            print(f"pywb replayed {checked - bad}/{checked} pages and resources byte-exact (id_ mode, revisits "
                  f"resolved), {per:.1f} ms each")
            first = records[archived[0][1]][0]
            last = records[archived[-1][1]][0]
            shown = asyncio.run(replay_in_chromium(base, [(stamp(first[2]), first[1]), (stamp(last[2]), last[1])],
                                                   80))
            print("\n".join(f"Chromium, pywb replay mode: {line}" for line in shown))
            return 0 if not bad and all(line.startswith("ok") for line in shown) else 1
        finally:
            server.terminate()
            server.wait(timeout=10)
            log.close()
    finally:
        site.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
