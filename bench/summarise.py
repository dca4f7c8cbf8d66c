#!/usr/bin/env python3
"""Helpers of bench/compare-tools.sh: sample the server, collect one run, summarise them all.

    summarise.py sample METRICS_URL OUT.jsonl SECONDS [PID]
                                one /metrics sample per second (and the CPU time of PID's
                                process tree), for at most SECONDS
    summarise.py meta RUN.json key=value ... -- COMMAND  what the script knows about a run
    summarise.py collect RUN_DIR                        RUN_DIR/result.json from the raw files
    summarise.py table OUT_DIR                          medians and ratios: summary.md, summary.json

Only the standard library. Every figure it prints comes from the files a run left behind:
`/usr/bin/time -v` of the load generator (CPU = user + system seconds, peak RSS = maximum
resident set size), the tool's own counts (the harness's report.json, Artillery's --output
report, the locustfile's JSON, the floor client's JSON line), and the server's /metrics.
"""

import json
import math
import os
import re
import statistics
import sys
import time
import urllib.request
from pathlib import Path

TOOLS = ["harness", "artillery", "locust", "floor"]
TOOL_NAMES = {
    "harness": "openframe-harness",
    "artillery": "Artillery 2 (ws engine + processor)",
    "locust": "Locust (websocket-client user)",
    "floor": "floor (tokio-tungstenite, counts only)",
}
METRICS = {
    "openframe_connections_open": "connections_open",
    'openframe_subscriptions{topic="alerts"}': "subscriptions_alerts",
    "openframe_events_published_total": "events_published",
    "openframe_events_delivered_total": "events_delivered",
    "openframe_events_dropped_full_queue_total": "events_dropped_full_queue",
    "openframe_slow_consumer_disconnects_total": "slow_consumer_disconnects",
    "openframe_ping_timeouts_total": "ping_timeouts",
}


# ---- sample ----


def tree_cpu_s(root):
    """User + system CPU seconds of the live processes under `root` (itself included)."""
    parents, cpu = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        cpu[pid] = int(fields[11]) + int(fields[12])
    total = 0
    for pid in cpu:
        walk = pid
        while walk > 1 and walk != root:
            walk = parents.get(walk, 0)
        if walk == root:
            total += cpu[pid]
    return total / os.sysconf("SC_CLK_TCK")


def sample(url, out, seconds, root=None):
    deadline = time.time() + float(seconds)
    with open(out, "a", encoding="utf-8") as sink:
        while time.time() < deadline:
            tick = time.time()
            row = {"t_ms": int(tick * 1000)}
            if root is not None:
                row["generator_cpu_s"] = tree_cpu_s(int(root))
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    text = response.read().decode()
                for line in text.splitlines():
                    name, _, value = line.rpartition(" ")
                    if name in METRICS:
                        row[METRICS[name]] = float(value)
            except OSError as error:
                row["error"] = str(error)
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            time.sleep(max(0.0, 1.0 - (time.time() - tick)))


# ---- meta ----


def meta(out, args):
    split = args.index("--") if "--" in args else len(args)
    record = {}
    for pair in args[:split]:
        key, _, value = pair.partition("=")
        try:
            record[key] = int(value)
        except ValueError:
            record[key] = value
    record["command"] = args[split + 1 :]
    Path(out).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


# ---- collect ----


def read_time(path):
    """CPU seconds, peak RSS and wall time from a `/usr/bin/time -v` file."""
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8", errors="replace")

    def field(label):
        match = re.search(re.escape(label) + r":\s*(\S+)", text)
        return match.group(1) if match else None

    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)") or "0:0"
    seconds = 0.0
    for part in wall.split(":"):
        seconds = seconds * 60 + float(part)
    return {
        "cpu_s": round(float(field("User time (seconds)") or 0) + float(field("System time (seconds)") or 0), 3),
        "user_s": float(field("User time (seconds)") or 0),
        "system_s": float(field("System time (seconds)") or 0),
        "peak_rss_mib": round(int(field("Maximum resident set size (kbytes)") or 0) / 1024, 1),
        "wall_s": round(seconds, 2),
        "signalled": "terminated by signal" in text,
    }


def read_json(path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def last_json_line(path):
    try:
        lines = [l for l in path.read_text(encoding="utf-8").splitlines() if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def server_view(run, rows):
    """Server-side figures over the publishing window (tool-independent)."""
    publish_from = run["started_ms"] + (run["ramp_s"] + run["settle_s"]) * 1000
    publish_to = publish_from + run["window_s"] * 1000
    inside = [r for r in rows if publish_from + 1000 <= r["t_ms"] <= publish_to - 1000 and "subscriptions_alerts" in r]
    ok = [r for r in rows if "events_delivered" in r]
    before = [r["generator_cpu_s"] for r in rows if "generator_cpu_s" in r and r["t_ms"] <= publish_from]
    after = [r["generator_cpu_s"] for r in rows if "generator_cpu_s" in r and r["t_ms"] >= publish_to]
    view = {
        "generator_cpu_s_in_window": round(after[0] - before[-1], 3) if before and after else None,
        "generator_cpu_window_s": round((publish_to - publish_from) / 1000 + 2, 1),
        "subscriptions_min_in_window": min((r["subscriptions_alerts"] for r in inside), default=None),
        "subscriptions_max": max((r.get("subscriptions_alerts", 0) for r in ok), default=None),
        "samples_in_window": len(inside),
    }
    if ok:
        last = ok[-1]
        for key in ("events_published", "events_delivered", "events_dropped_full_queue", "slow_consumer_disconnects", "ping_timeouts"):
            view[key] = last.get(key)
    return view


def tool_view(tool, run_dir):
    """The tool's own counts and whatever latency it reported."""
    view = {"latency": None}
    if tool == "harness":
        report = read_json(run_dir / "harness-report" / "report.json")
        if report is None:
            return view
        counters = report.get("counters", {})
        fanout = report.get("latency_us", {}).get("fanout", {})
        view.update(
            events=counters.get("events_delivered"),
            sustained=report.get("peak_clients"),
            failed=counters.get("connections_failed"),
            closed_early=counters.get("unexpected_closes"),
            events_missing=counters.get("events_missing"),
            valid=report.get("valid"),
            passed=report.get("passed"),
            reasons=report.get("harness", {}).get("reasons", []),
        )
        if fanout.get("count"):
            view["latency"] = {
                "kind": "fan-out (intended publish time -> receipt, every delivery, HdrHistogram)",
                "count": fanout["count"],
                "p50_ms": fanout["p50"] / 1000,
                "p99_ms": fanout["p99"] / 1000,
                "max_ms": fanout["max"] / 1000,
            }
    elif tool == "artillery":
        report = read_json(run_dir / "artillery-report.json")
        if report is None:
            return view
        aggregate = report.get("aggregate", {})
        counters = aggregate.get("counters", {})
        summaries = aggregate.get("summaries", {})
        subscribed = counters.get("openframe.subscribed", 0)
        closed = counters.get("openframe.closed_early", 0)
        view.update(
            events=counters.get("openframe.events_received", 0),
            sustained=subscribed - closed,
            subscribed=subscribed,
            closed_early=closed,
            failed=counters.get("vusers.failed", 0),
            errors={k: v for k, v in counters.items() if k.startswith("errors.")},
            websocket_messages_received=counters.get("websocket.messages_received", 0),
        )
        subscribe = summaries.get("openframe.subscribe_ms")
        if subscribe and subscribe.get("count"):
            view["latency"] = {
                "kind": "subscribe -> subscription_confirmed (the processor's own histogram; the ws engine times nothing)",
                "count": subscribe["count"],
                "p50_ms": subscribe.get("median", subscribe.get("p50")),
                "p99_ms": subscribe.get("p99"),
                "max_ms": subscribe.get("max"),
            }
    elif tool == "locust":
        counts = read_json(run_dir / "locust-counts.json")
        if counts is None:
            return view
        view.update(
            events=counts["events"],
            sustained=counts["sustained"],
            subscribed=counts["subscribed"],
            closed_early=counts["closed_early"],
            failed=counts["failed"],
        )
        requests = counts.get("requests", {})
        if requests.get("subscribe"):
            view["latency"] = {
                "kind": "connect and subscribe request times (told to Locust by the locustfile)",
                "count": requests["subscribe"]["count"],
                "p50_ms": requests["subscribe"]["p50_ms"],
                "p99_ms": requests["subscribe"]["p99_ms"],
                "max_ms": requests["subscribe"]["max_ms"],
                "connect": requests.get("connect"),
            }
        err = (run_dir / "generator.err").read_text(encoding="utf-8", errors="replace")
        view["cpu_warning"] = "CPU usage above" in err or "CPU usage was too high" in err
    elif tool == "floor":
        line = last_json_line(run_dir / "generator.out")
        if line is None:
            return view
        view.update(
            events=line["events"],
            sustained=line["sustained"],
            subscribed=line["subscribed"],
            closed_early=line["closed_early"],
            failed=line["failed"],
        )
    return view


def collect(run_dir):
    run_dir = Path(run_dir)
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    rows = []
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        rows = [json.loads(l) for l in metrics.read_text(encoding="utf-8").splitlines() if l.strip()]
    planned = math.ceil(run["window_s"] * run["rate_per_s"])
    own = tool_view(run["tool"], run_dir)
    generator = read_time(run_dir / "generator.time")
    events = own.get("events")
    result = {
        "tool": run["tool"],
        "clients": run["clients"],
        "rep": run["rep"],
        "loadavg_at_start": run["loadavg_at_start"],
        "loadavg_at_end": run["loadavg_at_end"],
        "generator_exit": run["generator_exit"],
        "publisher_exit": run["publisher_exit"],
        "window_s": run["window_s"],
        "rate_per_s": run["rate_per_s"],
        "events_planned_per_client": planned,
        "generator": generator,
        "publisher": read_time(run_dir / "publisher.time"),
        "server": server_view(run, rows),
        "server_cpu_s": round(run["server_cpu_ticks"] / os.sysconf("SC_CLK_TCK"), 2),
        "own": own,
        "events_per_s": round(events / run["window_s"], 1) if events is not None else None,
        "owed_fraction": round(events / (run["clients"] * planned), 4) if events is not None else None,
    }
    window_cpu = result["server"].pop("generator_cpu_s_in_window")
    result["generator_cpu_s_in_window"] = window_cpu
    result["cpu_us_per_event_in_window"] = round(window_cpu * 1e6 / events, 1) if window_cpu is not None and events else None
    (run_dir / "result.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(
        f"  {run['tool']:>9} n={run['clients']} #{run['rep']}: sustained {result['server']['subscriptions_min_in_window']} "
        f"(own {own.get('sustained')}), events/s {result['events_per_s']}, "
        f"cpu {generator and generator['cpu_s']} s ({window_cpu} in window), rss {generator and generator['peak_rss_mib']} MiB, "
        f"exit {run['generator_exit']}"
    )


# ---- table ----


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=1):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def ratio(a, b):
    if a is None or not b:
        return "–"
    return f"{a / b:.2f}×"


def latency_text(tool, results):
    lat = [r["own"].get("latency") for r in results if r["own"].get("latency")]
    if tool == "floor":
        return "none (counts only)"
    if not lat:
        return "none reported in these runs"
    p50 = median([l.get("p50_ms") for l in lat])
    p99 = median([l.get("p99_ms") for l in lat])
    if tool == "harness":
        untrusted = sum(1 for r in results if r["own"].get("valid") is False)
        note = (
            f" ({untrusted} of {len(results)} runs judged untrustworthy by the harness itself: "
            "its event loop lagged, exit 4)"
            if untrusted
            else ""
        )
        return f"fan-out from intended publish time, every delivery: p50 {fmt(p50, 2)} ms, p99 {fmt(p99, 2)} ms{note}"
    if tool == "artillery":
        return f"only what a processor times itself: subscribe→confirmed p50 {fmt(p50, 1)} ms, p99 {fmt(p99, 1)} ms; no event latency"
    if tool == "locust":
        connect = median([(l.get("connect") or {}).get("p50_ms") for l in lat])
        return (
            f"only requests it is told of: connect p50 {fmt(connect, 1)} ms, subscribe p50 {fmt(p50, 1)} ms, "
            f"p99 {fmt(p99, 1)} ms; no event latency"
        )
    return "–"


# ---- ceiling sweep ----

OWED_FRACTION_HELD = 0.999


def kept_up(result):
    """Whether one run received >= 99.9 % of the owed events by the common end (and, for the
    harness, judged its own figures trustworthy)."""
    owed = result["owed_fraction"]
    trusted = result["tool"] != "harness" or result["own"].get("valid") is True
    return owed is not None and owed >= OWED_FRACTION_HELD and trusted


def held_rates(group, tool):
    """{rate: (runs that kept up, runs)} for one tool."""
    held = {}
    for rate in sorted({r["rate_per_s"] for r in group}):
        runs = [r for r in group if r["tool"] == tool and r["rate_per_s"] == rate]
        if runs:
            held[rate] = (sum(1 for r in runs if kept_up(r)), len(runs))
    return held


def ceiling_of(held):
    """The highest rate held by most of its runs with every lower rate held too (None: not even the
    lowest)."""
    ceiling = None
    for rate, (kept, runs) in sorted(held.items()):
        if kept * 2 <= runs:
            break
        ceiling = rate
    return ceiling


def ceilings(group):
    tools = [t for t in TOOLS if any(r["tool"] == t for r in group)]
    return {tool: ceiling_of(held_rates(group, tool)) for tool in tools}


def ceiling_lines(clients, group):
    rates = sorted({r["rate_per_s"] for r in group})
    tools = [t for t in TOOLS if any(r["tool"] == t for r in group)]
    lines = [
        f"#### The generators' ceilings at {clients:,} clients",
        "",
        "Runs that kept up, per rate: received >= 99.9 % of the owed events (clients × events published in "
        "the window) by the common end, and for the harness also trusted by its own judgement (exit 0 or 1, "
        "not 4). A rate is held when most of its runs kept up; the ceiling is the highest rate held with "
        "every lower rate held too. The median share of the owed events received is in brackets.",
        "",
        "| tool | " + " | ".join(f"{rate}/s ({rate * clients:,} deliveries/s)" for rate in rates) + " | ceiling |",
        "|---|" + "---|" * (len(rates) + 1),
    ]
    found = ceilings(group)
    for tool in tools:
        held = held_rates(group, tool)
        cells = []
        for rate in rates:
            if rate not in held:
                cells.append("–")
                continue
            kept, runs = held[rate]
            owed = median([r["owed_fraction"] for r in group if r["tool"] == tool and r["rate_per_s"] == rate])
            share = f"{owed * 100:.2f} %" if owed is not None else "no count"
            cells.append(f"{kept}/{runs} ({share})")
        ceiling = found[tool]
        lines.append(f"| {TOOL_NAMES[tool]} | " + " | ".join(cells) + f" | {f'{ceiling}/s' if ceiling else 'below the lowest rate'} |")
    lines.append("")
    harness = found.get("harness")
    for other in ("artillery", "locust", "floor"):
        if other in found and harness:
            theirs = found[other]
            text = f"{harness / theirs:.1f}×" if theirs else f"more than {harness / rates[0]:.0f}× (it held not even {rates[0]}/s)"
            lines.append(f"- harness ceiling vs {TOOL_NAMES[other]}: {text}")
    lines.append("")
    return lines


def table(out_dir):
    out_dir = Path(out_dir)
    results = []
    for path in sorted(out_dir.glob("n*/*/result.json")):
        results.append(json.loads(path.read_text(encoding="utf-8")))
    if not results:
        sys.exit(f"no result.json under {out_dir}")
    lines = []
    summary = {}
    machine = out_dir / "machine.txt"
    if machine.exists():
        lines += ["```", machine.read_text(encoding="utf-8").strip(), "```", ""]
    for clients, rate in sorted({(r["clients"], r["rate_per_s"]) for r in results}):
        group = [r for r in results if r["clients"] == clients and r["rate_per_s"] == rate]
        tools = [t for t in TOOLS if any(r["tool"] == t for r in group)]
        reps = max(r["rep"] for r in group)
        first = group[0]
        loads = [float(r["loadavg_at_start"].split()[0]) for r in group]
        lines.append(
            f"#### {clients:,} clients, {first['events_planned_per_client']} events each "
            f"({first['rate_per_s']}/s for {first['window_s']} s), "
            f"medians of {reps} runs per tool"
        )
        lines.append("")
        lines.append(
            f"Load average (1 min) at the start of each run: min {min(loads):.2f}, "
            f"median {statistics.median(loads):.2f}, max {max(loads):.2f} ({os.cpu_count()} cores)."
        )
        lines.append("")
        medians = {}
        for tool in tools:
            rs = [r for r in group if r["tool"] == tool]
            medians[tool] = {
                "runs": len(rs),
                "sustained_server": median([r["server"]["subscriptions_min_in_window"] for r in rs]),
                "sustained_own": median([r["own"].get("sustained") for r in rs]),
                "events_per_s": median([r["events_per_s"] for r in rs]),
                "owed_fraction": median([r["owed_fraction"] for r in rs]),
                "cpu_s": median([(r["generator"] or {}).get("cpu_s") for r in rs]),
                "peak_rss_mib": median([(r["generator"] or {}).get("peak_rss_mib") for r in rs]),
                "cpu_s_window": median([r["generator_cpu_s_in_window"] for r in rs]),
                "cpu_us_per_event": median([r["cpu_us_per_event_in_window"] for r in rs]),
                "publisher_cpu_s": median([(r["publisher"] or {}).get("cpu_s") for r in rs]),
                "server_cpu_s": median([r["server_cpu_s"] for r in rs]),
                "slow_consumer_disconnects": median([r["server"].get("slow_consumer_disconnects") for r in rs]),
                "loadavg_median": statistics.median(float(r["loadavg_at_start"].split()[0]) for r in rs),
                "latency": latency_text(tool, rs),
            }
        summary[f"{clients} clients at {rate}/s"] = medians
        lines.append(
            "| tool | clients sustained (server / own count) | events received/s | of owed | CPU s, whole run | "
            "CPU s, publishing window | peak RSS MiB | CPU µs per event (window) |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for tool in tools:
            m = medians[tool]
            owed = f"{m['owed_fraction'] * 100:.2f} %" if m["owed_fraction"] is not None else "–"
            lines.append(
                f"| {TOOL_NAMES[tool]} | {fmt(m['sustained_server'], 0)} / {fmt(m['sustained_own'], 0)} | "
                f"{fmt(m['events_per_s'], 0)} | {owed} | {fmt(m['cpu_s'], 2)} | {fmt(m['cpu_s_window'], 2)} | "
                f"{fmt(m['peak_rss_mib'], 1)} | {fmt(m['cpu_us_per_event'], 1)} |"
            )
        lines.append("")
        lines.append(
            "| tool | CPU (run) vs floor | CPU (window) vs floor | RSS vs floor | "
            "CPU (run) vs harness | CPU (window) vs harness | RSS vs harness |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        floor = medians.get("floor", {})
        harness = medians.get("harness", {})
        for tool in tools:
            m = medians[tool]
            lines.append(
                f"| {TOOL_NAMES[tool]} | {ratio(m['cpu_s'], floor.get('cpu_s'))} | "
                f"{ratio(m['cpu_s_window'], floor.get('cpu_s_window'))} | "
                f"{ratio(m['peak_rss_mib'], floor.get('peak_rss_mib'))} | {ratio(m['cpu_s'], harness.get('cpu_s'))} | "
                f"{ratio(m['cpu_s_window'], harness.get('cpu_s_window'))} | "
                f"{ratio(m['peak_rss_mib'], harness.get('peak_rss_mib'))} |"
            )
        lines.append("")
        lines.append("| tool | latency it reported |")
        lines.append("|---|---|")
        for tool in tools:
            lines.append(f"| {TOOL_NAMES[tool]} | {medians[tool]['latency']} |")
        lines.append("")
        publisher = median([medians[t]["publisher_cpu_s"] for t in tools if t != "harness"])
        server = {t: medians[t]["server_cpu_s"] for t in tools}
        lines.append(
            f"The separate publisher process (the other tools' event source; inside the harness in its own "
            f"runs, so included in its CPU figure) used a median {fmt(publisher, 2)} CPU s per run. "
            "Server CPU s per run (median): "
            + ", ".join(f"{t} {fmt(server[t], 2)}" for t in tools)
            + "."
        )
        lines.append("")
        lines.append("<details><summary>every run</summary>")
        lines.append("")
        lines.append(
            "| tool | rep | load at start | sustained (server / own) | events/s | CPU s (run / window) | "
            "peak RSS MiB | slow-consumer cuts | exit |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for r in sorted(group, key=lambda r: (r["rep"], TOOLS.index(r["tool"]))):
            g = r["generator"] or {}
            lines.append(
                f"| {r['tool']} | {r['rep']} | {r['loadavg_at_start']} | "
                f"{fmt(r['server']['subscriptions_min_in_window'], 0)} / {fmt(r['own'].get('sustained'), 0)} | "
                f"{fmt(r['events_per_s'], 0)} | {fmt(g.get('cpu_s'), 2)} / {fmt(r['generator_cpu_s_in_window'], 2)} | "
                f"{fmt(g.get('peak_rss_mib'), 1)} | "
                f"{fmt(r['server'].get('slow_consumer_disconnects'), 0)} | {r['generator_exit']} |"
            )
        lines.append("")
        lines.append("</details>")
        lines.append("")
    for clients in sorted({r["clients"] for r in results}):
        group = [r for r in results if r["clients"] == clients]
        if len({r["rate_per_s"] for r in group}) > 1:
            lines += ceiling_lines(clients, group)
            summary[f"{clients} clients: ceiling"] = ceilings(group)
    text = "\n".join(lines)
    (out_dir / "summary.md").write_text(text + "\n", encoding="utf-8")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(text)


def main(argv):
    if len(argv) in (4, 5) and argv[0] == "sample":
        sample(*argv[1:])
    elif len(argv) >= 2 and argv[0] == "meta":
        meta(argv[1], argv[2:])
    elif len(argv) == 2 and argv[0] == "collect":
        collect(argv[1])
    elif len(argv) == 2 and argv[0] == "table":
        table(argv[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
