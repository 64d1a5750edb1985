"""Extraction: every syntax of the notes, with exact (line, col, url, kind, in_code)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from checker.extract import extract

FIXTURES = Path(__file__).parent / "fixtures" / "extract"
F = False
T = True

EXPECTED = {
    "bare.md": [
        (9, 1, "https://www.python.org/", "bare", F),
        (11, 2, "https://docs.python.org/3/", "bare", F),                 # after a blockquote >
        (13, 1, "https://mp.weixin.qq.com/s/AbCdEf123", "bare", F),       # trailing spaces
        (15, 1, "https://zhuanlan.zhihu.com/p/123456", "bare", F),        # trailing ? dropped
        (17, 3, "http://blog.example.org/article/details/24745945", "bare", F),  # "3." list number
        (21, 18, "https://pypi.org/", "bare", F),                         # table cell
    ],
    "cjk.md": [
        (1, 7, "http://source.example.com", "bare", F),
        (3, 5, "http://code.example.com/p/demo/first_demo.7z", "bare", F),
        (5, 4, "http://www.msys2.org/", "bare", F),
        (7, 7, "https://dl-ssl.google.com/android/eclipse/", "bare", F),
        (9, 1, "https://mp.weixin.qq.com/s/_b5wRtOMwmGi8N5fxgMFEw", "bare", F),
        (11, 6, "https://github.com/python/cpython", "bare", F),
        (13, 1, "https://baike.baidu.com/item/图灵机", "bare", F),
        (15, 1, "http://example.com/wp/当变分推断（variational-inference）遇上神经网络，贝叶斯深度/", "bare", F),
        (17, 11, "http://www.example.org/", "bare", F),
        (19, 6, "http://curl.example.se/ca/cacert.pem", "bare", F),
        (21, 1, "http://mobile.example.net/forums/PrintPost.aspx", "bare", F),
        (23, 1, "https://en.wikipedia.org/wiki/Maxwell–Boltzmann_statistics", "bare", F),
        (25, 1, "http://msdn.microsoft.com/en-us/library/dd374204(v=vs.85).aspx", "bare", F),
        (27, 1, "https://commons.wikimedia.org/wiki/File:Earth's_Location_in_the_Universe.jpg", "bare", F),
        (29, 1, "https://www.infoq.cn/article/3D4MsRV*krT", "bare", F),
        (31, 6, "http://example.com/a_(b)", "bare", F),
        (33, 2, "https://www.python.org/about/", "bare", F),
        (35, 1, "https://www.baidu.com/s?wd=图灵机&ie=utf-8", "bare", F),
        (37, 1, "http://www.example.com/pdf/生成模型-生成对抗网络.pdf", "bare", F),
    ],
    "links.md": [
        (1, 26, "http://en.wikipedia.org/wiki/Matrix_(mathematics)#Decomposition", "link", F),
        (3, 11, "https://www.163.com/dy/article/ABC123.html", "link", F),
        (5, 28, "http://example.com/p/65/", "link", F),       # the link text is not a second URL
        (7, 5, "/images/img5/io_uring.png", "relative", F),
        (9, 12, "../images/img4/spaceship.jpg", "relative", F),
        (11, 12, "/math/2022/01/08/linear_algebra_2.html", "relative", F),
        (11, 61, "/ml/2017/01/12/ml_17.html#PCA", "relative", F),
        (13, 8, "https://www.python.org/dev/peps/", "reference", F),
        (15, 2, "https://github.com/python/cpython", "autolink", F),
        (17, 24, "mailto:someone@example.com", "link", F),    # #top is not reported
        (21, 7, "https://baike.baidu.com/item/%E5%9B%BE%E7%81%B5%E6%9C%BA", "link", F),
        (23, 11, "https://img.shields.io/badge/x-y-green", "image", F),
        (23, 52, "https://github.com/python/cpython", "link", F),
    ],
    "html.md": [
        (2, 18, "/images/img4/rainstorm.mp4", "relative", F),
        (9, 16, "http://www.w2bc.example/article/109597", "bare", F),   # text in an HTML block
        (13, 1, "http://www.cnblogs.com/eggTwo/p/4390620.html", "bare", F),
        (15, 20, "https://www.python.org/downloads/", "html", F),
        (15, 83, "https://www.python.org/logo.png", "html", F),
        (15, 124, "/img/a.png", "relative", F),
        (15, 139, "/img/b.png", "relative", F),
    ],
    "code.md": [
        (2, 23, "https://github.com/pytorch/pytorch", "bare", T),
        (5, 15, "http://download.pytorch.org/whl/cpu/torch.whl", "bare", T),
        (5, 67, "https://a.example.com/x", "bare", T),
        (5, 93, "https://b.example.com/y", "bare", T),
        (7, 13, "https://android-review.googlesource.com/", "bare", T),   # indented code
        (10, 14, "http://melpa.org/packages/", "bare", T),
        (11, 13, "https://gerrit.googlesource.com/git-repo", "bare", T),
        (16, 18, "http://list.example.com/para", "bare", F),   # list continuation, not code
        (21, 16, "http://inside.example.com/", "bare", T),     # unclosed fence runs to the end
    ],
    "odd.md": [
        (1, 1, "h1ttps://www.zhihu.com/question/49534423", "bare", F),   # scheme typo
        (3, 2, "http://", "bare", T),     # a lone http:// (malformed); a lone file:// names a scheme
        (5, 1, "git://anongit.freedesktop.org/gstreamer/gst-plugins-base", "bare", F),
        (7, 1, "ftp://mirrors.ustc.edu.cn/gnu/", "bare", F),
        # lines 9, 11, 13: URL templates are not references
        (23, 35, "mailto:webmaster@python.org", "bare", F),
        (25, 1, "http://127.0.0.1:9090", "bare", F),
    ],
}


def _run(name: str, **kw) -> list[tuple]:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return [(r.line, r.col, r.url, r.kind.value, r.in_code) for r in extract(text, name, **kw)]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture(name: str) -> None:
    assert _run(name) == EXPECTED[name]


def test_bare_www_only_when_asked() -> None:
    got = _run("odd.md", bare_www=True)
    extra = sorted(set(got) - set(EXPECTED["odd.md"]))
    assert extra == [(15, 6, "www.blizzard.com", "bare", F),
                     (17, 1, "www.cloudera.com/downloads/cdh.html", "bare", F)]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_positions_point_at_the_url(name: str) -> None:
    lines = (FIXTURES / name).read_text(encoding="utf-8").split("\n")
    for line, col, url, _, _ in EXPECTED[name]:
        assert lines[line - 1][col - 1:col - 1 + len(url)] == url


def _markdown_it_view(text: str) -> tuple[set[str], set[tuple[int, str]]]:
    """Link/image targets and in-code lines, as markdown-it-py (CommonMark) sees them."""
    md = MarkdownIt("commonmark")
    md.normalizeLink = lambda url: url     # keep targets as written
    md.validateLink = lambda url: True
    targets: set[str] = set()
    code_lines: set[int] = set()
    for tok in md.parse(text):
        if tok.type in ("fence", "code_block") and tok.map:
            first = tok.map[0] + (2 if tok.type == "fence" else 1)
            code_lines.update(range(first, tok.map[1] + 1))
        for child in tok.children or ():
            if child.type in ("link_open", "image"):
                targets.add(child.attrGet("href") or child.attrGet("src") or "")
    return targets, code_lines


@pytest.mark.parametrize("name", ["links.md", "code.md", "cjk.md", "bare.md"])
def test_agrees_with_markdown_it(name: str) -> None:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    targets, code_lines = _markdown_it_view(text)
    refs = extract(text, name)
    ours = {r.url for r in refs if r.kind.value in ("link", "image") or
            (r.kind.value == "relative" and not r.in_code)}
    # $$..$$ is kramdown math, which CommonMark does not know: drop its "link".
    assert ours == {t for t in targets if t not in ("C", "#top")}
    for r in refs:
        if r.line in code_lines:
            assert r.in_code, r


@pytest.mark.parametrize("text, expected", [
    ("a\r\nhttps://x.example/\r\n", [(2, 1, "https://x.example/")]),
    ("> quote\nlazy https://x.example/a\n", [(2, 6, "https://x.example/a")]),
    ("- a\n\n  ```\n  https://x.example/in\n  ```\n", [(4, 3, "https://x.example/in")]),
    ("> ```\n> https://x.example/q\n> ```\n", [(2, 3, "https://x.example/q")]),
    ("para\n    https://x.example/cont\n", [(2, 5, "https://x.example/cont")]),
    ("``a `https://x.example/c` b``\n", [(1, 6, "https://x.example/c")]),
    ("see `https://x.example/\nspans` lines\n", [(1, 6, "https://x.example/")]),
    ("[a](<https://x.example/a b>)\n", [(1, 6, "https://x.example/a b")]),
    ("'https://x.example/q' and \"https://x.example/d\"\n",
     [(1, 2, "https://x.example/q"), (1, 28, "https://x.example/d")]),
    ("https://x.example/a,https://x.example/b\n", [(1, 1, "https://x.example/a,https://x.example/b")]),
    ("**https://x.example/bold**\n", [(1, 3, "https://x.example/bold")]),
    ("<!-- https://x.example/comment -->\n", []),     # commented out: not shown, not reported
    # A scheme named in prose is no reference; a lone http:// is kept (reported malformed).
    ("替换为hdfs://形式的路径，前面的sftp://一定要加\n", []),
    ("sftp://192.168.1.102 （前面的sftp://一定要加）\n", [(1, 1, "sftp://192.168.1.102")]),
    ("用 http:// 开头\n", [(1, 3, "http://")]),
])
def test_small_cases(text: str, expected: list[tuple]) -> None:
    got = [(r.line, r.col, r.url) for r in extract(text, "t.md")]
    assert got == expected


def test_in_code_flags() -> None:
    refs = extract("```\nhttps://x.example/a\n```\n\n`https://x.example/b` https://x.example/c\n", "t")
    assert [(r.url, r.in_code) for r in refs] == [
        ("https://x.example/a", True), ("https://x.example/b", True), ("https://x.example/c", False)]


# ---- pathological inputs: must finish, linear time (generous bounds) ------------------

def _timed(text: str) -> tuple[float, list]:
    start = time.process_time()
    refs = extract(text, "big.md")
    return time.process_time() - start, refs


@pytest.mark.timeout(120)
@pytest.mark.parametrize("unit", [
    "https://a.example/x ",            # many URLs on one 10 MB line
    "http://a.example/下",              # URLs cut at CJK, no whitespace at all
    "[",                                 # deeply nested brackets
    "[a](",                              # unfinished links
    "](x \"",                            # unfinished link targets with titles
    "<!--",                              # unclosed comments
    "`",                                 # backtick runs
    "$$",                                # math markers
    "\x00",                              # NUL bytes
    "x" * 99 + "(",                      # long runs, unbalanced parentheses
])
def test_pathological_line_is_linear(unit: str) -> None:
    small = unit * (200_000 // len(unit))
    big = unit * (2_000_000 // len(unit))
    t_small, _ = _timed(small)
    t_big, refs = _timed(big)
    assert t_big < 30.0
    assert t_big < 10 * max(t_small, 0.05) + 2.0     # ~linear: 10x input, not 100x time


@pytest.mark.timeout(120)
def test_ten_megabyte_single_line_finishes() -> None:
    unit = "文字[a](http://a.example/(x ![b](<c> `d` <e f=\"g\"> $$ https://h.example/i下 [[[ "
    text = unit * (10_000_000 // len(unit.encode("utf-8")))
    seconds, refs = _timed(text)
    assert seconds < 60.0
    assert refs and all(r.line == 1 for r in refs)


@pytest.mark.timeout(60)
def test_unclosed_fence_and_many_lines() -> None:
    text = "```\n" + "https://x.example/a\n" * 100_000
    seconds, refs = _timed(text)
    assert len(refs) == 100_000 and all(r.in_code for r in refs)
    assert seconds < 20.0


def test_invalid_utf8_replaced_text_is_fine() -> None:
    text = b"caf\xe9 https://x.example/ok\n".decode("utf-8", errors="replace")
    assert [r.url for r in extract(text, "t")] == ["https://x.example/ok"]


def test_masked_regions_never_leak_into_a_url():
    refs = extract("[r]: <java\tscript:alert(2)>\n", "n.md")
    assert all("\x01" not in r.url for r in refs)


def test_terminal_escapes_are_not_part_of_a_url() -> None:
    # A note pasted from a terminal: the "m" ending ESC [31m is no scheme ("mhttp://"),
    # a URL ends at the reset sequence, and an OSC title sequence hides nothing real.
    text = ("red \x1b[31mhttp://note.test/a\x1b[0m done\n"
            "\x1b]0;title http://osc.test/\x07 then https://note.test/b\n"
            "c1 \x9b31mhttps://note.test/c and \x1b[2Jhttps://note.test/d\x07x\n")
    got = [(r.line, r.col, r.url) for r in extract(text, "t.md")]
    assert got == [(1, 10, "http://note.test/a"), (2, 34, "https://note.test/b"),
                   (3, 8, "https://note.test/c"), (3, 36, "https://note.test/d")]
