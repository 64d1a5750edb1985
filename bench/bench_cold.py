"""Why a paced audit costs more CPU per page than an unpaced one: cold CPU caches.

Run:
    .venv/bin/python bench/bench_cold.py

Times a few per-page steps (title extraction by regex and by lxml, decoding a body)
back to back, then once after each sleep of 1, 10 and 50 ms (thread CPU time, so the
sleep itself is not counted). A paced audit wakes for each start and each answer of a
host, 20 times a second or less per host: each wake-up runs on caches that the idle
time (and the machine's other work) has emptied. Compare the columns: the same code
costs several times more after a sleep.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from checker.page import _title_by_regex, _title_with_lxml, decode_body  # noqa: E402

PAGE = ("<html><head><title>mp.weixin.qq.com 的文章 1234</title><script>var msg_title = 'x';</script></head>"
        "<body><div id=\"js_article\"><div id=\"js_content\"><p>" + "正文" * 100 + "</p></div></div></body></html>")
HEAD = PAGE[:PAGE.index("</head>")]
RAW = PAGE.encode("utf-8")

STEPS = {
    "title by regex": lambda: _title_by_regex(HEAD),
    "title by lxml": lambda: _title_with_lxml(HEAD),
    "decode body": lambda: decode_body(RAW, "text/html; charset=utf-8"),
}


def per_call_us(step, calls: int, gap: float) -> float:
    """Mean thread CPU of one call, in microseconds, with ``gap`` seconds of sleep before each."""
    spent = 0
    for _ in range(calls):
        if gap:
            time.sleep(gap)
        t0 = time.thread_time_ns()
        step()
        spent += time.thread_time_ns() - t0
    return spent / calls / 1000


def main() -> None:
    gaps = (0.0, 0.001, 0.01, 0.05)
    print(f"{'step':16s}" + "".join(f"{'warm' if not g else f'after {g * 1000:.0f} ms':>14s}" for g in gaps))
    for name, step in STEPS.items():
        cells = [per_call_us(step, 2000 if not g else (300 if g < 0.01 else 100), g) for g in gaps]
        print(f"{name:16s}" + "".join(f"{c:11.1f} us" for c in cells), flush=True)


if __name__ == "__main__":
    main()
