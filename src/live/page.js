// The live page: one EventSource on /events; each event replaces the tiles and charts.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const int = (n) => (n === null || n === undefined) ? "–" : Math.round(n).toLocaleString("en-US");
  const lat = (us) => {
    if (us === null || us === undefined) return "–";
    if (us >= 1e6) return (us / 1e6).toFixed(2) + "s";
    if (us >= 1e3) return (us / 1e3).toFixed(1) + "ms";
    return Math.round(us) + "µs";
  };
  const mib = (b) => (b === null || b === undefined) ? "–" : (b / 1048576).toFixed(1) + " MiB";
  const check = [];
  function setBad(id, bad) { $(id).classList.toggle("bad", bad); $(id).classList.toggle("good", !bad); }
  function show(d) {
    $("scenario").textContent = d.scenario + (d.shard ? " (shard " + d.shard + ")" : "");
    document.title = d.scenario + " — live — openframe-harness";
    const badge = $("badge");
    if (d.state === "finished") {
      const text = !d.valid ? "NOT TRUSTWORTHY" : d.passed ? "PASSED" : "FAILED";
      badge.textContent = text;
      badge.className = "badge " + (!d.valid ? "untrusted" : d.passed ? "passed" : "failed");
      const box = $("finished");
      box.hidden = false;
      box.textContent = "The run has finished. Its report is in ";
      const link = document.createElement("a");
      link.href = "file://" + encodeURI(d.report_dir) + "/report.html";
      link.textContent = d.report_dir;
      box.appendChild(link);
      $("state-line").textContent = "Finished after " + d.elapsed_s.toFixed(1) + " s · run " + d.run_id;
    } else {
      badge.textContent = d.state === "starting" ? "STARTING" : "RUNNING";
      badge.className = "badge " + (d.failing ? "failed" : "passed");
      $("state-line").textContent = "Run " + d.run_id + " · " + d.state + " · updated every second";
    }
    $("t-verdict").textContent = d.verdict;
    $("t-elapsed").textContent = d.elapsed_s.toFixed(0) + " s";
    $("t-stage").textContent = d.step ? "capacity step " + d.step : (d.stage || "–");
    $("t-clients").textContent = int(d.clients);
    $("t-delivered-per-s").textContent = int(d.delivered_per_s);
    $("t-p50").textContent = lat(d.fanout_p50_us);
    $("t-p99").textContent = lat(d.fanout_p99_us);
    $("t-delivered").textContent = int(d.events_delivered);
    $("t-missing").textContent = int(d.missing);
    $("t-duplicated").textContent = int(d.duplicated);
    $("t-out-of-order").textContent = int(d.out_of_order);
    setBad("tile-missing", d.missing > 0);
    setBad("tile-duplicated", d.duplicated > 0);
    setBad("tile-out-of-order", d.out_of_order > 0);
    $("t-lag").textContent = lat(d.loop_lag_us) + " / " + lat(d.loop_lag_max_us);
    $("t-server-connections").textContent = d.server ? int(d.server.connections) : "–";
    $("t-server-rss").textContent = d.server ? mib(d.server.rss_bytes) : "–";
    const charts = $("charts");
    for (const c of d.charts) {
      let figure = document.getElementById("fig-" + c.id);
      if (!figure) {
        figure = document.createElement("figure");
        figure.id = "fig-" + c.id;
        charts.appendChild(figure);
      }
      figure.innerHTML = c.svg;
    }
    // What the page showed at each update, for the browser test (newest last, ten kept).
    check.push({ state: d.state, elapsed: $("t-elapsed").textContent, delivered: $("t-delivered").textContent,
                 clients: $("t-clients").textContent, charts: charts.querySelectorAll("svg").length });
    if (check.length > 10) check.shift();
    $("live-check").textContent = JSON.stringify(check);
  }
  const source = new EventSource("/events");
  source.onmessage = (e) => {
    let d;
    try { d = JSON.parse(e.data); } catch (_) { return; }
    show(d);
    if (d.state === "finished") source.close();
  };
  source.onerror = () => {
    if ($("finished").hidden) $("state-line").textContent = "Lost the connection to the run; retrying…";
  };
})();
