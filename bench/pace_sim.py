"""The pace policy alone, on a fake clock: each throttling host of bench_pace.py, simulated.

Run::

    .venv/bin/python bench/pace_sim.py

A discrete-event simulation (no network, no event loop, deterministic): requests start
when :class:`checker.pace.HostPace` allows, each throttle of bench/throttle.py answers
after the host's latency, refusals go back to the queue. Prints, per host, the oracle
(the time at the exact limit) and the simulated time of a first run and of a second run
that starts from the pace the first one learned. It isolates the policy from the
machine: bench_pace.py measures the real thing on a real server.
"""

from __future__ import annotations

import heapq
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from throttle import ConcurrencyCap, RateWindow, SlowsUnderLoad  # noqa: E402

from checker.pace import HostPace, LearnedPace, PaceLimits, Signal  # noqa: E402


def simulate(throttle, urls: int, latency: float, limits: PaceLimits,
             learned: LearnedPace | None = None) -> tuple[float, int, HostPace]:
    """Seconds to get ``urls`` answers, refusals seen, and the pace at the end."""
    now = [0.0]
    pace = HostPace(limits, clock=lambda: now[0], learned=learned)
    queue, done, refused = urls, 0, 0
    in_flight: list[tuple[float, float, bool]] = []      # (end, latency, refused)
    while done < urls:
        delay = pace.wait(len(in_flight)) if queue else None
        next_end = in_flight[0][0] if in_flight else float("inf")
        if delay is not None and now[0] + delay <= next_end:
            now[0] += delay
            pace.started(len(in_flight))
            refusal = throttle.enter(now[0])
            lat = latency / 2 if refusal else throttle.latency(latency, len(in_flight) + 1)
            heapq.heappush(in_flight, (now[0] + lat, lat, refusal is not None))
            queue -= 1
            continue
        end, lat, was_refused = heapq.heappop(in_flight)
        now[0] = end
        throttle.leave(end)
        if was_refused:
            signal = Signal.VERIFICATION if getattr(throttle, "verification", False) else Signal.STRESS
            pace.observe(signal, lat, retry_after=getattr(throttle, "retry_after", None))
            refused += 1
            queue += 1
        else:
            pace.observe(Signal.OK, lat)
            done += 1
    return now[0], refused, pace


def main() -> None:
    cases = [
        ("mp.weixin.qq.com", lambda: RateWindow(10, 5.0, 30.0, verification=True), 0.08, 120,
         PaceLimits(4, 0.0, start_concurrency=1, start_interval=1.0)),
        ("cap-ra.example.com", lambda: ConcurrencyCap(2, retry_after=1), 0.15, 700, PaceLimits(4)),
        ("cap-bare.example.com", lambda: ConcurrencyCap(2), 0.15, 700, PaceLimits(4)),
        ("slow.example.com", lambda: SlowsUnderLoad(2), 0.15, 700, PaceLimits(4)),
    ]
    for host, make, latency, urls, limits in cases:
        first = make()
        t1, r1, pace = simulate(first, urls, latency, limits)
        t2, r2, _ = simulate(make(), urls, latency, limits, learned=pace.learned(host, wall_clock=0.0))
        oracle = first.oracle(urls, latency, limits.ceiling)
        print(f"{host:22} oracle {oracle:6.1f} s   run 1 {t1:6.1f} s ({t1 / oracle:.2f}x, {r1} refused)   "
              f"run 2 {t2:6.1f} s ({t2 / oracle:.2f}x, {r2} refused)")


if __name__ == "__main__":
    main()
