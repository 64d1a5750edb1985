"""Invariants of extraction over the real notes corpus (skipped when it is absent)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from checker.extract import extract
from checker.targets import normalize

pytestmark = pytest.mark.corpus

CORPUS = Path(os.environ.get("LINKHEALTH_TEST_CORPUS",
                             Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"))


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, str, list]]:
    notes = CORPUS / "notes"
    if not notes.is_dir():
        pytest.skip(f"corpus not found at {CORPUS} (set LINKHEALTH_TEST_CORPUS)")
    out = []
    for path in sorted(notes.glob("*.markdown")):
        text = path.read_text(encoding="utf-8")
        out.append((path.name, text, extract(text, path.name)))
    return out


def _http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://")) and len(url) > 8


def test_count_outside_code_matches_readme(corpus) -> None:
    stats = json.loads((CORPUS / "stats.json").read_text(encoding="utf-8"))
    expected = stats["url_occurrences_by_context"]["outside_code"]
    outside = sum(1 for _, _, refs in corpus for r in refs if _http(r.url) and not r.in_code)
    assert abs(outside - expected) <= 0.005 * expected, (outside, expected)


def test_every_url_parses_and_ends_cleanly(corpus) -> None:
    for name, _, refs in corpus:
        for r in refs:
            assert r.url.count("(") >= r.url.count(")") or not r.url.endswith(")"), r
            assert not r.url.endswith(("）", "。", "，", ".")), r
            if _http(r.url):
                assert normalize(r.url).startswith(("http://", "https://")), r


def test_positions_point_at_the_url(corpus) -> None:
    for name, text, refs in corpus:
        lines = text.split("\n")
        for r in refs:
            assert lines[r.line - 1][r.col - 1:r.col - 1 + len(r.url)] == r.url, r


def test_in_code_agrees_with_markdown_it(corpus) -> None:
    """Our block scanner and markdown-it-py (CommonMark) agree on code for every URL."""
    md = MarkdownIt("commonmark")
    for name, text, refs in corpus:
        if not any("://" in r.url for r in refs):
            continue
        code_lines: set[int] = set()
        inline_code: dict[int, list[str]] = {}
        for tok in md.parse(text):
            if tok.type in ("fence", "code_block") and tok.map:
                code_lines.update(range(tok.map[0] + 1, tok.map[1] + 1))
            elif tok.type == "inline" and tok.map:
                spans = [c.content for c in tok.children or () if c.type == "code_inline"]
                for line in range(tok.map[0] + 1, tok.map[1] + 1):
                    inline_code[line] = spans
        for r in refs:
            if "://" not in r.url or "$$" in text.split("\n")[r.line - 1]:
                continue
            md_code = r.line in code_lines or any(r.url in span for span in inline_code.get(r.line, ()))
            assert r.in_code == md_code, r
