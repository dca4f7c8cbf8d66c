// Render check: in the browser showing this page, confirm that every chart was laid out and
// drew its series inside its plot area. One line per chart goes into #render-check, where
// tests (headless Chromium --dump-dom) read it. The page does not need this script to display.
(function () {
  var lines = [];
  var charts = document.querySelectorAll("svg.chart");
  for (var i = 0; i < charts.length; i++) {
    var svg = charts[i];
    // Screen rectangles, so transforms and the page's scaling count as drawn.
    var area = svg.querySelector("rect.plot-area").getBoundingClientRect();
    var series = svg.querySelectorAll("path.series");
    var drawn = 0, outside = 0;
    for (var j = 0; j < series.length; j++) {
      var b = series[j].getBoundingClientRect();
      if (b.width > 0 || b.height > 0) drawn++;
      if (b.left < area.left - 1 || b.top < area.top - 1 ||
          b.right > area.right + 1 || b.bottom > area.bottom + 1) outside++;
    }
    var box = svg.getBoundingClientRect();
    lines.push("chart " + svg.id + " series=" + series.length + " drawn=" + drawn + " outside=" + outside +
      " ticks=" + svg.querySelectorAll(".tick").length +
      " width=" + Math.round(box.width) + " height=" + Math.round(box.height));
  }
  var out = document.getElementById("render-check");
  out.textContent = lines.join("\n");
  out.setAttribute("data-charts", String(charts.length));
})();
