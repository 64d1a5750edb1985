"""Charset decoding and title extraction (checker.page)."""

from __future__ import annotations

import codecs
import random

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


UTF16_HTML = "<html><head><title>双字节 UTF-16 标题</title></head><body>正文</body></html>"


@pytest.mark.parametrize("raw, content_type", [
    (codecs.BOM_UTF16_LE + UTF16_HTML.encode("utf-16-le"), "text/html"),            # BOM, no label
    (codecs.BOM_UTF16_BE + UTF16_HTML.encode("utf-16-be"), "text/html; charset=utf-8"),   # BOM wins
    (codecs.BOM_UTF16_LE + UTF16_HTML.encode("utf-16-le"), "text/html; charset=utf-16"),
    (UTF16_HTML.encode("utf-16-le"), "text/html; charset=utf-16"),    # the label alone means LE
    (UTF16_HTML.encode("utf-16-be"), "text/html; charset=UTF-16BE"),
])
def test_utf16_pages_get_their_title(raw: bytes, content_type: str) -> None:
    assert extract_title(decode_body(raw, content_type)) == "双字节 UTF-16 标题"


def test_utf16_in_a_meta_tag_means_utf8() -> None:
    # HTML's prescan read the <meta> as ASCII bytes: the page cannot be UTF-16.
    raw = '<meta charset="utf-16"><title>标题</title>'.encode("utf-8")
    assert extract_title(decode_body(raw, "text/html")) == "标题"


@pytest.mark.parametrize("content_type, raw", [
    ("text/html; charset=utf-7", b"<title>+ADw-script+AD4-alert(1)+ADw-/script+AD4-</title>"),
    ("text/html", b'<meta charset="UTF-7"><title>+ADw-script+AD4-x+ADw-/script+AD4-</title>'),
])
def test_utf7_is_not_an_encoding_of_the_web(content_type: str, raw: bytes) -> None:
    # UTF-7 is no WHATWG label: browsers read these bytes as they are, never as "<script>".
    text = decode_body(raw, content_type)
    assert "<script" not in text and "+ADw-script" in text


@pytest.mark.parametrize("label", ["iso-2022-kr", "hz-gb-2312", "ISO-2022-CN", "csiso2022kr"])
def test_replacement_labels_decode_to_one_replacement_character(label: str) -> None:
    # Encoding Standard: these labels name the "replacement" encoding (HZ can smuggle
    # "<script>" past filters: "~{" switches a decoder into GB2312 mode).
    raw = b"<title>~{<:Ky2;S{#,~}~{<script>~}</title>"
    assert decode_body(raw, f"text/html; charset={label}") == "\ufffd"
    assert decode_body(b"", f"text/html; charset={label}") == ""


@pytest.mark.parametrize("label, codec", [
    ("latin1", "cp1252"), ("ascii", "cp1252"), ("gb2312", "gb18030"), ("x-gbk", "gb18030"),
    ("shift_jis", "cp932"), ("euc-kr", "cp949"), ("big5", "big5hkscs"), (" KOI8-R ", "koi8_r"),
])
def test_labels_map_to_the_standard_decoders(label: str, codec: str) -> None:
    from checker.charsets import python_codec, whatwg_encoding
    assert python_codec(whatwg_encoding(label)) == codec


@pytest.mark.parametrize("label", ["utf-7", "utf7", "base64", "rot13", "idna", "utf-32", "unicode-escape",
                                   "x-nonsense", ""])
def test_labels_browsers_refuse_are_no_labels(label: str) -> None:
    from checker.charsets import whatwg_encoding
    assert whatwg_encoding(label) is None


# The title is read with a regex where that finds what the parser finds, else by lxml.
# Pieces of heads that tempt a regex: titles inside scripts, comments, CDATA, attributes,
# noscript, svg, textarea, unclosed raw-text elements, empty titles before og:title.
_HEAD_PIECES = [
    "<title>A &amp; B</title>", "<title>  标题 \n x</title>", "<title></title>", "<TITLE lang=zh>大写</TITLE>",
    "<script>var t='<title>fake</title>';</script>", "<!-- <title>c</title> -->", "<style>p{}</style>",
    '<meta property="og:title" content="OG &amp; t">', "<title>a<b>b</b></title>",
    "<noscript><title>ns</title></noscript>", "<svg><title>icon</title></svg>", "<script>", "<!--",
    "<title>x &lt;3 &amp;lt; &nbsp; y</title>", "<title-x>no</title-x>", "<meta charset=utf-8>",
    "<title>&#x4e2d;&#25991;</title>", "<title>\u00a0</title>", "<head>", "</head>", "<body>", "text",
    '<meta content="<title>attr</title>">', "<SCRIPT>x</SCRIPT>", "</script>", "<![CDATA[<title>cd</title>]]>",
    "<xmp><title>x</title></xmp>", "<textarea>", "<title>t1</title><title>t2</title>", "<title >sp</title >",
    "<title/>", "<template><title>tt</title></template>", "<div>", "<p>it's",
]


def _title_by_lxml_only(html: str) -> str | None:
    """extract_title as it was before the regex: lxml on the head, then on the body."""
    from checker.page import _HEAD_END, _title_with_lxml
    if not html:
        return None
    end = _HEAD_END.search(html)
    head = html[: end.start()] if end else html[:65536]
    title = _title_with_lxml(head) if head.strip() else None
    if title is None and end is not None:
        title = _title_with_lxml(html[:65536])
    return title


def test_title_regex_agrees_with_the_parser_on_tempting_heads() -> None:
    rng = random.Random(7)
    cases = ["".join(rng.choice(_HEAD_PIECES) for _ in range(rng.randint(0, 6))) for _ in range(4000)]
    wrong = [(html, extract_title(html), _title_by_lxml_only(html)) for html in cases
             if extract_title(html) != _title_by_lxml_only(html)]
    assert not wrong, wrong[:5]


@pytest.mark.parametrize("html, start, plain", [
    ("<head><title>x</title>", 6, True),
    ("<script>var a = '<title>x</title>'", 17, False),     # inside a script
    ("<!-- <title>x</title>", 5, False),                    # inside a comment
    ('<meta content="<title>x</title>">', 15, False),       # inside an attribute
    ("<script>a</script><title>x</title>", 18, True),       # after a closed script
])
def test_plain_markup_at(html: str, start: int, plain: bool) -> None:
    from checker.page import plain_markup_at
    assert plain_markup_at(html, start) is plain
