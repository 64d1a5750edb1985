"""`linkhealth rules` and `linkhealth rules test`, run as the real binary."""

from __future__ import annotations

from pathlib import Path

from test_audit import PAGES, run, web_args


async def test_rules_lists_hosts_markers_and_sources(tmp_path: Path):
    code, out, err = await run("rules", cwd=tmp_path)
    assert code == 0, err
    assert "wechat (at risk)" in out and "mp.weixin.qq.com" in out and "airyland/we-extract" in out
    assert "live:    picture_page_info_list" in out and "blocked: HTTP 403, unhuman check" in out


async def test_rules_lists_a_users_rule_file(tmp_path: Path):
    (tmp_path / "my.toml").write_text('[[rule]]\nname = "my forum"\nhosts = ["bbs.example.cn"]\n'
                                      'source = "seen on 2024-05-01"\n[[rule.soft404]]\ntext = ["帖子已删除"]\n',
                                      encoding="utf-8")
    (tmp_path / "lh.toml").write_text('[health]\nrules_files = ["my.toml"]\n', encoding="utf-8")
    code, out, err = await run("rules", "--config", "lh.toml", cwd=tmp_path)
    assert code == 0, err
    assert "my forum  from my.toml" in out and "seen on 2024-05-01" in out


async def test_bad_rule_file_exits_2_naming_file_rule_and_key(tmp_path: Path):
    (tmp_path / "lh.toml").write_text('[health]\nrules_files = ["bad.toml"]\n', encoding="utf-8")
    cases = {
        "regex": '[[rule]]\nname = "r1"\nhosts = ["a.cn"]\n[[rule.soft404]]\nregex = "(oops"\n',
        "colour": '[[rule]]\nname = "r1"\nhosts = ["a.cn"]\ncolour = "red"\n',
        "selectors": '[[rule]]\nname = "r1"\nhosts = ["a.cn"]\n[[rule.blocked]]\nselectors = ["div[[x"]\n',
    }
    for key, text in cases.items():
        (tmp_path / "bad.toml").write_text(text, encoding="utf-8")
        commands = [("rules",)] + ([("rules", "test", str(PAGES / "home.html"))] if key == "regex" else [])
        for args in commands:
            code, out, err = await run(*args, "--config", "lh.toml", cwd=tmp_path)
            assert code == 2, (key, args, err)
            assert "bad.toml" in err and "rule 'r1'" in err and repr(key) in err, err
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


async def test_rules_test_on_a_saved_page(tmp_path: Path):
    code, out, err = await run("rules", "test", str(PAGES / "wechat_deleted.html"),
                               "--url", "https://mp.weixin.qq.com/s/abc", cwd=tmp_path)
    assert code == 0, err
    assert "rule:     wechat" in out and "status:   soft404" in out and "decided:  wechat:gone" in out
    assert "fires soft404  wechat:gone  (该内容已被发布者删除)" in out
    # The same page without --url: no site rule, generic checks only.
    code, out, err = await run("rules", "test", str(PAGES / "wechat_deleted.html"), cwd=tmp_path)
    assert code == 0 and "no site rule" in out and "status:   ok" in out
    code, out, err = await run("rules", "test", str(PAGES / "bilibili_412.html"), "--status", "412",
                               "--url", "https://www.bilibili.com/video/BV1", cwd=tmp_path)
    assert "status:   blocked" in out and "decided:  bilibili:blocked_statuses" in out


async def test_rules_test_says_the_live_marker_decided(tmp_path: Path):
    code, out, err = await run("rules", "test", str(PAGES / "wechat_picture_post.html"),
                               "--url", "https://mp.weixin.qq.com/s/pic", cwd=tmp_path)
    assert code == 0, err
    assert "status:   ok" in out and "decided:  wechat:live" in out
    assert "fires live     wechat:live picture_page_info_list" in out and "fires soft404  wechat:gone" in out


async def test_rules_test_fetches_a_url_now(web, ca_file, tmp_path: Path):
    web.page("/s/FetchedNow01", (PAGES / "wechat_violation.html").read_bytes())
    code, out, err = await run("rules", "test", "https://mp.weixin.qq.com/s/FetchedNow01",
                               *web_args(web, ca_file)[:2], *sum((["--connect-to", c] for c in web.connect_to), []),
                               cwd=tmp_path)
    assert code == 0, err
    assert "HTTP:     200" in out and "status:   soft404" in out and "此内容因违规无法查看" in out
    assert web.hits["/s/FetchedNow01"] == 1


async def test_rules_test_missing_file_exits_2(tmp_path: Path):
    code, out, err = await run("rules", "test", "no-such.html", cwd=tmp_path)
    assert code == 2 and "no-such.html" in err
