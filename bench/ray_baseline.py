"""Raw Ray baselines, timed in Python: what the same work costs with no orchestrator.

    python bench/ray_baseline.py --address 127.0.0.1:6379 --samples 200 --fanout 1000 \
        --sleep-fanout 100 --sleep 0.1 --repeats 3

- latency: `ray.get(noop.remote())`, one at a time, `--samples` times after
  `--warmup` untimed calls (the warm-up lets Ray start its worker processes);
- fan-out: `ray.get([noop.remote() for _ in range(n)])`, repeated `--repeats`
  times after one untimed round, and the same with `time.sleep(--sleep)`.

The tasks use Ray's defaults (one CPU each), as a hand-written Ray program
would. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import ray


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-p * len(sorted_values) // 100)))  # ceil(p/100 * n), at least 1
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(samples_ms: list[float]) -> dict:
    ordered = sorted(samples_ms)
    return {
        "n": len(ordered),
        "p50": round(percentile(ordered, 50), 3),
        "p95": round(percentile(ordered, 95), 3),
        "p99": round(percentile(ordered, 99), 3),
        "mean": round(statistics.fmean(ordered), 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
    }


@ray.remote
def noop() -> None:
    return None


@ray.remote
def nap(seconds: float) -> None:
    time.sleep(seconds)


def fan_out(make, n: int, repeats: int) -> dict:
    ray.get([make() for _ in range(n)])  # untimed round: every worker process is up
    makespans = []
    for _ in range(repeats):
        started = time.perf_counter()
        ray.get([make() for _ in range(n)])
        makespans.append(time.perf_counter() - started)
    makespan = statistics.median(makespans)
    return {
        "steps": n,
        "repeats": repeats,
        "makespansS": [round(m, 3) for m in makespans],
        "makespanS": round(makespan, 3),
        "stepsPerS": round(n / makespan, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", default=os.environ.get("RAY_ADDRESS", "auto"))
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--fanout", type=int, default=1000)
    parser.add_argument("--sleep-fanout", type=int, default=100)
    parser.add_argument("--sleep", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--items", type=int, default=0, help="no-op tasks submitted at once (0: skip)")
    args = parser.parse_args()

    # The protocol stream is stdout; Ray's own chatter goes to stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    ray.init(address=args.address, namespace="pantheon-bench", log_to_driver=False, logging_level="WARNING")
    try:
        for _ in range(args.warmup):
            ray.get(noop.remote())
        latencies = []
        for _ in range(args.samples):
            started = time.perf_counter()
            ray.get(noop.remote())
            latencies.append((time.perf_counter() - started) * 1000)
        result = {
            "rayVersion": ray.__version__,
            "python": sys.version.split()[0],
            "warmup": args.warmup,
            "latencyMs": summarize(latencies),
            "fanout": fan_out(lambda: noop.remote(), args.fanout, args.repeats),
            "sleepFanout": {
                **fan_out(lambda: nap.remote(args.sleep), args.sleep_fanout, args.repeats),
                "sleepS": args.sleep,
            },
            "cpus": ray.cluster_resources().get("CPU", 0),
        }
        if args.items > 0:
            # What a map step of as many no-op items is compared with: all submitted at once, one get.
            ray.get([noop.remote() for _ in range(1000)])
            started = time.perf_counter()
            ray.get([noop.remote() for _ in range(args.items)])
            makespan = time.perf_counter() - started
            result["items"] = {"steps": args.items, "makespanS": round(makespan, 3)}
    finally:
        ray.shutdown()
    out.write(json.dumps(result) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
