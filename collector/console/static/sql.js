// The SQL page: Ctrl/Cmd+Enter runs the query; a result with a time column is charted with uPlot.
(function () {
  function toSeconds(value) {
    if (value == null) return null;
    if (typeof value === "number") return value;
    var text = String(value);
    if (/^\d{4}-\d{2}-\d{2}$/.test(text)) text += "T00:00:00Z";
    else if (!/[zZ]|[+-]\d{2}:?\d{2}$/.test(text)) text = text.replace(" ", "T") + "Z";
    var ms = Date.parse(text);
    return isNaN(ms) ? null : ms / 1000;
  }

  function drawChart() {
    var data = document.getElementById("sql-series");
    var el = document.querySelector(".sql-chart");
    if (!data || !el || typeof uPlot === "undefined") return;
    var s = JSON.parse(data.textContent || "{}");
    var order = s.x.map(function (v, i) { return [toSeconds(v), i]; })
      .filter(function (p) { return p[0] != null; })
      .sort(function (a, b) { return a[0] - b[0]; });
    var css = getComputedStyle(document.documentElement);
    var palette = ["--accent", "--err", "--llm", "--muted"].map(function (v) { return css.getPropertyValue(v).trim() || "#3366cc"; });
    var cols = [order.map(function (p) { return p[0]; })].concat(s.ys.map(function (ys) {
      return order.map(function (p) { var v = ys[p[1]]; return v == null ? null : Number(v); });
    }));
    var series = [{}].concat(s.names.slice(1).map(function (name, i) {
      return { label: name, stroke: palette[i % palette.length], width: 2, points: { show: order.length < 3 } };
    }));
    var axis = { stroke: css.getPropertyValue("--muted").trim(), grid: { stroke: css.getPropertyValue("--line").trim() } };
    el.textContent = "";
    new uPlot({ width: Math.max(el.clientWidth, 300), height: 220, series: series, axes: [axis, axis] }, cols, el);
    el.dataset.drawn = String(order.length);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("sql-query");
    if (box) {
      box.addEventListener("keydown", function (e) {
        if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); box.form.submit(); }
      });
    }
    drawChart();
  });
})();
