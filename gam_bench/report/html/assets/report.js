/* gam-bench HTML report: interactive plots (metric and axes switches over plotly figures
   embedded as JSON) and sortable tables. No network: plotly.js is inlined above. */
(function () {
  "use strict";

  function figuresOf(box) {
    if (!box.gamFigures) {
      box.gamFigures = JSON.parse(box.querySelector("script.figures").textContent);
    }
    return box.gamFigures;
  }

  // Draw the box's plot for its selected metric and axes, keeping which models were hidden.
  function draw(box) {
    var metric = box.querySelector("select.metric").value;
    var axes = box.querySelector("select.axes").value;
    var div = box.querySelector(".plot");
    var fig = figuresOf(box)[metric];
    var shown = (div.data || []).map(function (t) { return t.visible; });
    var data = fig.data.map(function (t, i) {
      var copy = Object.assign({}, t);
      if (shown[i] !== undefined) { copy.visible = shown[i]; }
      return copy;
    });
    var layout = JSON.parse(JSON.stringify(fig.layout));
    layout.xaxis.type = axes;
    layout.yaxis.type = axes;
    if (axes !== "log") {  // length ticks crowd at the left of a linear axis
      delete layout.xaxis.tickvals;
      delete layout.xaxis.ticktext;
    }
    box.removeAttribute("data-drawn");
    return Plotly.react(div, data, layout, { responsive: true, displaylogo: false, showTips: false }).then(function () {
      box.setAttribute("data-drawn", metric + "|" + axes);
    });
  }

  function boxOf(slug) {
    return document.querySelector('.interactive[data-plot="' + slug + '"]');
  }

  function choose(slug, selector, value) {
    var box = boxOf(slug);
    box.querySelector(selector).value = value;
    return draw(box);
  }

  // Sort keys: numbers (1,234 / ≈ 873 / 8k / [0.90, 0.96]) before words; "–" and empty last.
  function sortKey(text) {
    var t = text.trim().replace(/^[≈\[\s]+/, "").replace(/,/g, "");
    var m = /^-?\d+(\.\d+)?([eE][-+]?\d+)?/.exec(t);
    if (m) {
      var v = parseFloat(m[0]);
      if (t.charAt(m[0].length) === "k") { v *= 1024; }
      return [0, v, ""];
    }
    if (t === "" || t === "–") { return [2, 0, ""]; }
    return [1, 0, t.toLowerCase()];
  }

  function compare(a, b) {
    if (a[0] !== b[0]) { return a[0] - b[0]; }
    if (a[1] !== b[1]) { return a[1] - b[1]; }
    return a[2] < b[2] ? -1 : (a[2] > b[2] ? 1 : 0);
  }

  function sortBy(table, col, ascending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var a = sortKey(r1.cells[col] ? r1.cells[col].textContent : "");
      var b = sortKey(r2.cells[col] ? r2.cells[col].textContent : "");
      if (a[0] === 2 || b[0] === 2) { return a[0] - b[0]; }  // missing stays last
      return ascending ? compare(a, b) : compare(b, a);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }

  function sortable(table) {
    var heads = table.querySelectorAll("thead th");
    heads.forEach(function (th, col) {
      th.tabIndex = 0;
      th.classList.add("sortable");
      th.title = "Sort by this column";
      function go() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        sortBy(table, col, ascending);
      }
      th.addEventListener("click", go);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { go(); } });
    });
  }

  function start() {
    document.querySelectorAll(".interactive").forEach(function (box) {
      box.querySelectorAll("select").forEach(function (s) {
        s.addEventListener("change", function () { draw(box); });
      });
      draw(box);
    });
    document.querySelectorAll(".report-section table").forEach(sortable);
  }

  window.gamBench = {
    draw: draw,
    setMetric: function (slug, metric) { return choose(slug, "select.metric", metric); },
    setAxes: function (slug, axes) { return choose(slug, "select.axes", axes); },
  };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
