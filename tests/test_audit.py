"""End to end: the real `linkhealth audit` binary against the scripted web on 127.0.0.1.

Real hostnames (https://mp.weixin.qq.com/..., https://github.com/...) reach the local server
through --connect-to and a trustme CA, so TLS is exercised for real. The tests read the JSON
output and the SQLite rows, not just exit codes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trustme

from webserver import TLS_NAMES, SimWeb

LINKHEALTH = [sys.executable, "-m", "checker.cli"]
PAGES = Path(__file__).parent / "fixtures" / "pages"
BUILTIN_RULES = Path(__file__).parent.parent / "checker" / "data" / "rules.toml"
#: A rule's pace keys (start_interval, interval): the fixture test starts every host fast.
FAST_START = re.compile(r'(?m)^((?:start_)?interval) = "[^"]*"')

#: (url, status, http_status, final_url or None, title or None); every host goes to the scripted web.
CASES = [
    ("https://github.com/title", "ok", 200, None, "Hello 世界"),
    ("https://example.com/og", "ok", 200, None, "微信文章标题"),
    ("https://example.com/gbk", "ok", 200, None, "中文标题：编码测试"),
    ("https://example.com/gbk-meta", "ok", 200, None, "中文标题：编码测试"),
    ("https://example.com/gbk-undeclared", "ok", 200, None, "中文标题：编码测试"),
    ("https://example.com/404", "broken", 404, None, None),
    ("https://example.com/410", "broken", 410, None, None),
    ("https://example.com/flaky/1", "ok", 200, None, "Hello 世界"),
    ("https://example.com/503", "broken", 503, None, None),
    ("https://example.com/r301/3", "redirect", 200, "https://example.com/title", "Hello 世界"),
    ("https://example.com/redirect-404", "broken", 404, "https://example.com/404", None),
    ("https://example.com/loop/a", "broken", 302, None, None),   # the last hop seen
    ("https://example.com/file.pdf", "ok", 200, None, None),
    ("https://example.com/ratelimited/1", "ok", 200, None, "Hello 世界"),
    ("https://example.com/hang", "timeout", None, None, None),
    ("https://example.com/huge", "ok", 200, None, "Huge"),
    ("https://example.com/endless", "ok", 200, None, "Endless"),
    ("https://example.com/bomb", "ok", 200, None, None),
    ("https://example.com/big-header", "broken", None, None, None),   # a 1 MB header: refused
    ("https://example.com/doc.pdf", "ok", 200, None, None),
    ("http://example.org/title", "ok", 200, None, "Hello 世界"),
    ("mailto:someone@example.com", "excluded", None, None, None),
    ("http://10.1.2.3/internal", "excluded", None, None, None),
    ("h1ttps://www.example.com/typo", "broken", None, None, None),
]


def write_notes(folder: Path, urls: list[str]) -> None:
    """Notes citing every URL, some of them twice (one check per unique URL)."""
    folder.mkdir(parents=True, exist_ok=True)
    half = len(urls) // 2
    (folder / "a.md").write_text("# 笔记 A\n\n" + "\n\n".join(urls[:half]) + "\n", encoding="utf-8")
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "b.markdown").write_text(
        "# Note B\n\n" + "\n\n".join(f"- [{i}]({u})" if u.startswith("http") else u
                                    for i, u in enumerate(urls[half:])) + f"\n\nagain: {urls[0]}\n",
        encoding="utf-8")


async def run(*args: str, cwd: Path, env: dict | None = None, timeout: float = 90) -> tuple[int, str, str]:
    """Run the CLI without blocking the event loop that serves the scripted web."""
    full_env = {**os.environ, "LINKHEALTH_CHECK_BACKOFF_BASE": "0.01", "LINKHEALTH_CHECK_BACKOFF_MAX": "0.05",
                "LINKHEALTH_CHECK_RETRY_AFTER_CAP": "1.5",
                # A host's pause after a verification page is 5 s and more (checker.pace, tested
                # in test_pace.py / test_schedule.py); these tests are about the other stages.
                "LINKHEALTH_CHECK_HOST_PAUSE_MAX": "0.2", **(env or {})}
    proc = await asyncio.create_subprocess_exec(*LINKHEALTH, *args, cwd=cwd, env=full_env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode("utf-8"), err.decode("utf-8")


def web_args(web: SimWeb, ca_file: str) -> list[str]:
    args = ["--ca-file", ca_file, "--timeout", "2", "--retries", "2"]
    for rule in web.connect_to:
        args += ["--connect-to", rule]
    return args


@pytest.fixture(scope="module")
def server_ssl(tls_ca: trustme.CA):
    """The scripted web's certificate, valid also for every host of the fixture page index."""
    import ssl
    index = tomllib.loads((PAGES / "index.toml").read_text("utf-8"))["page"]
    hosts = {entry["host"] for entry in index}
    hosts |= {urlsplit(e["redirect"]["to"]).hostname for e in index if e.get("redirect", {}).get("to", "").startswith("http")}
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert(*TLS_NAMES, *sorted(hosts - set(TLS_NAMES))).configure_cert(context)
    return context


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A working directory with no config file (built-in defaults)."""
    (tmp_path / "work").mkdir()
    return tmp_path / "work"


async def test_audit_reports_every_case_in_json_and_database(web, ca_file, project):
    write_notes(project / "notes", [c[0] for c in CASES])
    code, out, err = await run("audit", "notes", "--format", "json", "-o", "out.json",
                               *web_args(web, ca_file), cwd=project)
    assert code == 1, err                    # failing links found
    data = json.loads((project / "out.json").read_text(encoding="utf-8"))
    assert data["schema"] == 1
    links = {link["url"]: link for link in data["links"]}
    for url, status, http_status, final_url, title in CASES:
        link = links[url]
        assert link["status"] == status, (url, link)
        assert link["http_status"] == http_status, (url, link)
        if final_url:
            assert link["final_url"] == final_url, (url, link)
        if title:
            assert link["title"] == title, (url, link)
        if status not in ("ok", "redirect"):
            assert link["error"] or link["http_status"], (url, link)
        assert link["occurrences"], url
    assert links["https://github.com/title"]["occurrences"] == [
        {"file": "notes/a.md", "line": 3}, {"file": "notes/sub/b.markdown", "line": 27}]
    assert "mailto" in links["mailto:someone@example.com"]["error"] or \
        links["mailto:someone@example.com"]["status"] == "excluded"
    assert "malformed" in links["h1ttps://www.example.com/typo"]["error"]
    # retries worked: /flaky/1 was asked twice, the 429 route twice
    assert web.hits["/flaky/1"] == 2 and web.hits["/ratelimited/1"] == 2
    # the private address was never contacted (no request reached the server for it)
    assert web.hits["/internal"] == 0

    db = sqlite3.connect(project / ".linkhealth" / "linkhealth.db")
    rows = dict(db.execute("select url, status from links").fetchall())
    assert rows["https://github.com/title"] == "ok"
    assert rows["https://example.com/hang"] == "timeout"
    checks = db.execute("select count(*), count(distinct link_id) from checks").fetchone()
    assert checks[0] == checks[1] == len(CASES)          # one check per unique URL
    run_row = db.execute("select kind, state, links_total, links_checked from runs").fetchall()
    assert run_row == [("audit", "done", len(CASES), len(CASES))]
    assert (project / ".linkhealth" / "report.html").stat().st_size > 1000


async def test_site_rule_fixture_pages_end_to_end(web, ca_file, project):
    """Every page of the classifier's fixture index, served under its real hostname."""
    index = tomllib.loads((PAGES / "index.toml").read_text(encoding="utf-8"))["page"]
    urls = []
    for entry in index:
        body = (PAGES / entry["file"]).read_bytes()
        headers = dict(entry.get("headers", {}))
        ctype = entry.get("content_type", "text/html; charset=utf-8")
        redirect = entry.get("redirect")
        if redirect:
            # The scripted web answers by path on every host; a target on another host
            # (a captcha or visitor wall) is reached through the same --connect-to.
            web.page(entry["path"].split("?")[0], b"", status=redirect["status"], headers={"Location": redirect["to"]})
            web.page(urlsplit(redirect["to"]).path, body, status=entry.get("status", 200), headers=headers,
                     content_type=ctype)
        else:
            web.page(entry["path"].split("?")[0], body, status=entry.get("status", 200), headers=headers,
                     content_type=ctype)
        urls.append(f"https://{entry['host']}{entry['path']}")
    write_notes(project / "notes", urls)
    # This test is about verdicts, not politeness (tests/test_pace.py, test_schedule.py):
    # - several fixtures of one host are verification pages that refuse every time: in a
    #   row they would set the host aside and leave its other fixtures unchecked for the
    #   next run (checker.schedule), so no host is set aside here;
    # - the pauses after those refusals are capped at 50 ms (a refused URL is still
    #   re-queued and re-asked exactly as in a real run, only sooner);
    # - the built-in rules run from a copy whose starting pace is fast: the real one makes
    #   mp.weixin.qq.com start at one request a second (the test took 75 s). Every marker,
    #   host and title source is the built-in one, byte for byte.
    fast = FAST_START.sub(r'\1 = "5ms"', BUILTIN_RULES.read_text(encoding="utf-8"))
    assert fast != BUILTIN_RULES.read_text(encoding="utf-8")
    (project / "rules.toml").write_text(fast, encoding="utf-8")
    env = {"LINKHEALTH_CHECK_HOST_SET_ASIDE_AFTER": "1000", "LINKHEALTH_CHECK_HOST_PAUSE_MAX": "0.05",
           "LINKHEALTH_HEALTH_BUILTIN_RULES": "false", "LINKHEALTH_HEALTH_RULES_FILES": "rules.toml"}
    code, out, err = await run("audit", "notes", "--format", "json", "-o", "out.json", "--fail-on", "never",
                               *web_args(web, ca_file), cwd=project, env=env, timeout=180)
    assert code == 0, err
    links = {link["url"]: link for link in json.loads((project / "out.json").read_text("utf-8"))["links"]}
    for entry, url in zip(index, urls):
        link = links[url]
        assert link["status"] == entry["expect_status"], (entry["file"], link)
        if "expect_title" in entry:
            assert (link["title"] or "") == entry["expect_title"], (entry["file"], link)
        if "expect_error" in entry:
            assert entry["expect_error"] in (link["error"] or ""), (entry["file"], link)
        if "expect_final_url" in entry:
            assert link["final_url"] == entry["expect_final_url"], (entry["file"], link)
        if "expect_at_risk" in entry:
            assert link["at_risk"] == entry["expect_at_risk"], (entry["file"], link)


async def test_text_summary_and_exit_codes(web, ca_file, project):
    write_notes(project / "notes", ["https://github.com/title", "https://example.com/404"])
    code, out, err = await run("audit", "notes", *web_args(web, ca_file), cwd=project)
    assert code == 1
    assert "broken" in out and "notes/sub/b.markdown:3" in out and "https://example.com/404" in out
    code, out, _ = await run("audit", "notes", "--fail-on", "never", *web_args(web, ca_file), cwd=project)
    assert code == 0
    code, out, _ = await run("audit", "notes", "--fail-on", "dead", *web_args(web, ca_file), cwd=project)
    assert code == 0                          # one failure is suspect, not a confirmed death


async def test_recheck_after_skips_fresh_links_but_never_caches_failures(web, ca_file, project):
    write_notes(project / "notes", ["https://github.com/title", "https://example.com/404"])
    args = ["audit", "notes", "--fail-on", "never", *web_args(web, ca_file)]
    assert (await run(*args, cwd=project))[0] == 0
    assert (await run(*args, "--recheck-after", "1h", cwd=project))[0] == 0
    assert web.hits["/title"] == 1            # fresh success served from the database
    assert web.hits["/404"] == 2              # a failure is checked again


async def test_interrupted_audit_keeps_finished_checks(web, ca_file, project):
    fast = [f"https://example.com/slow/{10 + i}" for i in range(6)]
    write_notes(project / "notes", fast + ["https://example.com/hang"])
    env = {**os.environ, "LINKHEALTH_CHECK_BACKOFF_BASE": "0.01"}
    proc = await asyncio.create_subprocess_exec(
        *LINKHEALTH, "audit", "notes", "--timeout", "30", *web_args(web, ca_file)[:2],
        *sum((["--connect-to", r] for r in web.connect_to), []), cwd=project, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    for _ in range(200):                      # wait until the fast pages are done
        await asyncio.sleep(0.05)
        if all(web.hits[f"/slow/{10 + i}"] for i in range(6)) and web.hits["/hang"]:
            break
    await asyncio.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err.decode()
    db = sqlite3.connect(project / ".linkhealth" / "linkhealth.db")
    done = db.execute("select count(*) from checks where status = 'ok'").fetchone()[0]
    assert done == 6
    assert db.execute("select state, links_checked from runs").fetchone() == ("interrupted", 6)
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
    code, _, _ = await run("audit", "notes", "--recheck-after", "1h", "--timeout", "1", "--retries", "0",
                           "--fail-on", "never", *web_args(web, ca_file)[:2],
                           *sum((["--connect-to", r] for r in web.connect_to), []), cwd=project)
    assert code == 0
    assert all(web.hits[f"/slow/{10 + i}"] == 1 for i in range(6))   # not redone


async def test_bad_inputs_exit_2_with_what_and_where(project, tmp_path):
    code, _, err = await run("audit", "no-such-folder", cwd=project)
    assert code == 2 and "no-such-folder" in err
    db = sqlite3.connect(project / ".linkhealth" / "linkhealth.db")
    assert db.execute("select state, message from runs").fetchall() == [("failed", "no-such-folder: no such file or folder")]
    (project / "bad.toml").write_text("[check]\nper_host = = 3\n", encoding="utf-8")
    (project / "notes").mkdir()
    code, _, err = await run("audit", "notes", "--config", "bad.toml", cwd=project)
    assert code == 2 and "bad.toml:2" in err
    (project / "unknown.toml").write_text("[check]\nperhost = 3\n", encoding="utf-8")
    code, _, err = await run("audit", "notes", "--config", "unknown.toml", cwd=project)
    assert code == 2 and "check.perhost" in err and "unknown.toml" in err
    code, _, err = await run("audit", "notes", "--connect-to", "nonsense", cwd=project)
    assert code == 2 and "nonsense" in err
    assert len(err.strip().splitlines()) == 1


async def test_binary_notes_are_skipped_and_non_utf8_notes_read_with_a_notice(web, ca_file, project):
    notes = project / "notes"
    notes.mkdir()
    (notes / "good.md").write_text("https://github.com/title\n", encoding="utf-8")
    (notes / "binary.md").write_bytes(b"\x00\x01\x02https://example.com/404")
    (notes / "latin1.md").write_bytes("caf\xe9 https://example.com/410".encode("latin-1"))
    (notes / "gbk.md").write_bytes("旧笔记：https://example.com/404 还在。\n".encode("gbk"))
    code, out, err = await run("audit", "notes", *web_args(web, ca_file), cwd=project)
    assert code == 1, (out, err)
    assert "skipped notes/binary.md" in err and "skipped notes/latin1.md" not in err
    assert err.count("not UTF-8") == 1 and "notes/gbk.md" in err and "gb18030" in err
    assert "3 notes, 3 references" in out and "1 note skipped" in out
    assert web.hits["/404"] == 1 and web.hits["/410"] == 1


async def test_extract_jsonl(project):
    notes = project / "notes"
    notes.mkdir()
    (notes / "n.md").write_text("# T\n\n见[文档](https://example.com/a_(b))和 https://example.org/x。\n\n"
                                "`curl https://example.net/in-code`\n", encoding="utf-8")
    code, out, err = await run("extract", "notes", "--format", "jsonl", cwd=project)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [
        {"file": "notes/n.md", "line": 3, "col": 7, "url": "https://example.com/a_(b)", "kind": "link",
         "in_code": False},
        {"file": "notes/n.md", "line": 3, "col": 35, "url": "https://example.org/x", "kind": "bare",
         "in_code": False},
    ]
    code, out, _ = await run("extract", "notes", "--format", "jsonl", "--include-code", cwd=project)
    assert json.loads(out.splitlines()[-1])["in_code"] is True


async def test_relative_links_are_checked_against_the_site_root(project):
    site = project / "site"
    (site / "images").mkdir(parents=True)
    (site / "images" / "here.png").write_bytes(b"\x89PNG\r\n")
    notes = site / "_posts"
    notes.mkdir()
    (notes / "p.md").write_text("![](/images/here.png)\n\n![](/images/gone.png)\n\n[x](../images/here.png)\n",
                                encoding="utf-8")
    (project / "lh.toml").write_text('[notes]\nsite_root = "site"\n', encoding="utf-8")
    code, out, err = await run("audit", "site/_posts", "--config", "lh.toml", "--format", "json", cwd=project)
    assert code == 1, err
    links = {link["url"]: link for link in json.loads(out)["links"]}
    assert links["/images/here.png"]["status"] == "ok"
    # ../images/here.png from _posts/ is the same file: one link, cited twice
    assert [o["line"] for o in links["/images/here.png"]["occurrences"]] == [1, 5]
    assert links["/images/gone.png"]["status"] == "broken"
    assert "missing file" in links["/images/gone.png"]["error"]
    # Without a site root they are excluded, not failing.
    code, out, _ = await run("audit", "site/_posts", "--format", "json", cwd=project)
    assert code == 0
    assert {link["status"] for link in json.loads(out)["links"]} == {"excluded"}


async def test_terminal_summary_prints_hostile_text_literally(web, ca_file, project):
    """Markup-like URLs and control characters in errors neither crash nor reach the terminal raw."""
    web.page("/gone[/red]x", "<title>x</title>", status=404)
    write_notes(project / "notes", ["https://example.com/gone[/red]x", "https://mp.weixin.qq.com/s/Weird01"])
    web.page("/s/Weird01", '<title></title><div class="weui-msg"><h2 class="weui-msg__title">'
                           "该内容已被发布者删除\x1b[2J\x07</h2></div>")
    code, out, err = await run("audit", "notes", *web_args(web, ca_file), cwd=project)
    assert code == 1, err
    assert "https://example.com/gone[/red]x" in out
    assert "\x1b" not in out and "\x07" not in out
    assert "该内容已被发布者删除" in out


async def test_structured_output_is_utf8_whatever_the_locale(project):
    notes = project / "notes"
    notes.mkdir()
    # A malformed URL: reported as broken without any network traffic.
    (notes / "笔记.md").write_text("百科：h1ttps://baike.baidu.com/item/图灵机\n", encoding="utf-8")
    env = {"PYTHONIOENCODING": "latin-1", "LC_ALL": "C"}
    code, out, err = await run("extract", "notes", "--format", "jsonl", cwd=project, env=env)
    assert code == 0, err
    assert json.loads(out)["url"] == "h1ttps://baike.baidu.com/item/图灵机"
    code, out, err = await run("audit", "notes", "--fail-on", "never", cwd=project, env=env)
    assert code == 0, err                     # no UnicodeEncodeError: escaped on a latin-1 terminal
    assert "\\u56fe\\u7075\\u673a" in out


async def test_hostile_pages_are_results_not_the_end_of_the_run(web, ca_file, project):
    """Odd charsets, a lone surrogate in a JS title, a Retry-After of '²': each link gets
    a status, the other links are checked, and the run exits 1 (failing), not with a crash."""
    from aiohttp import web as aioweb

    web.page("/utf16", b"<title>x</title>", content_type="text/html; charset=utf-16")
    web.page("/b64", b'<meta charset="base64"><title>Base</title>', content_type="text/html")
    web.page("/s/Surrogate01", '<html><head><title></title><script>var msg_title = "a\\ud800b";</script>'
                               '</head><body><div id="js_content">正文</div></body></html>')

    async def odd_retry_after(request):
        return aioweb.Response(status=503, headers={"Retry-After": "²"})
    web.route("/odd-retry", odd_retry_after)
    urls = ["https://example.com/utf16", "https://example.com/b64", "https://mp.weixin.qq.com/s/Surrogate01",
            "https://example.com/odd-retry", "https://github.com/title"]
    write_notes(project / "notes", urls)
    code, out, err = await run("audit", "notes", "--format", "json", "-o", "out.json", *web_args(web, ca_file),
                               cwd=project)
    assert code == 1, err
    links = {link["url"]: link for link in json.loads((project / "out.json").read_text("utf-8"))["links"]}
    assert links["https://github.com/title"]["status"] == "ok"
    assert links["https://example.com/utf16"]["status"] == "ok"
    assert links["https://example.com/b64"]["title"] == "Base"
    assert links["https://mp.weixin.qq.com/s/Surrogate01"]["status"] == "ok"
    assert links["https://mp.weixin.qq.com/s/Surrogate01"]["title"].startswith("a")
    assert links["https://example.com/odd-retry"]["status"] == "broken"


async def test_recheck_after_does_not_serve_exclusions_from_cache(web, ca_file, project):
    """Settings changed since the last run (here --allow-private) take effect at once."""
    write_notes(project / "notes", [f"http://127.0.0.1:{web.http_port}/title"])
    code, out, _ = await run("audit", "notes", "--format", "json", cwd=project)
    assert code == 0 and json.loads(out)["links"][0]["status"] == "excluded"
    code, out, _ = await run("audit", "notes", "--format", "json", "--recheck-after", "1d", "--allow-private",
                             cwd=project)
    assert code == 0 and json.loads(out)["links"][0]["status"] == "ok"


async def test_extract_never_sends_control_characters_to_the_terminal(project):
    notes = project / "notes"
    notes.mkdir()
    (notes / "esc.md").write_text("a \x1b]0;pwned\x07 b \x1b[2J\n\nsee \x1b[31mhttp://note.test/x\x1b[0m\n",
                                  encoding="utf-8")
    (notes / "name\x1b[2J.md").write_text("http://note.test/y\n", encoding="utf-8")
    code, out, err = await run("extract", "notes", cwd=project)
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "\thttp://note.test/x\n" in out and "mhttp" not in out
    assert "name\ufffd[2J.md:1:1\tbare\thttp://note.test/y" in out
async def test_random_sibling_probe_end_to_end(web, ca_file, project):
    """A host that answers every path with the same page: its links are soft 404s, found
    with one extra request for that host; a normal host costs one extra request too, and
    keeps its verdicts. The run records how many extra requests the probe made."""
    web.same_page_everywhere("same.example.com", (PAGES / "same_page.html").read_bytes())
    urls = [f"https://same.example.com/notes/{i}.html" for i in range(4)] + ["https://example.com/title",
                                                                             "https://example.com/og"]
    write_notes(project / "notes", urls)
    code, out, err = await run("audit", "notes", "--format", "json", "-o", "out.json", "--fail-on", "never",
                               "--per-host", "1", *web_args(web, ca_file), cwd=project)
    assert code == 0, err
    links = {link["url"]: link for link in json.loads((project / "out.json").read_text("utf-8"))["links"]}
    for url in urls[:4]:
        assert links[url]["status"] == "soft404" and "random-sibling" in links[url]["error"], links[url]
    assert links["https://example.com/title"]["status"] == "ok"
    assert links["https://example.com/og"]["status"] == "ok"
    decoys = [r for r in web.requests if r[2].endswith(".html") and r[2].count("/") == 2
              and not r[2].startswith("/notes/")]
    assert sorted(r[1].split(":")[0] for r in decoys) == ["example.com", "same.example.com"]
    db = sqlite3.connect(project / ".linkhealth" / "linkhealth.db")
    counts = json.loads(db.execute("select counts from runs").fetchone()[0])
    assert counts["sibling_probes"] == 2
    # Switched off: no extra request, and the same-page host's links stay ok.
    before = len(web.requests)
    code, out, err = await run("audit", "notes", "--format", "json", "--fail-on", "never",
                               *web_args(web, ca_file), cwd=project, env={"LINKHEALTH_HEALTH_SIBLING_PROBE": "false"})
    assert code == 0, err
    assert len(web.requests) - before == len(urls)
    assert {link["status"] for link in json.loads(out)["links"]} == {"ok"}
