"""The compare-tools workload (bench/compare-tools.sh) for Locust.

Locust ships no plain WebSocket user, so each user holds one `websocket-client` connection (its
blocking socket calls cooperate under Locust's gevent): connect with the token in the
Authorization header, wait for `connection_established`, subscribe to `alerts`, then count every
text frame after `subscription_confirmed` (no parsing) until BENCH_END_AT, when the user closes its
connection itself; frames still queued then are not counted, as with every other tool. UTF-8
validation is off (`skip_utf8_validation`, as websocket-client's documentation advises for speed):
in pure Python it cost more than everything else per event.

Locust reports the request times it is told about; this file tells it two per user, `connect`
(upgrade until `connection_established`) and `subscribe` (until `subscription_confirmed`). It is
told nothing per event: a per-event `events.request.fire` would add Locust's own statistics work
to every message, and an event's latency is not known without parsing its data.

When Locust quits, the counts and those two request statistics go to the JSON file named by
BENCH_LOCUST_OUT. Settings come from the environment, set by the script:
BENCH_WS_URL, BENCH_TOKEN, BENCH_END_AT (Unix seconds: the end of the run for every client),
BENCH_LOCUST_OUT.
"""

import json
import os
import time

import websocket
from locust import User, constant, events, task

WS_URL = os.environ.get("BENCH_WS_URL", "ws://127.0.0.1:8080/v1/ws")
TOKEN = os.environ.get("BENCH_TOKEN", "")
END_AT = float(os.environ.get("BENCH_END_AT", "0"))
OUT = os.environ.get("BENCH_LOCUST_OUT", "locust-counts.json")
SUBSCRIBE = json.dumps({"type": "subscribe", "topics": ["alerts"], "id": "locust"})
ANSWER_TIMEOUT_S = 10

COUNTS = {
    "started": 0,
    "established": 0,
    "subscribed": 0,
    "events": 0,
    "failed": 0,
    "closed_early": 0,
}


def _report(name, started, error=None):
    events.request.fire(
        request_type="WS",
        name=name,
        response_time=(time.perf_counter() - started) * 1000.0,
        response_length=0,
        exception=error,
        context={},
    )


class Subscriber(User):
    wait_time = constant(1)

    def on_start(self):
        COUNTS["started"] += 1
        self.ws = None
        started = time.perf_counter()
        try:
            ws = websocket.create_connection(
                WS_URL,
                header=[f"Authorization: Bearer {TOKEN}"],
                timeout=ANSWER_TIMEOUT_S,
                skip_utf8_validation=True,
            )
            first = ws.recv()
            if '"connection_established"' not in first:
                raise RuntimeError(f"first message is not connection_established: {first[:200]}")
        except Exception as error:  # noqa: BLE001 - any failure to connect is counted and reported
            COUNTS["failed"] += 1
            _report("connect", started, error)
            return
        _report("connect", started)
        COUNTS["established"] += 1
        started = time.perf_counter()
        try:
            ws.send(SUBSCRIBE)
            while '"subscription_confirmed"' not in ws.recv():
                pass
        except Exception as error:  # noqa: BLE001
            _report("subscribe", started, error)
            return
        _report("subscribe", started)
        COUNTS["subscribed"] += 1
        # Events may be seconds apart (before the publisher starts): a receive wakes up once a
        # second without an event, so the user can see the run's end and close by itself.
        ws.settimeout(1)
        self.ws = ws

    @task
    def receive(self):
        ws = self.ws
        if ws is None:
            return
        self.ws = None
        try:
            while True:
                try:
                    opcode, _ = ws.recv_data()
                except websocket.WebSocketTimeoutException:
                    if time.time() >= END_AT:
                        break
                    continue
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    # What is still queued at the end is not received: a user that lags
                    # behind stops at the same time as every other tool's clients.
                    if time.time() >= END_AT:
                        break
                    COUNTS["events"] += 1
                elif opcode == websocket.ABNF.OPCODE_CLOSE:
                    raise websocket.WebSocketConnectionClosedException("closed by the server")
        except Exception:  # noqa: BLE001 - a close before the end is what is counted
            if time.time() < END_AT:
                COUNTS["closed_early"] += 1
            return
        try:
            ws.close(timeout=2)
        except Exception:  # noqa: BLE001 - the run is over; a failed close changes no count
            pass


def _request_stats(environment, name):
    entry = environment.stats.entries.get((name, "WS"))
    if entry is None or entry.num_requests == 0:
        return None
    return {
        "count": entry.num_requests,
        "failures": entry.num_failures,
        "p50_ms": entry.get_response_time_percentile(0.5),
        "p99_ms": entry.get_response_time_percentile(0.99),
        "max_ms": entry.max_response_time,
    }


@events.quitting.add_listener
def _write_counts(environment, **_kwargs):
    result = dict(COUNTS)
    result["tool"] = "locust"
    result["sustained"] = COUNTS["subscribed"] - COUNTS["closed_early"]
    result["requests"] = {
        name: _request_stats(environment, name) for name in ("connect", "subscribe")
    }
    with open(OUT, "w", encoding="utf-8") as out:
        json.dump(result, out)
        out.write("\n")
