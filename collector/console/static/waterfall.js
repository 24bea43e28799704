// AgentLedger console: the waterfall of a trace of many spans, virtualized.
// Only the rows in view (and a margin) are in the document; pages of the outline are asked of the
// server as they scroll into view. Rows are built with DOM calls, never markup: span names are
// what agents recorded. @tanstack/virtual-core is vendored (scripts/vendor_console.sh).
import "./production.js";
import {
  Virtualizer,
  elementScroll,
  observeElementOffset,
  observeElementRect,
} from "./vendor/virtual-core/index.js";

var ROW = 28; // px, as .wf-virtual .wf-row in console.css

function duration(ms) {
  if (ms >= 60000) return (ms / 60000).toFixed(1) + " min";
  if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
  return ms >= 10 ? ms.toFixed(0) + " ms" : ms.toFixed(1) + " ms";
}

function el(tag, cls, text) {
  var node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text != null) node.textContent = text;
  return node;
}

function boot() {
  var section = document.querySelector(".waterfall[data-virtual]");
  if (!section || section.dataset.booted) return;
  section.dataset.booted = "1";
  var scroller = section.querySelector(".wf-scroll");
  var list = section.querySelector(".wf-rows");
  var total = Number(section.dataset.total);
  var pageSize = Number(section.dataset.page) || 500;
  var rowsUrl = section.dataset.rows;
  var traceUrl = section.dataset.trace;
  var selected = section.dataset.selected;
  var rows = new Array(total);
  var pages = {};
  var first = JSON.parse(document.getElementById("wf-first").textContent || "[]");
  first.forEach(function (r, i) { rows[i] = r; });
  pages[0] = "done";
  var focusNext = -1;

  function load(page) {
    pages[page] = "loading";
    var url = rowsUrl + "?offset=" + page * pageSize + "&limit=" + pageSize;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
      .then(function (data) {
        data.rows.forEach(function (r, i) { rows[data.offset + i] = r; });
        pages[page] = "done";
        render();
      })
      .catch(function () { delete pages[page]; }); // asked again on the next scroll
  }

  function row(index, start) {
    var li = el("li");
    li.dataset.index = String(index);
    li.style.transform = "translateY(" + start + "px)";
    var r = rows[index];
    if (!r) {
      li.appendChild(el("span", "wf-loading muted", "loading…"));
      return li;
    }
    var a = el("a", "wf-row" + (r.id === selected ? " selected" : ""));
    a.href = traceUrl + "?span=" + r.id;
    a.setAttribute("hx-get", traceUrl + "/spans/" + r.id);
    a.setAttribute("hx-target", "#span-panel");
    a.setAttribute("hx-swap", "innerHTML");
    a.setAttribute("hx-push-url", traceUrl + "?span=" + r.id);
    a.dataset.spanId = r.id;
    a.dataset.depth = String(r.d);
    var name = el("span", "wf-name");
    name.style.paddingLeft = r.d * 14 + "px";
    name.appendChild(el("span", "kind kind-" + r.k.toLowerCase(), r.k));
    name.appendChild(document.createTextNode(" " + r.n + " "));
    if (r.g) {
      var paused = r.p > 0 ? " · paused " + r.p.toFixed(2) + " s" : "";
      var badge = el("span", "badge gov", "governed" + paused);
      badge.title = "governed tool call";
      name.appendChild(badge);
    }
    if (r.st === "ERROR") name.appendChild(el("span", "status status-error", "error"));
    var track = el("span", "wf-track");
    var bar = el("span", "wf-bar kind-" + r.k.toLowerCase());
    bar.style.left = r.l + "%";
    bar.style.width = r.w + "%";
    track.appendChild(bar);
    a.appendChild(name);
    a.appendChild(track);
    a.appendChild(el("span", "wf-dur num", duration(r.ms)));
    li.appendChild(a);
    return li;
  }

  var virtualizer = new Virtualizer({
    count: total,
    getScrollElement: function () { return scroller; },
    estimateSize: function () { return ROW; },
    overscan: 20,
    scrollToFn: elementScroll,
    observeElementRect: observeElementRect,
    observeElementOffset: observeElementOffset,
    onChange: function () { render(); },
  });

  function render() {
    var items = virtualizer.getVirtualItems();
    var fragment = document.createDocumentFragment();
    items.forEach(function (item) {
      var page = Math.floor(item.index / pageSize);
      if (!pages[page]) load(page);
      fragment.appendChild(row(item.index, item.start));
    });
    list.style.height = virtualizer.getTotalSize() + "px";
    list.replaceChildren(fragment);
    if (window.htmx) window.htmx.process(list);
    if (focusNext >= 0) {
      var target = list.querySelector('li[data-index="' + focusNext + '"] .wf-row');
      if (target) { target.focus(); focusNext = -1; }
    }
  }

  // j/k (or arrows) move through every span, scrolling the ones not in the document into view
  document.addEventListener("keydown", function (event) {
    if (event.target.matches("input, select, textarea")) return;
    var down = event.key === "j" || event.key === "ArrowDown";
    var up = event.key === "k" || event.key === "ArrowUp";
    if (!down && !up) return;
    var at = document.activeElement && document.activeElement.closest("li[data-index]");
    var index = at ? Number(at.dataset.index) : rows.findIndex(function (r) { return r && r.id === selected; });
    var next = Math.max(0, Math.min(total - 1, (index < 0 ? -1 : index) + (down ? 1 : -1)));
    focusNext = next;
    virtualizer.scrollToIndex(next, { align: "auto" });
    render();
    event.preventDefault();
  });
  list.addEventListener("click", function (event) {
    var link = event.target.closest(".wf-row");
    if (link) selected = link.dataset.spanId;
  });

  virtualizer._didMount();
  virtualizer._willUpdate();
  var start = Number(section.dataset.selectedIndex) || 0;
  if (start > 0) virtualizer.scrollToIndex(start, { align: "center" });
  render();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
