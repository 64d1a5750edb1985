"""Classification of fixture pages under the default site rules (no network: Probes built from files)."""

from __future__ import annotations

import random
import tomllib
from pathlib import Path

import pytest

from checker import classify as classify_module
from checker.classify import classify, generic_status, random_path_url, same_page
from checker.models import Cause, Hop, Probe, Status, Target
from checker.rules import load_rules, parse_rules, RuleSet
from checker.settings import HealthSettings

PAGES = Path(__file__).parent / "fixtures" / "pages"
MAX_BODY = 256 * 1024
INDEX = tomllib.loads((PAGES / "index.toml").read_text(encoding="utf-8"))["page"]
GENERIC_CHECKS = ("generic:999", "generic:cloudflare", "generic:redirect-to-root",
                  "generic:not-found-redirect", "generic:not-found-title", "generic:anti-bot-status",
                  "generic:verification-redirect", "generic:visitor-redirect", "generic:login-redirect",
                  "generic:verification-page")


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules(HealthSettings())


def decode(raw: bytes, charset: str) -> tuple[str, bool]:
    """What the engine hands the classifier: text decoded from at most MAX_BODY bytes."""
    return raw[:MAX_BODY].decode(charset, "replace"), len(raw) > MAX_BODY


def probe_for(entry: dict, *, title: str | None = None) -> tuple[Target, Probe]:
    """A Target and the Probe the engine would produce for one index entry."""
    url = f"https://{entry['host']}{entry['path']}"
    body, truncated = decode((PAGES / entry["file"]).read_bytes(), entry.get("charset", "utf-8"))
    redirect = entry.get("redirect")
    hops: tuple[Hop, ...] = ()
    final_url = url
    if redirect:
        to = redirect["to"]
        final_url = to if to.startswith("http") else f"https://{entry['host']}{to}"
        hops = (Hop(url, redirect["status"]), Hop(final_url, entry.get("status", 200)))
    content_type = entry.get("content_type", "text/html; charset=utf-8")
    headers = [("content-type", content_type)] + [(k.lower(), v) for k, v in entry.get("headers", {}).items()]
    probe = Probe(url=url, http_status=entry.get("status", 200), final_url=final_url, redirects=hops,
                  headers=tuple(headers), content_type=content_type, title=title, body=body,
                  body_truncated=truncated, cause=None if entry.get("status", 200) < 400 else Cause.HTTP_STATUS)
    return Target(url=url, display_url=url, host=entry["host"]), probe


def entry_id(entry: dict) -> str:
    return f"{entry['file']}@{entry['host']}"


@pytest.mark.parametrize("entry", INDEX, ids=entry_id)
def test_fixture_page_gets_expected_verdict(entry, rules):
    target, probe = probe_for(entry)
    verdict = classify(target, probe, rules)
    assert verdict.status == Status(entry["expect_status"]), verdict
    if "expect_title" in entry:
        assert verdict.title == (entry["expect_title"] or None)
    if "expect_error" in entry:
        assert entry["expect_error"] in (verdict.error or ""), verdict
    if "expect_final_url" in entry:
        assert verdict.final_url == entry["expect_final_url"]
    if "expect_at_risk" in entry:
        assert verdict.at_risk is entry["expect_at_risk"]
    if verdict.status in (Status.OK, Status.REDIRECT) and verdict.rule is None:
        assert verdict.error is None


@pytest.mark.parametrize("entry", INDEX, ids=entry_id)
def test_fixture_triggers_and_guards(entry, rules):
    target, probe = probe_for(entry)
    verdict = classify(target, probe, rules)
    rule = rules.match(target.url)
    for name in entry.get("triggers", []):
        if name.endswith(":at_risk"):
            assert rule is not None and rule.name == name.rsplit(":", 1)[0] and rule.at_risk
        else:
            assert verdict.rule == name, verdict
    for name in entry.get("guards", []):
        if name.endswith(":at_risk"):
            assert rule is None or rule.name != name.rsplit(":", 1)[0]
        else:
            assert verdict.rule != name, verdict


def test_every_default_rule_has_a_triggering_and_a_guarding_fixture(rules):
    needed = set(GENERIC_CHECKS)
    for rule in rules.rules:
        names = [f"{rule.name}:{m.name}" for m in rule.blocked + rule.soft404]
        if rule.blocked_statuses:
            names.append(f"{rule.name}:blocked_statuses")
        if not names:
            assert rule.at_risk, f"rule {rule.name} does nothing"
            names.append(f"{rule.name}:at_risk")
        needed.update(names)
    triggered = {n for e in INDEX for n in e.get("triggers", [])}
    guarded = {n for e in INDEX for n in e.get("guards", [])}
    assert needed - triggered == set()
    assert needed - guarded == set()
    for entry in INDEX:
        assert (PAGES / entry["file"]).is_file(), entry["file"]


def test_rule_title_wins_over_the_engine_title(rules):
    entry = next(e for e in INDEX if e["file"] == "wechat_live.html")
    target, probe = probe_for(entry, title="深入理解注意力机制")
    assert classify(target, probe, rules).title == "深入理解注意力机制 & 实践"


def test_engine_title_used_without_rule(rules):
    target = Target("https://example.org/a", "https://example.org/a", "example.org")
    probe = Probe(url=target.url, http_status=200, final_url=target.url, title="From engine", body=None)
    verdict = classify(target, probe, rules)
    assert (verdict.status, verdict.title, verdict.rule, verdict.at_risk) == (Status.OK, "From engine", None, False)


def test_gone_notice_with_live_marker_never_fires(rules):  # see also test_live_marker_wins_and_the_verdict_says_so
    body = ('<html><head><title></title></head><body><div class="weui-msg">该内容已被发布者删除</div>'
            '<div id="js_content"><p>正文</p></div></body></html>')
    target = Target("https://mp.weixin.qq.com/s/x", "https://mp.weixin.qq.com/s/x", "mp.weixin.qq.com")
    probe = Probe(url=target.url, http_status=200, final_url=target.url, body=body)
    assert classify(target, probe, rules).status is Status.OK


def test_zhihu_json_anti_bot_with_200_is_blocked(rules):
    body = (PAGES / "zhihu_10003.json").read_text(encoding="utf-8")
    url = "https://www.zhihu.com/api/v4/answers/1"
    probe = Probe(url=url, http_status=200, final_url=url, content_type="application/json", body=body)
    verdict = classify(Target(url, url, "www.zhihu.com"), probe, rules)
    assert verdict.status is Status.BLOCKED
    assert "10003" in verdict.error and verdict.rule == "zhihu:anti-bot JSON"


def test_zhihu_403_json_keeps_marker_error(rules):
    entry = next(e for e in INDEX if e["file"] == "zhihu_40362.json")
    target, probe = probe_for(entry)
    verdict = classify(target, probe, rules)
    assert verdict.status is Status.BLOCKED and "40362" in verdict.error


def test_large_gbk_page_matches_markers_within_the_byte_limit():
    # A 5 MB GBK page: the engine keeps its first 256 KiB; a marker there fires, one past it cannot.
    rules = RuleSet(rule for rule, _ in parse_rules(
        '[[rule]]\nname = "old"\nhosts = ["bbs.example.cn"]\n'
        '[[rule.soft404]]\nname = "gone"\ntext = ["帖子已被删除"]\n'
        '[[rule.blocked]]\nname = "late"\ntext = ["验证码"]\n', source="test"))
    filler = "<p>" + "论坛旧帖内容" * 40 + "</p>\n"
    head = '<html><head><meta charset="gbk"><title>旧帖</title></head><body><p>帖子已被删除</p>'
    raw = (head + filler * 20000 + "<p>验证码</p></body></html>").encode("gbk")
    assert len(raw) > 5_000_000
    body, truncated = decode(raw, "gbk")
    url = "http://bbs.example.cn/t/1"
    probe = Probe(url=url, http_status=200, final_url=url, body=body, body_truncated=truncated)
    verdict = classify(Target(url, url, "bbs.example.cn"), probe, rules)
    assert truncated and verdict.status is Status.SOFT404 and verdict.error == "帖子已被删除 [old:gone]"
    assert verdict.title == "旧帖"


def test_live_article_is_classified_without_parsing(rules, monkeypatch):
    calls = []
    real = classify_module.lxml.html.document_fromstring
    monkeypatch.setattr(classify_module.lxml.html, "document_fromstring",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    for name in ("wechat_live.html", "wechat_quote_long.html", "zhihu_live.html", "zhihu_quote_long.html"):
        entry = next(e for e in INDEX if e["file"] == name)
        classify(*probe_for(entry), rules)
    assert calls == []


@pytest.mark.parametrize("cause,detail,status", [
    (Cause.INVALID_URL, "bad port", Status.BROKEN),
    (Cause.MISSING_FILE, "no such file", Status.BROKEN),
    (Cause.PRIVATE_ADDRESS, "loopback address", Status.EXCLUDED),
    (Cause.EXCLUDED_SCHEME, "ftp:// is not checked", Status.EXCLUDED),
    (Cause.EXCLUDED_PATTERN, "matches check.exclude", Status.EXCLUDED),
])
def test_skipped_targets(cause, detail, status, rules):
    target = Target("http://x:99999/", "http://x:99999/", "x", skip=cause, skip_detail=detail)
    verdict = classify(target, Probe(url=target.url), rules)
    assert (verdict.status, verdict.error) == (status, detail)


def _p(code=None, cause=None, final=None, hops=()):
    return Probe(url="https://a.example/x", http_status=code, cause=cause,
                 final_url=final or ("https://a.example/x" if code else None), redirects=hops)


@pytest.mark.parametrize("probe,status", [
    (_p(200), Status.OK),
    (_p(204), Status.OK),
    (_p(200, final="https://a.example/y", hops=(Hop("https://a.example/x", 301),)), Status.REDIRECT),
    (_p(200, final="https://a.example/y", hops=(Hop("https://a.example/x", 308),)), Status.REDIRECT),
    (_p(200, final="https://a.example/y", hops=(Hop("https://a.example/x", 302),)), Status.OK),
    (_p(401, Cause.HTTP_STATUS), Status.BLOCKED),
    (_p(403, Cause.HTTP_STATUS), Status.BLOCKED),
    (_p(429, Cause.HTTP_STATUS), Status.BLOCKED),
    (_p(404, Cause.HTTP_STATUS), Status.BROKEN),
    (_p(410, Cause.HTTP_STATUS), Status.BROKEN),
    (_p(503, Cause.HTTP_STATUS), Status.BROKEN),
    (_p(None, Cause.READ_TIMEOUT), Status.TIMEOUT),
    (_p(None, Cause.CONNECT_TIMEOUT), Status.TIMEOUT),
    (_p(None, Cause.DNS), Status.UNREACHABLE),
    (_p(None, Cause.REFUSED), Status.UNREACHABLE),
    (_p(None, Cause.TLS), Status.UNREACHABLE),
    (_p(None, Cause.DISCONNECTED), Status.UNREACHABLE),
    (_p(None, Cause.TOO_MANY_REDIRECTS), Status.BROKEN),
    (_p(None, Cause.PRIVATE_ADDRESS), Status.EXCLUDED),
])
def test_generic_status_table(probe, status):
    assert generic_status(probe) is status
    assert classify_module._fallback_status(probe) is status


def test_redirect_to_root_only_for_deep_links(rules):
    url = "https://www.example.com/"
    probe = Probe(url="http://example.com/", http_status=200, final_url=url,
                  redirects=(Hop("http://example.com/", 301),), body="<title>Home</title>")
    verdict = classify(Target("http://example.com/", "http://example.com/", "example.com"), probe, rules)
    assert verdict.status is Status.REDIRECT


def _page(url: str, body: str, title: str = "Not here", status: int = 404) -> Probe:
    return Probe(url=url, http_status=status, final_url=url, title=title, body=body)


def test_same_page_recognises_one_template():
    template = "<html><title>Not here</title><body><p>We could not find {path}. Request {rid}.</p></body></html>"
    a = _page("https://s.example/post/deleted-story", template.format(path="/post/deleted-story", rid=123), status=200)
    b = _page("https://s.example/q8z1x/q8z1.html", template.format(path="/q8z1x/q8z1.html", rid=98765), status=200)
    assert same_page(a, b)


def test_same_page_tells_different_pages_apart():
    a = _page("https://s.example/post/1", "<p>A long story about rivers and mountains</p>", "Rivers", 200)
    b = _page("https://s.example/zz/zz.html", "<p>Nothing here, sorry, try search</p>", "Not here", 200)
    assert not same_page(a, b)
    assert not same_page(_page("https://s.example/a", "x", status=200), _page("https://s.example/b", "x", status=404))


def test_random_path_url_stays_on_the_host():
    url = random_path_url("https://blog.example.net:8443/2020/01/post.html?x=1", random.Random(7))
    assert url.startswith("https://blog.example.net:8443/") and "post" not in url and "?" not in url
    assert url != random_path_url("https://blog.example.net:8443/a", random.Random(8))


def test_transport_failure_on_a_rule_host_keeps_status_and_flag(rules):
    url = "https://mp.weixin.qq.com/s/TimeoutFixture"
    probe = Probe(url=url, cause=Cause.READ_TIMEOUT, error="no answer within 20 s")
    verdict = classify(Target(url, url, "mp.weixin.qq.com"), probe, rules)
    assert (verdict.status, verdict.error, verdict.at_risk, verdict.rule) == (
        Status.TIMEOUT, "no answer within 20 s", True, None)


# Generic soft-404 checks: what fires, and the live pages that must not (a checker that
# calls a live page dead is worse than none).
@pytest.mark.parametrize("url, final, title, expected", [
    ("https://en.wikipedia.org/wiki/HTTP_404", None, "HTTP 404 - Wikipedia", "ok"),
    ("https://blog.example.org/nginx", None, "How to fix nginx 404 errors", "ok"),
    ("https://stackoverflow.com/q/12345",
     "https://stackoverflow.com/questions/12345/nginx-returns-404-for-static-files", "Q", "redirect"),
    ("https://stackoverflow.com/q/1", "https://stackoverflow.com/questions/1/module-not-found-error", "Q",
     "redirect"),
    ("http://blog.example.org/?p=42", "https://blog.example.org/?p=42", "A post", "redirect"),
    ("https://bit.ly/3abcd", "https://www.python.org/", "Welcome to Python.org", "redirect"),
    ("https://site.example/post/1", "https://site.example/", "Home", "soft404"),
    ("https://www.site.example/post/1", "https://site.example/", "Home", "soft404"),
    ("https://site.example/?p=42", "https://site.example/", "Home", "soft404"),
    ("https://site.example/post/1", "https://site.example/404.html", "Gone", "soft404"),
    ("https://site.example/post/1", "https://site.example/error/404", "Gone", "soft404"),
    ("https://site.example/a", None, "404 Not Found | 小站", "soft404"),
    ("https://site.example/a", None, "404", "soft404"),
    ("https://site.example/a", None, "Error 404", "soft404"),
    ("https://site.example/a", None, "Page not found – Site", "soft404"),
    ("https://site.example/a", None, "bash: command not found 的几种解决办法", "ok"),
    # error pages after a redirect (DeadlinkChecker's "REDIRECT TO 404", and /error pages)
    ("https://site.example/a/1", "https://site.example/error?code=404", "出错了", "soft404"),
    ("https://site.example/a/2", "https://site.example/error/404", "出错了", "soft404"),
    ("https://site.example/a/3", "https://site.example/static/404/index.html", "出错了", "soft404"),
    ("https://site.example/a/4", "https://site.example/special/error_isp.html", "网易", "soft404"),
    ("https://site.example/a/5", "https://site.example/notfound.htm?uri=/a/5", "腾讯网", "soft404"),
    # ... but a deep page named Error, or an article about errors, is not one
    ("https://developer.mozilla.org/en-US/docs/Web/JavaScript/Reference/Global_Objects/error",
     "https://developer.mozilla.org/en-US/docs/Web/JavaScript/Reference/Global_Objects/Error",
     "Error - JavaScript | MDN", "redirect"),
    ("https://site.example/old/errors", "https://site.example/guide/error-handling.html", "Error handling", "redirect"),
    ("https://site.example/old/x", "https://site.example/docs/errors/404-handling", "Handling 404s", "redirect"),
])
def test_generic_soft404_checks(url, final, title, expected):
    hops = (Hop(url, 301),) if final else ()
    body = f"<html><head><title>{title}</title></head><body>text</body></html>"
    probe = Probe(url=url, http_status=200, final_url=final or url, redirects=hops, title=title, body=body,
                  content_type="text/html")
    verdict = classify(Target(url, url, url.split("/")[2]), probe, load_rules(HealthSettings()))
    assert verdict.status.value == expected, verdict


def test_marker_statuses_guard_limits_a_marker_to_those_statuses():
    rules = RuleSet(rule for rule, _ in parse_rules(
        '[[rule]]\nname = "ex"\nhosts = ["ex.example"]\n'
        '[[rule.blocked]]\nname = "login wall"\nstatuses = [403]\ntext = ["Sign in"]\n', source="test"))
    url = "https://ex.example/p/1"
    page = "<html><head><title>Post</title></head><body><a>Sign in</a> to comment</body></html>"
    live = Probe(url=url, http_status=200, final_url=url, body=page, content_type="text/html")
    wall = Probe(url=url, http_status=403, final_url=url, body=page, content_type="text/html")
    assert classify(Target(url, url, "ex.example"), live, rules).status is Status.OK
    assert classify(Target(url, url, "ex.example"), wall, rules).status is Status.BLOCKED


def test_short_live_zhihu_article_quoting_a_deletion_phrase_stays_ok():
    url = "https://zhuanlan.zhihu.com/p/1"
    body = ('<html><head><title>短文</title></head><body><div class="RichText ztext Post-RichText">'
            "<p>有人说“文章不存在”，其实不然。</p></div></body></html>")
    probe = Probe(url=url, http_status=200, final_url=url, body=body, content_type="text/html")
    verdict = classify(Target(url, url, "zhuanlan.zhihu.com"), probe, load_rules(HealthSettings()))
    assert verdict.status is Status.OK


# Stress signs (checker.classify.stress_sign): what says "you are going too fast", apart
# from dead and from walls that refuse every robot whatever the pace.
STRESS = [
    ("wechat_captcha.html", "wechat:verification redirect"),
    ("wechat_env_check.html", "wechat:environment check"),
    ("wechat_verify_continue.html", "wechat:verify to continue"),
    ("wechat_script_verify.html", "wechat:script verification"),
    ("wechat_too_frequent.html", "wechat:too frequent"),
    ("zhihu_unhuman.html", "zhihu:unhuman check"),
    ("zhihu_10003.json", "zhihu:anti-bot JSON"),
    ("github_rate_limit.html", "github:rate limit"),
    ("baidu_captcha.html", "baidu:security check"),
    ("security_check.html", "generic:verification-redirect"),
    ("verification_title.html", "generic:verification-page"),
    ("antibot_412.html", "generic:anti-bot-status"),
    ("bilibili_412.html", "bilibili:blocked_statuses"),
    ("cloudflare_challenge.html", "generic:cloudflare"),
    ("linkedin_999.html", "generic:999"),
    # not stress: gone, walls, a refusal of this client whatever the pace, live pages
    ("wechat_deleted.html", None),
    ("weibo_visitor.html", None),
    ("login_page.html", None),
    ("visitor_page.html", None),
    ("x_400.html", None),
    ("browser_unsupported_400.html", None),
    ("zhihu_403.html", None),
    ("wechat_live.html", None),
    ("wechat_quote_short.html", None),
]


@pytest.mark.parametrize("file,sign", STRESS, ids=[s[0] for s in STRESS])
def test_stress_sign(file, sign, rules):
    entry = next(e for e in INDEX if e["file"] == file)
    target, probe = probe_for(entry)
    assert classify_module.stress_sign(target, probe, rules) == sign
    if sign is not None:
        assert classify(target, probe, rules).status is Status.BLOCKED


def test_stress_sign_for_pace_statuses(rules):
    url = "https://example.org/a"
    target = Target(url, url, "example.org")
    assert classify_module.stress_sign(target, Probe(url=url, http_status=429), rules) == "http:429"
    busy = Probe(url=url, http_status=503, headers=(("retry-after", "30"),))
    assert classify_module.stress_sign(target, busy, rules) == "http:503"
    assert classify_module.stress_sign(target, Probe(url=url, http_status=503), rules) is None
    assert classify_module.stress_sign(target, Probe(url=url, http_status=404), rules) is None


def test_live_marker_wins_and_the_verdict_says_so(rules):
    body = ('<html><head><title></title></head><body><div class="weui-msg">该内容已被发布者删除</div>'
            '<div id="js_content"><p>正文</p></div></body></html>')
    url = "https://mp.weixin.qq.com/s/LiveWins"
    verdict = classify(Target(url, url, "mp.weixin.qq.com"),
                       Probe(url=url, http_status=200, final_url=url, body=body), rules)
    assert verdict.status is Status.OK and verdict.rule == "wechat:live"
    assert "#js_content" in verdict.error and "wechat:gone" in verdict.error


def test_rule_decided_errors_name_the_marker(rules):
    entry = next(e for e in INDEX if e["file"] == "wechat_deleted.html")
    verdict = classify(*probe_for(entry), rules)
    assert verdict.error == "该内容已被发布者删除 [wechat:gone]"


def test_explain_lists_every_marker_and_the_generic_checks(rules):
    entry = next(e for e in INDEX if e["file"] == "wechat_picture_post.html")
    checks = classify_module.explain(*probe_for(entry), rules)
    fired = {name for name, _, matched in checks if matched is not None}
    assert fired == {"wechat:live picture_page_info_list", "wechat:gone"}
    assert checks[-2][0] == "generic blocked checks" and checks[-1][0] == "generic soft-404 checks"


def test_live_marker_beats_a_generic_soft404_check(rules):
    url = "https://zhuanlan.zhihu.com/p/404"
    body = ('<html><head><title>404</title></head><body><div class="RichText ztext">'
            "<p>一篇题为 404 的随笔。</p></div></body></html>")
    verdict = classify(Target(url, url, "zhuanlan.zhihu.com"),
                       Probe(url=url, http_status=200, final_url=url, body=body), rules)
    assert verdict.status is Status.OK and verdict.rule == "zhihu:live"
    assert "generic:not-found-title" in verdict.error
    # The same page without the live marker is a soft 404.
    bare = body.replace('class="RichText ztext"', 'class="x"')
    verdict = classify(Target(url, url, "zhuanlan.zhihu.com"),
                       Probe(url=url, http_status=200, final_url=url, body=bare), rules)
    assert verdict.status is Status.SOFT404 and verdict.rule == "generic:not-found-title"


def test_fast_url_path_agrees_with_urlsplit():
    from urllib.parse import urlsplit
    from checker.generic import url_path
    rng = random.Random(5)
    urls = ["https://a.com#f/x", "https://a.com/a?b#c?d", "https://u@a.com:8/p?x=1", "mailto:x@y", "https://a.com"]
    urls += ["https://h.com" + "".join(rng.choice("/?#&=ab.%@:") for _ in range(rng.randint(0, 12)))
             for _ in range(5000)]
    for url in urls:
        parts = urlsplit(url)
        assert url_path(url) == parts.path + ("?" + parts.query if parts.query else ""), url


def test_error_page_marker_names_a_broken_page_only_for_its_statuses():
    rules = RuleSet(rule for rule, _ in parse_rules("""
[[rule]]
name = "site"
hosts = ["example.org"]
[[rule.soft404]]
name = "named 404"
statuses = [404]
text = ["no such page here"]
[[rule.soft404]]
name = "unguarded"
text = ["gone for good"]
""", source="t.toml"))
    body = "<html><title>x</title><body>no such page here; gone for good</body></html>"
    target = Target("https://example.org/a", "https://example.org/a", "example.org")

    def verdict(code: int):
        probe = Probe(url=target.url, http_status=code, final_url=target.url, body=body,
                      error=f"HTTP {code}", cause=Cause.HTTP_STATUS)
        return classify(target, probe, rules)

    named = verdict(404)
    assert (named.status, named.rule) == (Status.BROKEN, "site:named 404")
    assert named.error == "HTTP 404: no such page here [site:named 404]"
    other = verdict(410)                        # not in the marker's statuses: the plain error
    assert (other.status, other.rule, other.error) == (Status.BROKEN, None, "HTTP 410")


def test_host_rule_wins_over_a_generator_rule(rules):
    body = (PAGES / "wordpress_404.html").read_text(encoding="utf-8")
    for url, rule in (("https://notes.example-wp.net/a", "wordpress:404 template"),
                      ("https://someone.github.io/a", "generic:not-found-title")):   # github pages' rule there
        target = Target(url, url, url.split("/")[2])
        probe = Probe(url=url, http_status=200, final_url=url, body=body)
        verdict = classify(target, probe, rules)
        assert verdict.rule == rule, verdict
        assert verdict.at_risk is rule.startswith("generic")   # a generator rule never flags at risk


# A bare #id selector is decided by a regex when the tag it finds is plain markup, else
# by lxml: the two must agree on pages that tempt a regex.
_ID_PIECES = [
    '<div id="js_content">', "<div id='js_content'>", "<div id=js_content>", '<DIV ID="js_content" class=x>',
    '<div id="JS_CONTENT">', '<div id="js_content2">', '<div data-id="js_content">', '<div xid="js_content">',
    "<script>var s = '<div id=\"js_content\">';</script>", "<script>", "<!-- <div id=\"js_content\"> -->", "<!--",
    '<meta content="<div id=\'js_content\'>">', '<p title="a>b" id="js_content">', "<p>it's", "text js_content",
    "</div>", '<![CDATA[<div id="js_content">]]>', "<textarea>", "</textarea>", '<span id="js_content"/>',
    '<div class="x" id = "js_content">', '<div id="js_content x">',
]


def test_bare_id_selector_agrees_with_the_parser() -> None:
    import random
    from checker.classify import _Page
    from checker.rules import _Builder
    selector = _Builder("", "test", 0, {"name": "t"}).selector("#js_content", "live")
    assert selector.id_tag is not None
    rng = random.Random(5)
    for _ in range(3000):
        body = "<html><body>" + "".join(rng.choice(_ID_PIECES) for _ in range(rng.randint(0, 6))) + "</body></html>"
        probe = Probe(url="https://mp.weixin.qq.com/s/x", body=body)
        tree = _Page(probe).tree()
        parsed = tree is not None and bool(selector.compiled(tree))
        assert _Page(probe).has(selector) is parsed, body
