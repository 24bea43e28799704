// AgentLedger console: the little the server cannot render. No inline script anywhere (CSP).
"use strict";

// Waterfall bars: placed from data attributes (inline styles are blocked by the CSP).
function placeBars(root) {
  root.querySelectorAll(".wf-bar[data-left]").forEach(function (bar) {
    bar.style.left = bar.dataset.left + "%";
    bar.style.width = bar.dataset.width + "%";
  });
  root.querySelectorAll(".wf-row[data-depth]").forEach(function (row) {
    var name = row.querySelector(".wf-name");
    if (name) name.style.paddingLeft = (Number(row.dataset.depth) * 14) + "px";
  });
}

// Keyboard: j/k (or arrows) move between spans of the waterfall; Enter opens one.
function waterfallKeys(event) {
  if (event.target.matches("input, select, textarea")) return;
  if (document.querySelector(".waterfall[data-virtual]")) return; // waterfall.js moves there
  var rows = Array.prototype.slice.call(document.querySelectorAll(".wf-row"));
  if (!rows.length) return;
  var down = event.key === "j" || event.key === "ArrowDown";
  var up = event.key === "k" || event.key === "ArrowUp";
  if (!down && !up) return;
  var at = rows.indexOf(document.activeElement);
  if (at < 0) at = rows.findIndex(function (r) { return r.classList.contains("selected"); });
  var next = rows[Math.max(0, Math.min(rows.length - 1, at + (down ? 1 : -1)))];
  next.focus();
  event.preventDefault();
}

function markSelected(event) {
  var link = event.target.closest(".wf-row");
  if (!link) return;
  document.querySelectorAll(".wf-row.selected").forEach(function (r) { r.classList.remove("selected"); });
  link.classList.add("selected");
}

// Usage charts: uPlot over the series the page embeds as JSON.
function drawCharts() {
  var data = document.getElementById("usage-series");
  if (!data || typeof uPlot === "undefined") return;
  var points = JSON.parse(data.textContent || "[]");
  var css = getComputedStyle(document.documentElement);
  var palette = [css.getPropertyValue("--accent"), css.getPropertyValue("--err"), css.getPropertyValue("--llm")];
  document.querySelectorAll(".chart[data-chart]").forEach(function (el) {
    var keys = el.dataset.chart.split(",");
    var series = [{}].concat(keys.map(function (k, i) {
      var known = points.filter(function (p) { return p[k] != null && p[k] !== 0; }).length;
      return { label: k, stroke: palette[i % palette.length].trim(), width: 2, points: { show: known < 3 } };
    }));
    var cols = [points.map(function (p) { return p.t; })].concat(keys.map(function (k) {
      return points.map(function (p) { return p[k] == null ? null : p[k]; });
    }));
    var axis = { stroke: css.getPropertyValue("--muted").trim(), grid: { stroke: css.getPropertyValue("--line").trim() } };
    el.textContent = "";
    new uPlot({ width: Math.max(el.clientWidth, 300), height: 200, series: series, axes: [axis, axis] }, cols, el);
  });
}

document.addEventListener("DOMContentLoaded", function () {
  placeBars(document);
  drawCharts();
  document.addEventListener("keydown", waterfallKeys);
  document.addEventListener("click", markSelected);
});
document.addEventListener("htmx:afterSwap", function (event) { placeBars(event.target); });
