"""Charset decoding and title extraction (checker.page)."""

from __future__ import annotations

import pytest

from checker.page import charset_from_content_type, decode_body, extract_title, is_html

GBK_HTML = "<html><head><title>中文标题：编码测试</title></head><body>这是国标码页面，测试一下。</body></html>"


@pytest.mark.parametrize("content_type, expected", [
    ("text/html", True),
    ("text/html; charset=utf-8", True),
    ("application/xhtml+xml", True),
    (None, True),
    ("application/pdf", False),
    ("image/png", False),
    ("application/json", False),
])
def test_is_html(content_type: str | None, expected: bool) -> None:
    assert is_html(content_type) is expected


def test_charset_from_content_type() -> None:
    assert charset_from_content_type('text/html; charset="GBK"') == "gbk"
    assert charset_from_content_type("text/html") is None


@pytest.mark.parametrize("raw, content_type", [
    (GBK_HTML.encode("gbk"), "text/html; charset=gbk"),
    (GBK_HTML.encode("gb2312"), "text/html; charset=gb2312"),
    (GBK_HTML.replace("<head>", '<head><meta charset="gb2312">').encode("gbk"), "text/html"),
    (GBK_HTML.replace("<head>", '<head><meta http-equiv="Content-Type" content="text/html; charset=GBK">')
     .encode("gbk"), "text/html"),
    (GBK_HTML.encode("gbk"), "text/html"),                  # undeclared: detected
    (GBK_HTML.encode("utf-8"), "text/html"),                # undeclared UTF-8
    (b"\xef\xbb\xbf" + GBK_HTML.encode("utf-8"), "text/html; charset=gbk"),   # BOM wins
])
def test_decode_body_finds_the_charset(raw: bytes, content_type: str) -> None:
    assert "中文标题：编码测试" in decode_body(raw, content_type)


def test_decode_truncated_utf8_drops_split_character() -> None:
    raw = "<title>标题</title>".encode("utf-8")[:-9]    # cut inside 题
    assert decode_body(raw, "text/html; charset=utf-8", truncated=True) == "<title>标"


def test_unknown_declared_charset_falls_back() -> None:
    assert "标题" in decode_body("<title>标题</title>".encode("utf-8"), "text/html; charset=x-nonsense")


@pytest.mark.parametrize("html, expected", [
    ("<html><head><title>Hello</title></head><body></body></html>", "Hello"),
    ("<title>  many \n  spaces\t</title>", "many spaces"),
    ("<title>Tom &amp; Jerry &lt;3</title>", "Tom & Jerry <3"),
    ('<head><title></title><meta property="og:title" content="微信文章"></head>', "微信文章"),
    ('<head><meta property="og:title" content="OG wins only when title is empty"><title>T</title></head>', "T"),
    ("<html><body><p>no title here</p></body></html>", None),
    ("<body><title>late title</title></body>", "late title"),
    ("", None),
    ("<title>" + "x" * 2000 + "</title>", "x" * 500),
])
def test_extract_title(html: str, expected: str | None) -> None:
    assert extract_title(html) == expected


def test_extract_title_ignores_huge_body_after_head() -> None:
    html = "<html><head><title>Fast</title></head><body>" + "<div>y</div>" * 100_000
    assert extract_title(html) == "Fast"
