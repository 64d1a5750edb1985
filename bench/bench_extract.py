"""Extraction benchmark: CPU time over the whole corpus, and precision/recall on labels.

Run from the repository root:

    .venv/bin/python bench/bench_extract.py [CORPUS_DIR]

CORPUS_DIR defaults to $LINKHEALTH_TEST_CORPUS, else ../shared/corpus. Prints the CPU
seconds (time.process_time, one process, one core) of scanning (read, sha256,
UTF-8 decode) and of extracting every note, best of 3; the http(s) counts against the
corpus README; and precision/recall on (file, line, url) pairs against
bench/labels/fixtures.tsv (whole fixture notes) and bench/labels/corpus_rare.tsv
(labelled lines of the corpus).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checker.extract import extract            # noqa: E402
from checker.notes import scan                 # noqa: E402
from checker.settings import NotesSettings     # noqa: E402

LABELS = ROOT / "bench" / "labels"
FIXTURES = ROOT / "tests" / "fixtures" / "extract"


def _labels(path: Path) -> dict[tuple[str, int], set[str]]:
    """(file, line) -> set of URLs ('-' lines give an empty set)."""
    out: dict[tuple[str, int], set[str]] = defaultdict(set)
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw or raw.startswith("#"):
            continue
        file, line, url = raw.split("\t")
        out[(file, int(line))]
        if url != "-":
            out[(file, int(line))].add(url)
    return out


def _score(gold: set, found: set) -> tuple[float, float, int, int, int]:
    tp = len(gold & found)
    precision = tp / len(found) if found else 1.0
    recall = tp / len(gold) if gold else 1.0
    return precision, recall, tp, len(found - gold), len(gold - found)


def _pairs_for(refs_by_file: dict[str, list], labels: dict[tuple[str, int], set[str]],
               whole_files: bool) -> tuple[set, set]:
    gold = {(f, n, u) for (f, n), urls in labels.items() for u in urls}
    wanted_lines = set(labels)
    wanted_files = {f for f, _ in labels}
    found = set()
    for file, refs in refs_by_file.items():
        if file not in wanted_files:
            continue
        for r in refs:
            if whole_files or (file, r.line) in wanted_lines:
                found.add((file, r.line, r.url))
    return gold, found


def main() -> None:
    """Print the numbers (see the module docstring)."""
    corpus = Path(sys.argv[1] if len(sys.argv) > 1 else
                  os.environ.get("LINKHEALTH_TEST_CORPUS", ROOT.parent / "shared" / "corpus"))
    notes_dir = corpus / "notes"
    settings = NotesSettings()
    best_scan = best_extract = float("inf")
    refs_by_file: dict[str, list] = {}
    for _ in range(3):
        t0 = time.process_time()
        result = scan([notes_dir], settings)
        t1 = time.process_time()
        refs_by_file = {Path(n.path).name: extract(result.text(n), Path(n.path).name) for n in result.notes}
        t2 = time.process_time()
        best_scan, best_extract = min(best_scan, t1 - t0), min(best_extract, t2 - t1)
    all_refs = [r for refs in refs_by_file.values() for r in refs]
    http = [r for r in all_refs if r.url.lower().startswith(("http://", "https://")) and len(r.url) > 8]
    outside = sum(not r.in_code for r in http)
    print(f"notes: {len(refs_by_file)}  bytes: {sum(n.size for n in result.notes):,}  skipped: {len(result.skipped)}")
    print(f"CPU scan (read+sha256+decode): {best_scan:.3f} s   CPU extract: {best_extract:.3f} s   "
          f"total: {best_scan + best_extract:.3f} s  (best of 3)")
    stats_file = corpus / "stats.json"
    if stats_file.exists():
        stats = json.loads(stats_file.read_text(encoding="utf-8"))
        expected = stats["url_occurrences_by_context"]["outside_code"]
        print(f"http(s) outside code: {outside:,} (README {expected:,}, diff {100 * (outside - expected) / expected:+.2f}%)"
              f"   in code: {len(http) - outside}   all references: {len(all_refs):,}")

    fixture_refs = {p.name: extract(p.read_text(encoding="utf-8"), p.name) for p in sorted(FIXTURES.glob("*.md"))}
    rows = [("fixtures (whole notes)", *_pairs_for(fixture_refs, _labels(LABELS / "fixtures.tsv"), True)),
            ("corpus (labelled lines)", *_pairs_for(refs_by_file, _labels(LABELS / "corpus_rare.tsv"), False))]
    gold_all, found_all = set(), set()
    for name, gold, found in rows:
        p, r, tp, fp, fn = _score(gold, found)
        gold_all |= {(name, *g) for g in gold}
        found_all |= {(name, *f) for f in found}
        print(f"{name:26s} pairs {len(gold):5d}  precision {p:.4f}  recall {r:.4f}  (tp {tp}, fp {fp}, fn {fn})")
        for miss in sorted(found - gold)[:10]:
            print("   false positive:", miss)
        for miss in sorted(gold - found)[:10]:
            print("   missed:        ", miss)
    p, r, *_ = _score(gold_all, found_all)
    print(f"{'all labels':26s} pairs {len(gold_all):5d}  precision {p:.4f}  recall {r:.4f}")


if __name__ == "__main__":
    main()
