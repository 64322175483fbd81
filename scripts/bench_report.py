#!/usr/bin/env python3
"""Renders the figures of `make bench` (target/bench/*.json, target/criterion/) as Markdown and
puts them in the README between `<!-- bench:start -->` and `<!-- bench:end -->`.

Stdlib only. `python3 scripts/bench_report.py` prints the table; `--readme README.md` also
rewrites the marked block (and target/bench/results.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "target/bench"
CRITERION_DIR = ROOT / "target/criterion"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
FUNCTIONS = ["failover", "scaler", "provisioner", "lag-probe"]
MB = 1024 * 1024

INIT_GOAL_RATIO = 1.5
RSS_GOAL_MB = 32
ZIP_GOAL_MB = 5
ROUND_TRIP_GOAL = 2
LATENCY_MS = 200


def load(name: str):
    path = BENCH_DIR / name
    return json.loads(path.read_text()) if path.exists() else None


def provenance() -> str:
    """When the process-level and the `cargo bench` figures were measured: one run, or two when
    a pass reused the other's results (BENCH_SKIP_BUILD / BENCH_SKIP_CARGO_BENCH)."""
    def measured(name: str):
        path = BENCH_DIR / name
        return path.stat().st_mtime if path.exists() else None
    runner = measured("process.json")
    benches = [t for t in (measured("failover_critical_path.json"), measured("lag_probe_cost.json")) if t]
    at = lambda t: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))  # noqa: E731
    if runner and benches and abs(runner - max(benches)) > 600:
        return (f"Two passes: cold start, memory, sizes and the release binaries' critical path at {at(runner)}; "
                f"the `cargo bench` figures (critical path in-process, lag-probe cost, criterion) at {at(max(benches))}.")
    return "One run; every figure below comes from it."


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip() or "rustc ?"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "?"
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, {rustc}; "
            f"git {commit} (+ working tree); {time.strftime('%Y-%m-%d %H:%M %Z')}")


def mb(kb_or_bytes, unit="kb") -> str:
    if kb_or_bytes is None:
        return "n/a"
    value = kb_or_bytes / 1024 if unit == "kb" else kb_or_bytes / MB
    return f"{value:.2f} MB" if unit != "kb" else f"{value:.1f} MB"


def ok(flag: bool | None) -> str:
    return "n/a" if flag is None else ("met" if flag else "**missed**")


def criterion_rows() -> list[tuple[str, float]]:
    rows = []
    base = CRITERION_DIR
    if not base.exists():
        return rows
    for bench_json in base.rglob("new/benchmark.json"):
        try:
            full_id = json.loads(bench_json.read_text())["full_id"]
            est = json.loads((bench_json.parent / "estimates.json").read_text())
            rows.append((full_id, est["median"]["point_estimate"]))
        except (OSError, KeyError, ValueError):
            continue
    return sorted(rows)


def fmt_ns(ns: float) -> str:
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.2f} µs"
    return f"{ns / 1_000_000:.2f} ms"


def render() -> str:
    process = load("process.json")
    critical = load("failover_critical_path.json")
    probe = load("lag_probe_cost.json")
    lines = [f"Measured by `make bench` on {machine()}. {provenance()}", ""]
    goals = []

    if process:
        init, rss, events, sizes = process["init"], process["rss"], process.get("events", {}), process["sizes"]
        lines += [
            f"**Cold start and memory** (host release binaries, x86_64; init = spawn to the first "
            f"`GET /invocation/next`, {process['starts']} interleaved starts each; peak RSS = VmHWM; "
            f"the event is served against the local emulator holding its resources)",
            "",
            "| binary | init median | init p90 | vs hello | peak RSS after init | peak RSS after one event | event |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for name in ["hello"] + FUNCTIONS:
            i, r, e = init[name], rss.get(name, {}), events.get(name, {})
            outcome = e.get("outcome", "n/a")
            if e.get("handled_ms") is not None:
                outcome += f", {e['handled_ms']:.0f} ms"
            if e.get("error"):
                outcome += f" ({e['error'][:80]})"
            lines.append(
                f"| {name} | {i['median_ms']:.2f} ms | {i['p90_ms']:.2f} ms | {i['ratio_vs_hello']:.2f}x | "
                f"{mb(r.get('init_kb'))} | {mb(r.get('after_event_kb'))} | {outcome} |")
        lines.append("")
        worst_ratio = max(init[f]["ratio_vs_hello"] for f in FUNCTIONS)
        goals.append(f"init <= {INIT_GOAL_RATIO}x hello: {ok(worst_ratio <= INIT_GOAL_RATIO)} "
                     f"(worst {worst_ratio:.2f}x)")
        peaks = [rss[f].get("after_event_kb") or rss[f].get("init_kb") for f in FUNCTIONS]
        peaks = [p for p in peaks if p]
        if peaks:
            goals.append(f"peak RSS < {RSS_GOAL_MB} MB: {ok(max(peaks) / 1024 < RSS_GOAL_MB)} "
                         f"(worst {max(peaks) / 1024:.1f} MB)")

        lines += [
            "**Size** (stripped; zip = deflate level 9 of `bootstrap`, as `cargo lambda build --output-format zip`; "
            "arm64 = `target/lambda/<fn>/bootstrap` from `make lambda-build`, when present)",
            "",
            "| binary | x86_64 binary | x86_64 zip | arm64 bootstrap | arm64 zip |",
            "|---|---:|---:|---:|---:|",
        ]
        arm_zips = []
        for name in ["hello"] + FUNCTIONS:
            s = sizes.get(name, {})
            if "arm64_zip_bytes" in s and name in FUNCTIONS:
                arm_zips.append(s["arm64_zip_bytes"])
            lines.append(
                f"| {name} | {mb(s.get('host_bytes'), 'b')} | {mb(s.get('host_zip_bytes'), 'b')} | "
                f"{mb(s.get('arm64_bytes'), 'b')} | {mb(s.get('arm64_zip_bytes'), 'b')} |")
        lines.append("")
        host_zips = [sizes[f]["host_zip_bytes"] for f in FUNCTIONS if "host_zip_bytes" in sizes.get(f, {})]
        worst_zip = max(arm_zips) if arm_zips else (max(host_zips) if host_zips else None)
        if worst_zip:
            which = "arm64" if arm_zips else "x86_64 (no arm64 build found)"
            goals.append(f"zip < {ZIP_GOAL_MB} MB: {ok(worst_zip / MB < ZIP_GOAL_MB)} "
                         f"(largest {which} zip {worst_zip / MB:.2f} MB)")

    if critical:
        lines += [
            f"**failover critical path** ({critical['scenario']}; sequential round trips = the longest chain "
            "of calls that do not overlap in time, from the emulator's request log; control plane = Route 53 "
            "+ RDS, ledger = DynamoDB)",
            "",
            "| latency per call | actions done after (median) | round trips until then | handler wall time (median) "
            "| runs | sequential round trips | control plane | ledger | calls | round trips in order |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in critical["results"]:
            acted = f"{r['acted_ms_median']:.0f} ms" if "acted_ms_median" in r else "n/a"
            until = r.get("until_acted", {}).get("sequential_round_trips", "n/a")
            lines.append(
                f"| {r['latency_ms']} ms | {acted} | {until} | {r['wall_ms_median']:.0f} ms | {r['runs']} | "
                f"{r['all']['sequential_round_trips']} | {r['control_plane']['sequential_round_trips']} | "
                f"{r['ledger']['sequential_round_trips']} | {r['all']['calls']} | "
                f"{' → '.join(r['all']['waves'])} |")
        lines.append("")
        with_latency = [r for r in critical["results"] if r["latency_ms"] == LATENCY_MS]
        if with_latency:
            r = with_latency[0]
            until = r.get("until_acted", {}).get("sequential_round_trips")
            if until is None:  # a result file from before the figure existed
                until = r["control_plane"]["sequential_round_trips"]
            goals.append(
                f"failover observe + act <= {ROUND_TRIP_GOAL} sequential round trips: {ok(until <= ROUND_TRIP_GOAL)} "
                f"({until} until the actions are done, "
                + (f"{r['acted_ms_median']:.0f} ms at {LATENCY_MS} ms/call; " if "acted_ms_median" in r else "")
                + f"{r['all']['sequential_round_trips']} with the audit write after them, "
                f"{r['wall_ms_median']:.0f} ms = {r['wall_ms_median'] / LATENCY_MS:.1f} x {LATENCY_MS} ms)")

    paths = (process or {}).get("binary_paths") or []
    if paths:
        lines += [
            "**The release binaries' critical path** (bench/runner.py: the same events through the Runtime API, "
            "fresh 3-Region world per run; wall time = event served to response posted)",
            "",
            "| function | latency per call | wall time (median) | runs | calls | sequential round trips | "
            "until the actions are done | control plane | ledger |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for p in paths:
            wall = "n/a" if p["wall_ms_median"] is None else f"{p['wall_ms_median']:.0f} ms"
            lines.append(
                f"| {p['function']} | {p['latency_ms']} ms | {wall} | {p['runs']} | {p['calls']} | "
                f"{p['sequential_round_trips']} | {p.get('until_acted_round_trips', 'n/a')} | "
                f"{p['control_plane_round_trips']} | {p['ledger_round_trips']} |")
        lines.append("")
        if not critical:
            with_latency = [p for p in paths if p["function"] == "failover" and p["latency_ms"] == LATENCY_MS]
            if with_latency:
                p = with_latency[0]
                until = p.get("until_acted_round_trips", p["control_plane_round_trips"])
                goals.append(
                    f"failover observe + act <= {ROUND_TRIP_GOAL} sequential round trips: "
                    f"{ok(until <= ROUND_TRIP_GOAL)} ({until} until the actions are done, "
                    f"{p['sequential_round_trips']} in all; release binary)")

    if probe:
        by_service: dict[str, int] = {}
        for op, n in probe["calls_by_operation"].items():
            service = op.split(":", 1)[0]
            by_service[service] = by_service.get(service, 0) + n
        lines += [
            f"**lag-probe cost** ({probe['regions']} Regions, {probe['samples_per_pair']} samples per ordered pair, "
            f"no injected latency, {probe['runs']} runs)",
            "",
            "| wall time (median) | min / max | AWS calls per run | by service | sequential round trips |",
            "|---:|---:|---:|---|---:|",
            f"| {probe['wall_ms_median']:.0f} ms | {probe['wall_ms_min']:.0f} / {probe['wall_ms_max']:.0f} ms | "
            f"{probe['calls_median']:.0f} | {', '.join(f'{k} {v}' for k, v in sorted(by_service.items()))} | "
            f"{probe['last_run']['sequential_round_trips']} |",
            "",
        ]
        if probe.get("accuracy"):
            n = len(probe["accuracy"][0]["run_p50s_ms"])
            lines += [
                f"**lag-probe accuracy** (replication delay injected in the emulator on every pair; "
                f"median of {n} runs' p50)",
                "",
                "| injected | measured | error | runs' p50 |",
                "|---:|---:|---:|---|",
            ]
            lines += [
                f"| {a['injected_ms']} ms | {a['p50_ms_median']:.0f} ms | {a['error_ms']:+.0f} ms | "
                f"{', '.join(f'{v:.0f}' for v in a['run_p50s_ms'])} ms |"
                for a in probe["accuracy"]
            ]
            lines.append("")

    crit = criterion_rows()
    if crit:
        lines += ["**In-process** (criterion, median per iteration; bench profile = release profile without LTO)", "",
                  "| benchmark | median |", "|---|---:|"]
        lines += [f"| {name} | {fmt_ns(ns)} |" for name, ns in crit]
        lines.append("")

    if goals:
        lines += ["**Goals**", ""] + [f"- {g}" for g in goals] + [""]
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    global BENCH_DIR, CRITERION_DIR
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", help="rewrite the block between the bench markers in this file")
    ap.add_argument("--bench-dir", default=str(BENCH_DIR), help="where make bench wrote its JSON")
    ap.add_argument("--criterion-dir", default=str(CRITERION_DIR))
    args = ap.parse_args()
    BENCH_DIR, CRITERION_DIR = Path(args.bench_dir), Path(args.criterion_dir)
    table = render()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_DIR / "results.md").write_text(table)
    print(table)
    if args.readme:
        readme = Path(args.readme)
        text = readme.read_text()
        if START not in text or END not in text:
            raise SystemExit(f"{readme}: no {START} ... {END} block to fill")
        pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
        readme.write_text(pattern.sub(lambda _: f"{START}\n{table}{END}", text, count=1))
        print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
