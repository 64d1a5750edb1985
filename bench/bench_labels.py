"""Precision/recall of `linkhealth extract` against independent hand labels.

Run from the repository root:

    .venv/bin/python bench/bench_labels.py [CORPUS_NOTES_DIR]

CORPUS_NOTES_DIR defaults to $LINKHEALTH_TEST_CORPUS/notes, else ../shared/corpus/notes.

bench/labels/independent.tsv (columns file, line, url, in_code) was labelled by
hand, without looking at the extractor: every line of 40 random notes
(random.seed(20261126); random.sample(sorted(notes), 40)) that contains 'http',
'www.' or '](', plus every corpus line that contains 'http' and is not a single
whitespace-free token starting with http. A labelled line with no URL has the
url '-'.

The script runs `linkhealth extract NOTES --format jsonl --include-code`, keeps
only http/https URLs on labelled lines, and compares (file basename, line, url)
pairs: precision = matched / extracted, recall = matched / labelled. It also
reports in_code disagreements on matched pairs and lists every disagreement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "bench" / "labels" / "independent.tsv"


def _notes_dir() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    env = os.environ.get("LINKHEALTH_TEST_CORPUS")
    if env:
        return Path(env) / "notes"
    return ROOT.parent / "shared" / "corpus" / "notes"


def _linkhealth() -> str:
    exe = ROOT / ".venv" / "bin" / "linkhealth"
    return str(exe) if exe.exists() else "linkhealth"


def load_labels(path: Path = LABELS):
    """Return (labelled lines, {(file, line, url): in_code})."""
    lines: set[tuple[str, int]] = set()
    pairs: dict[tuple[str, int, str], bool] = {}
    rows = path.read_text(encoding="utf-8").splitlines()
    for raw in rows[1:]:                       # skip the header
        if not raw:
            continue
        f, n, url, in_code = raw.split("\t")
        lines.add((f, int(n)))
        if url != "-":
            pairs[(f, int(n), url)] = in_code == "1"
    return lines, pairs


def run_extract(notes: Path):
    """Return {(file, line, url): in_code} of http(s) URLs from linkhealth extract."""
    proc = subprocess.run(
        [_linkhealth(), "extract", str(notes), "--format", "jsonl", "--include-code"],
        check=True, capture_output=True, text=True, encoding="utf-8",
    )
    out: dict[tuple[str, int, str], bool] = {}
    for raw in proc.stdout.splitlines():
        if not raw.strip():
            continue
        d = json.loads(raw)
        url = d["url"]
        if not url.lower().startswith(("http://", "https://")):
            continue
        out[(os.path.basename(d["file"]), int(d["line"]), url)] = bool(d.get("in_code"))
    return out


def main() -> int:
    lines, labelled = load_labels()
    extracted_all = run_extract(_notes_dir())
    extracted = {k: v for k, v in extracted_all.items() if (k[0], k[1]) in lines}
    tp = set(labelled) & set(extracted)
    fp = sorted(set(extracted) - set(labelled))
    fn = sorted(set(labelled) - set(extracted))
    precision = len(tp) / len(extracted) if extracted else 1.0
    recall = len(tp) / len(labelled) if labelled else 1.0
    code_diff = sorted(k for k in tp if labelled[k] != extracted[k])
    print(f"labelled lines: {len(lines)}  labelled URL pairs: {len(labelled)}")
    print(f"extracted http(s) pairs on labelled lines: {len(extracted)}  matched: {len(tp)}")
    print(f"precision: {precision:.4f} ({len(tp)}/{len(extracted)})")
    print(f"recall:    {recall:.4f} ({len(tp)}/{len(labelled)})")
    print(f"in_code agreement on matched pairs: {len(tp) - len(code_diff)}/{len(tp)}")
    for f, n, url in fp:
        print(f"  extracted, not labelled: {f}:{n} {url}")
    for f, n, url in fn:
        print(f"  labelled, not extracted: {f}:{n} {url}")
    for f, n, url in code_diff:
        print(f"  in_code differs: {f}:{n} {url} label={int(labelled[(f, n, url)])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
