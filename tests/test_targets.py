"""Targets: normalisation keys, the filter's skip causes, and grouping duplicates."""

from __future__ import annotations

from pathlib import Path

import pytest

from checker.models import Cause, Kind, Reference
from checker.settings import Settings
from checker.targets import dedupe, is_file_target, normalize, plan, to_target


@pytest.mark.parametrize("url, key", [
    ("HTTP://Example.COM:80", "http://example.com/"),
    ("https://x.example:443/a#frag", "https://x.example/a"),
    ("https://x.example:8443/a", "https://x.example:8443/a"),
    ("https://baike.baidu.com/item/图灵机", "https://baike.baidu.com/item/%E5%9B%BE%E7%81%B5%E6%9C%BA"),
    ("https://baike.baidu.com/item/%e5%9b%be%e7%81%b5%e6%9c%ba", "https://baike.baidu.com/item/%E5%9B%BE%E7%81%B5%E6%9C%BA"),
    ("http://例子.中国/", "http://xn--fsqu00a.xn--fiqs8s/"),
    ("http://a.example/%7Euser/", "http://a.example/~user/"),
    ("http://a.example/609%20dropbox/(pdf)/", "http://a.example/609%20dropbox/(pdf)/"),
    ("https://mp.weixin.qq.com/s?__biz=MzA&mid=2&idx=1#rd", "https://mp.weixin.qq.com/s?__biz=MzA&mid=2&idx=1"),
    ("www.python.org/about", "http://www.python.org/about"),
])
def test_normalize(url: str, key: str) -> None:
    assert normalize(url) == key


@pytest.mark.parametrize("url", ["http://", "http://x.example:abc/", "https:///path"])
def test_normalize_rejects_malformed(url: str) -> None:
    with pytest.raises(ValueError):
        normalize(url)


def _t(url: str, settings: Settings | None = None, kind: Kind = Kind.BARE):
    return to_target(Reference("n.md", 1, 1, url, kind), settings or Settings())


@pytest.mark.parametrize("url, cause, detail", [
    ("h1ttps://www.zhihu.com/question/1", Cause.INVALID_URL, "malformed URL: scheme 'h1ttps' is not a known scheme"),
    ("http://", Cause.INVALID_URL, "malformed URL: no host"),
    ("http://bad host.example/", Cause.INVALID_URL, "malformed URL: host"),
    ("git://anongit.freedesktop.org/x", Cause.EXCLUDED_SCHEME, "scheme 'git' is not checked"),
    ("mailto:a@python.org", Cause.EXCLUDED_SCHEME, "scheme 'mailto'"),
    ("ftp://mirrors.example/gnu/", Cause.EXCLUDED_SCHEME, "scheme 'ftp'"),
    ("http://127.0.0.1:9090", Cause.PRIVATE_ADDRESS, "127.0.0.1 is a loopback address"),
    ("http://192.168.1.1/", Cause.PRIVATE_ADDRESS, "private"),
    ("http://[fe80::1]/", Cause.PRIVATE_ADDRESS, "link-local"),
    ("http://localhost/cgi-bin/x", Cause.PRIVATE_ADDRESS, "loopback name"),
])
def test_skip_causes(url: str, cause: Cause, detail: str) -> None:
    target = _t(url)
    assert target.skip is cause
    assert detail in target.skip_detail
    assert target.display_url == url


def test_public_http_is_checked() -> None:
    target = _t("https://Mp.Weixin.QQ.com/s/AbC#x")
    assert (target.url, target.host, target.skip) == ("https://mp.weixin.qq.com/s/AbC", "mp.weixin.qq.com", None)


def test_allow_private_and_connect_to() -> None:
    assert _t("http://10.0.0.1/", Settings().with_overrides({"check.allow_private": True})).skip is None
    named = Settings().with_overrides({"check.connect_to": ("127.0.0.1:80:127.0.0.1:8080",)})
    assert _t("http://127.0.0.1/", named).skip is None


def test_exclude_pattern() -> None:
    settings = Settings().with_overrides({"check.exclude": (r"^https?://pan\.baidu\.com/",)})
    target = _t("https://pan.baidu.com/s/1zc", settings)
    assert target.skip is Cause.EXCLUDED_PATTERN and "pan" in target.skip_detail


def test_relative_links(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"png")
    (tmp_path / "_posts").mkdir()
    note = tmp_path / "_posts" / "p.md"
    without = to_target(Reference(str(note), 1, 1, "/images/a.png", Kind.RELATIVE), Settings(), note_path=note)
    assert without.skip is Cause.EXCLUDED_SCHEME and "site_root" in without.skip_detail
    settings = Settings().with_overrides({"notes.site_root": str(tmp_path)})
    ok = to_target(Reference(str(note), 1, 1, "/images/a.png", Kind.RELATIVE), settings, note_path=note)
    up = to_target(Reference(str(note), 1, 1, "../images/a.png#x", Kind.RELATIVE), settings, note_path=note)
    missing = to_target(Reference(str(note), 1, 1, "/images/gone.png", Kind.RELATIVE), settings, note_path=note)
    assert is_file_target(ok) and is_file_target(up) and ok.url == up.url
    assert missing.skip is Cause.MISSING_FILE
    assert missing.skip_detail == f"missing file: {(tmp_path / 'images' / 'gone.png').as_posix()}"


def test_dedupe_and_plan() -> None:
    refs = [Reference("a.md", 1, 1, "https://baike.baidu.com/item/图灵机", Kind.BARE),
            Reference("b.md", 3, 1, "https://BAIKE.baidu.com/item/%E5%9B%BE%E7%81%B5%E6%9C%BA#top", Kind.LINK),
            Reference("b.md", 4, 1, "h1ttps://x", Kind.BARE),
            Reference("b.md", 5, 1, "h1ttps://x", Kind.BARE)]
    groups = dedupe(refs)
    assert [len(g) for g in groups.values()] == [2, 2]
    planned = plan(refs, Settings())
    assert planned[0][0].display_url == "https://baike.baidu.com/item/图灵机"
    assert planned[1][0].skip is Cause.INVALID_URL


def test_from_stored_looks_at_site_files_again(tmp_path):
    from checker.targets import from_stored, is_file_target
    settings = Settings()
    present = tmp_path / "here.png"
    present.write_bytes(b"x")
    target = from_stored(present.resolve().as_uri(), "/here.png", "", settings)
    assert target.skip is None and is_file_target(target)
    present.unlink()
    gone = from_stored(present.resolve().as_uri(), "/here.png", "", settings)
    assert gone.skip is Cause.MISSING_FILE and "missing file" in gone.skip_detail
    back = tmp_path / "back.png"
    missing_key = f"missing:{back.as_posix()}"
    assert from_stored(missing_key, "/back.png", "", settings).skip is Cause.MISSING_FILE
    back.write_bytes(b"x")
    revived = from_stored(missing_key, "/back.png", "", settings)
    assert revived.skip is None and is_file_target(revived) and revived.url == missing_key


def test_from_stored_applies_the_current_filters():
    from checker.targets import from_stored
    allowed = Settings().with_overrides({"check.allow_private": True})
    assert from_stored("http://127.0.0.1/x", "http://127.0.0.1/x", "127.0.0.1", Settings()).skip \
        is Cause.PRIVATE_ADDRESS
    assert from_stored("http://127.0.0.1/x", "http://127.0.0.1/x", "127.0.0.1", allowed).skip is None


@pytest.mark.parametrize("url, key", [
    ("http://x.com/a/../b", "http://x.com/b"),
    ("http://x.com/./a", "http://x.com/a"),
    ("http://x.com/a/b/..", "http://x.com/a/"),
    ("http://x.com/../../a", "http://x.com/a"),
    ("http://x.com/a.b/c..d/...", "http://x.com/a.b/c..d/..."),
    ("http://x.com/a/b/../../c?x=../y", "http://x.com/c?x=../y"),
])
def test_dot_segments_are_removed_from_the_key(url, key):
    assert normalize(url) == key
