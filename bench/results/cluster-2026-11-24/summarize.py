#!/usr/bin/env python3
"""Prints the tables of cluster-2026-11-24.md from the raw reports in raw/
(written by measure.sh): for each configuration, the range (min-max) over
its repetitions."""
import glob
import json
import os
import re
import sys

RAW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "raw")


def load(pattern):
    out = []
    for path in sorted(glob.glob(os.path.join(RAW, pattern))):
        with open(path) as f:
            out.append(json.load(f))
    return out


def rng(values, fmt="{:.1f}"):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    if fmt.format(lo) == fmt.format(hi):
        return fmt.format(lo)
    return fmt.format(lo) + "–" + fmt.format(hi)


def part_a():
    print("| transport | bots | runs | errors | input p50 ms | input p99 ms | tick p99 ms | server CPU % | server RSS MiB | driver CPU % |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for bots in (500, 1000):
        for t in ("ws", "sse"):
            rs = load(f"a-{t}-{bots}-*.json")
            if not rs:
                continue
            print(f"| {t} | {bots} | {len(rs)} | {rng([r['errors'] for r in rs], '{:.0f}')} "
                  f"| {rng([r['p50_ms'] for r in rs])} | {rng([r['p99_ms'] for r in rs])} "
                  f"| {rng([r['tick_p99_ms'] for r in rs])} | {rng([r['server_cpu_pct'] for r in rs], '{:.0f}')} "
                  f"| {rng([r['server_rss_mib'] for r in rs], '{:.0f}')} | {rng([r['driver_cpu_pct'] for r in rs], '{:.0f}')} |")


def part_b():
    rs = load("b-forward-1000-*.json")
    if not rs:
        return
    print("| runs | errors | local bots | forwarded bots | local p50 ms | local p99 ms | forwarded p50 ms | forwarded p99 ms | all p50 ms | all p99 ms | node A CPU % |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    print(f"| {len(rs)} | {rng([r['errors'] for r in rs], '{:.0f}')} "
          f"| {rng([r['counters']['bots_local'] for r in rs], '{:.0f}')} | {rng([r['counters']['bots_forwarded'] for r in rs], '{:.0f}')} "
          f"| {rng([r['local_p50_ms'] for r in rs])} | {rng([r['local_p99_ms'] for r in rs])} "
          f"| {rng([r['forwarded_p50_ms'] for r in rs])} | {rng([r['forwarded_p99_ms'] for r in rs])} "
          f"| {rng([r['p50_ms'] for r in rs])} | {rng([r['p99_ms'] for r in rs])} | {rng([r['server_cpu_pct'] for r in rs], '{:.0f}')} |")
    print()
    print("Per run (local − forwarded p50 / p99, ms): " + "; ".join(
        f"{r['local_p50_ms']:.1f}/{r['forwarded_p50_ms']:.1f}, {r['local_p99_ms']:.1f}/{r['forwarded_p99_ms']:.1f}" for r in rs))


def redis_snapshot(path):
    with open(path) as f:
        lines = f.read().splitlines()
    t = float(lines[0])
    total = int(lines[1].split(":")[1])
    cmds = {}
    for line in lines[2:]:
        m = re.match(r"cmdstat_(\w+):calls=(\d+)", line)
        if m:
            cmds[m.group(1)] = int(m.group(2))
    return t, total, cmds


def part_c():
    runs = sorted(glob.glob(os.path.join(RAW, "c-redis-1000-*-redis-t0.txt")))
    if not runs:
        return
    rows = []
    for t0path in runs:
        name = t0path[: -len("-redis-t0.txt")]
        t0, total0, c0 = redis_snapshot(t0path)
        t1, total1, c1 = redis_snapshot(name + "-redis-t1.txt")
        with open(name + ".json") as f:
            rep = json.load(f)
        dt = t1 - t0
        # INFO itself is a command: the two INFO calls and the "info stats"
        # calls are left out.
        per = {k: (c1.get(k, 0) - c0.get(k, 0)) / dt for k in c1 if k != "info"}
        rows.append((os.path.basename(name), dt, (total1 - total0 - 2) / dt, per, rep))
    print("| run | window s | players | rooms (joins / 8) | commands/s | per 1,000 players /s | errors |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for name, dt, rate, per, rep in rows:
        players = rep["joined"]
        print(f"| {name} | {dt:.1f} | {players} | {rep['counters']['joins'] // 8} | {rate:.1f} | {rate * 1000 / max(players, 1):.1f} | {rep['errors']} |")
    print()
    print("Commands per second by command (each run):")
    print()
    keys = sorted({k for _, _, _, per, _ in rows for k in per if any(r[3].get(k, 0) > 0.05 for r in rows)})
    print("| command | " + " | ".join(r[0] for r in rows) + " |")
    print("|---|" + "--:|" * len(rows))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{r[3].get(k, 0):.1f}" for r in rows) + " |")


def part_d(prefix="d-drain-1000-"):
    runs = sorted(glob.glob(os.path.join(RAW, prefix + "*.json")))
    runs = [r for r in runs if re.search(r"-\d+\.json$", r)]
    if not runs:
        return
    print("| run | SIGTERM → drained (log `took`) | rooms moved / failed | SIGTERM → exit s | moves | resumes | resume failures | errors | pause p50 / p99 / max ms | input p99 / max ms | inputs lost | counted twice | messages sent again |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for path in runs:
        name = path[: -len(".json")]
        with open(path) as f:
            r = json.load(f)
        took, moved, failed = "-", "-", "-"
        with open(name + "-a.log") as f:
            for line in f:
                if '"cluster: drained"' in line:
                    d = json.loads(line)
                    took = f"{d['took']:.2f} s"
                    moved, failed = d["rooms_moved"], d["room_moves_failed"]
        with open(name + "-times.txt") as f:
            parts = f.read().split()
        exit_s = float(parts[3]) - float(parts[1])
        c = r["counters"]
        resume_failed = sum(v for k, v in r["errors_by_kind"].items() if k.startswith("resume_"))
        print(f"| {os.path.basename(name)} | {took} | {moved} / {failed} | {exit_s:.1f} | {c['moves']} | {c['resumes']} | {resume_failed} "
              f"| {r['errors']} | {r['pause_p50_ms']:.0f} / {r['pause_p99_ms']:.0f} / {r['pause_max_ms']:.0f} "
              f"| {r['p99_ms']:.0f} / {r['max_ms']:.0f} | {r['inputs_lost']} | {r['inputs_duplicated']} | {c['resent']} |")
        if r["errors"]:
            print(f"|  | errors: {r['errors_by_kind']} |" + " |" * 11)


for part in sys.argv[1:] or ["a", "b", "c", "d", "e"]:
    print(f"### {part}\n")
    {"a": part_a, "b": part_b, "c": part_c, "d": part_d, "e": lambda: part_d("e-drain-sse-500-")}[part]()
    print()
