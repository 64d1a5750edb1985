"""Loading, validating and matching site rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from checker.errors import ConfigError
from checker.models import HostPolicy
from checker.rules import load_rules, parse_rules
from checker.settings import HealthSettings

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "rules.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(*files: str, builtin: bool = True):
    return load_rules(HealthSettings(rules_files=tuple(files), builtin_rules=builtin))


def test_builtin_rules_load_and_are_package_data():
    rules = load()
    assert [r.name for r in rules.rules] == ["wechat", "zhihu", "blog platforms", "news and feeds",
                                                 "document sharing", "google", "douban", "stack exchange", "sourceforge",
                                                 "bilibili",
                                             "baidu", "weibo", "github", "x", "github pages",
                                             "wikipedia", "read the docs", "wordpress", "discuz", "mediawiki",
                                             "dokuwiki"]
    wechat = rules.get("wechat")
    assert wechat.at_risk and [m.name for m in wechat.soft404] == ["migrated", "gone"]
    assert (ROOT / "checker" / "data" / "rules.toml").is_file()


def test_shipped_example_file_loads_on_top_of_builtins():
    rules = load(str(ROOT / "config" / "rules.toml"))
    assert rules.get("wechat") is not None
    forum = rules.match("https://bbs.example-forum.cn/thread/42")
    assert forum is not None and forum.name == "example forum" and forum.at_risk
    assert rules.match("https://bbs.example-forum.cn/about") is None
    assert rules.host_policy("bbs.example-forum.cn") == HostPolicy(
        per_host=1, interval=2.0, headers=(("Referer", "https://bbs.example-forum.cn/"),))


@pytest.mark.parametrize("url,name", [
    ("https://mp.weixin.qq.com/s/abc", "wechat"),
    ("http://MP.WEIXIN.QQ.COM/s?__biz=x", "wechat"),
    ("https://zhuanlan.zhihu.com/p/1", "zhihu"),
    ("https://www.zhihu.com/question/1", "zhihu"),
    ("https://zhihu.com/", "zhihu"),
    ("https://notzhihu.com/", None),
    ("https://weixin.qq.com/", None),
    ("https://someone.github.io/post", "github pages"),
    ("https://someone.gitee.io/post", "blog platforms"),
    ("https://github.com/someone", "github"),
    ("https://m.weibo.cn/status/1", "weibo"),
    ("https://www.163.com/dy/article/X.html", "news and feeds"),
    ("https://baike.baidu.com/item/x", "baidu"),
    ("https://www.baidu.com/s?wd=x", None),
    ("https://example.com/", None),
    ("not a url", None),
    ("http://[::1/", None),
])
def test_match_by_host_and_subdomain(url, name):
    rule = load().match(url)
    assert (rule.name if rule else None) == name


def test_most_specific_rule_wins(tmp_path):
    path = write(tmp_path, """
[[rule]]
name = "site"
hosts = ["example.com"]
[[rule]]
name = "blog"
hosts = ["blog.example.com"]
[[rule]]
name = "posts"
hosts = ["example.com"]
path = "^/p/"
[[rule]]
name = "old posts"
hosts = ["example.com"]
path = "^/p/20(0|1)"
""")
    rules = load(path, builtin=False)
    assert rules.match("https://example.com/x").name == "site"
    assert rules.match("https://example.com/p/2020").name == "posts"
    assert rules.match("https://example.com/p/2009").name == "old posts"
    assert rules.match("https://blog.example.com/p/2009").name == "blog"     # longer host first
    assert rules.match("https://www.example.com/x").name == "site"


def test_later_file_replaces_and_disables(tmp_path):
    path = write(tmp_path, """
[[rule]]
name = "wechat"
hosts = ["mp.weixin.qq.com"]
at_risk = false
[[rule]]
name = "blog platforms"
enabled = false
""")
    rules = load(path)
    assert not rules.at_risk("https://mp.weixin.qq.com/s/x")
    assert rules.get("blog platforms") is None and rules.match("https://x.gitee.io/") is None
    assert rules.at_risk("https://www.zhihu.com/q")


def test_builtin_rules_can_be_switched_off(tmp_path):
    assert len(load(builtin=False)) == 0


def test_at_risk_and_host_policy_defaults():
    rules = load()
    assert rules.at_risk("https://blog.csdn.net/a/article/details/1")
    assert not rules.at_risk("https://pytorch.org/docs")
    assert rules.host_policy("example.org") == HostPolicy()


def test_rule_values_are_compiled(tmp_path):
    path = write(tmp_path, """
[[rule]]
name = "r"
hosts = ["Example.COM."]
interval = "500ms"
compare_random_path = true
per_host = 2
blocked_statuses = [403, 999]
title = ["js:pageTitle", "meta:og:title", "css:h1.title", "title"]
[[rule.soft404]]
text = "gone"
selectors = ["div.notice"]
max_body = 100
""")
    rule = load(path, builtin=False).get("r")
    assert rule.hosts == ("example.com",) and rule.interval == 0.5 and rule.per_host == 2
    assert rule.blocked_statuses == {403, 999} and rule.compare_random_path
    assert [t.kind for t in rule.title] == ["js", "meta", "css", "title"]
    marker = rule.soft404[0]
    assert marker.text == ("gone",) and marker.name == "soft404 #1"
    assert marker.selectors[0].prefilter == "notice"


BAD = [
    ("unknown rule key", '[[rule]]\nname = "r"\nhosts = ["a.com"]\nat_rsik = true\n', "at_rsik", 4),
    ("unknown marker key", '[[rule]]\nname = "r"\nhosts = ["a.com"]\n\n[[rule.soft404]]\ntext = ["x"]\n'
     'max_len = 3\n', "max_len", 7),
    ("bad regex", '[[rule]]\nname = "r"\nhosts = ["a.com"]\n[[rule.blocked]]\nregex = "(unclosed"\n', "regex", 5),
    ("bad path regex", '[[rule]]\nname = "r"\nhosts = ["a.com"]\npath = "[a-"\n', "path", 4),
    ("bad selector", '[[rule]]\nname = "r"\nhosts = ["a.com"]\n[[rule.soft404]]\nselectors = ["div[[x"]\n',
     "selectors", 5),
    ("bad live selector", '[[rule]]\nname = "r"\nhosts = ["a.com"]\nlive = ["#"]\n', "live", 4),
    ("bad title source", '[[rule]]\nname = "r"\nhosts = ["a.com"]\ntitle = ["xpath://h1"]\n', "title", 4),
    ("no hosts", '[[rule]]\nname = "r"\n', "hosts", 1),
    ("no name", '[[rule]]\nhosts = ["a.com"]\n', "name", 1),
    ("wrong type", '[[rule]]\nname = "r"\nhosts = ["a.com"]\nat_risk = "yes"\n', "at_risk", 4),
    ("bad status", '[[rule]]\nname = "r"\nhosts = ["a.com"]\nblocked_statuses = [42]\n', "blocked_statuses", 4),
    ("bad interval", '[[rule]]\nname = "r"\nhosts = ["a.com"]\ninterval = "soon"\n', "interval", 4),
    ("marker without condition", '[[rule]]\nname = "r"\nhosts = ["a.com"]\n[[rule.soft404]]\nname = "x"\n',
     "soft404", 4),
    ("bad redirect_js", '[[rule]]\nname = "r"\nhosts = ["a.com"]\n[[rule.soft404]]\ntext = "x"\n'
     'redirect_js = "a b"\n', "redirect_js", 6),
    ("unknown top-level", 'rules = 1\n', "rules", None),
    ("stress on a soft404 marker", '[[rule]]\nname = "r"\nhosts = ["a.com"]\n[[rule.soft404]]\ntext = "x"\n'
     'stress = true\n', "stress", 6),
    ("stress not a boolean", '[[rule]]\nname = "r"\nhosts = ["a.com"]\n[[rule.blocked]]\ntext = "x"\n'
     'stress = "no"\n', "stress", 6),
    ("source not a string", '[[rule]]\nname = "r"\nhosts = ["a.com"]\nsource = ["a"]\n', "source", 4),
    ("bad live_text", '[[rule]]\nname = "r"\nhosts = ["a.com"]\nlive_text = [1]\n', "live_text", 4),
    ("compare_random_path not a boolean", '[[rule]]\nname = "r"\nhosts = ["a.com"]\ncompare_random_path = 1\n',
     "compare_random_path", 4),
    ("hosts and generator", '[[rule]]\nname = "r"\nhosts = ["a.com"]\ngenerator = "WordPress"\n', "generator", 4),
    ("empty generator", '[[rule]]\nname = "r"\ngenerator = [" "]\n', "generator", 3),
    ("generator not a string", '[[rule]]\nname = "r"\ngenerator = 3\n', "generator", 3),
    ("at_risk on a generator rule", '[[rule]]\nname = "r"\ngenerator = "Discuz!"\nat_risk = true\n', "at_risk", 4),
    ("per_host on a generator rule", '[[rule]]\nname = "r"\ngenerator = "Discuz!"\nper_host = 2\n', "per_host", 4),
]


@pytest.mark.parametrize("label,text,key,line", BAD, ids=[b[0] for b in BAD])
def test_bad_rules_file_names_file_rule_key_and_line(tmp_path, label, text, key, line):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path, builtin=False)
    err = info.value
    assert err.source == path and err.key == key and err.line == line
    assert path in str(err) and repr(key) in str(err)
    if "name" in text and key != "rules":
        assert "rule 'r'" in str(err)


def test_second_rule_errors_point_at_its_own_lines(tmp_path):
    text = ('[[rule]]\nname = "a"\nhosts = ["a.com"]\n[[rule.soft404]]\ntext = "x"\n\n'
            '[[rule]]\nname = "b"\nhosts = ["b.com"]\n[[rule.soft404]]\ntext = "y"\n'
            '[[rule.soft404]]\ntext = "z"\nregex = "("\n')
    with pytest.raises(ConfigError) as info:
        parse_rules(text, source="f.toml")
    assert info.value.line == 14 and "rule 'b' [[rule.soft404]] #2" in str(info.value)


def test_toml_syntax_error_has_line(tmp_path):
    path = write(tmp_path, '[[rule]]\nname = r\nhosts = ["a.com"]\n')
    with pytest.raises(ConfigError) as info:
        load(path, builtin=False)
    assert info.value.line == 2 and "TOML" in str(info.value)


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load(str(tmp_path / "nope.toml"))
    path = tmp_path / "gbk.toml"
    path.write_bytes('[[rule]]\nname = "规则"\n'.encode("gbk"))
    with pytest.raises(ConfigError, match="UTF-8"):
        load(str(path))


def test_every_builtin_rule_cites_its_source_and_hosts_are_not_shared():
    rules = load()
    seen: dict[str, str] = {}
    for rule in rules.rules:
        assert len(rule.cite) > 20, f"rule {rule.name} cites no source"
        for host in rule.hosts:
            assert host not in seen, f"{host} is in rules {seen[host]!r} and {rule.name!r}: only the first would apply"
            seen[host] = rule.name


def test_new_keys_are_compiled():
    (rule, _), = parse_rules('[[rule]]\nname = "r"\nhosts = ["a.com"]\nlive_text = ["var ok"]\nsource = "here"\n'
                             '[[rule.blocked]]\nname = "wall"\ntext = "sign in"\nstress = false\nsource = "there"\n'
                             '[[rule.blocked]]\nname = "captcha"\ntext = "captcha"\n', source="t")
    assert rule.live_text == ("var ok",) and rule.cite == "here" and rule.compare_random_path is None
    assert [(m.name, m.stress, m.cite) for m in rule.blocked] == [("wall", False, "there"), ("captcha", True, "")]


def test_generator_rule_matches_the_page_not_the_host(tmp_path):
    path = write(tmp_path, """
[[rule]]
name = "site"
hosts = ["example.com"]
[[rule]]
name = "wp"
generator = "WordPress"
[[rule.soft404]]
selectors = ["body.error404"]
""")
    rules = load(path, builtin=False)
    wp = rules.get("wp")
    assert wp.hosts == () and wp.generator == ("WordPress",) and rules.page_rules == (wp,)
    assert rules.match("https://blog.example.org/x") is None          # never by URL
    head = "<html><head><meta content='WordPress 6.4' name=generator></head><body></body></html>"
    assert rules.match_page(head) is wp
    assert rules.match_page('<meta name="generator" content="Hugo 0.120">') is None
    assert rules.match_page("<p>Made with WordPress</p>") is None     # no generator meta
    assert rules.match_page(" " * 40000 + head) is None               # only the first 32 KiB
