// jobs dashboard: small enhancements; every page works without this script.
(function () {
  "use strict";

  var separators = new Intl.NumberFormat("en-US");

  function relative(date, now) {
    var seconds = Math.round((now - date) / 1000);
    var span = Math.abs(seconds);
    if (span < 5) { return "just now"; }
    var units = [[31536000, "year"], [2592000, "month"], [86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];
    for (var i = 0; i < units.length; i++) {
      if (span >= units[i][0]) {
        var count = Math.floor(span / units[i][0]);
        var words = count + " " + units[i][1] + (count === 1 ? "" : "s");
        return seconds >= 0 ? words + " ago" : "in " + words;
      }
    }
    return "just now";
  }

  function refreshTimes() {
    var now = Date.now();
    document.querySelectorAll("time[data-relative]").forEach(function (el) {
      var date = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(date)) { el.textContent = relative(date, now); }
    });
  }

  function confirmations() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
    document.querySelectorAll("button[data-confirm]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        if (!window.confirm(button.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }

  function selectAll() {
    document.querySelectorAll("input[data-select-all]").forEach(function (box) {
      box.addEventListener("change", function () {
        var form = box.form;
        if (!form) { return; }
        form.querySelectorAll("input[type=checkbox][name=key]").forEach(function (item) {
          item.checked = box.checked;
        });
      });
    });
  }

  function liveGraph() {
    var graph = document.getElementById("live-graph");
    if (!graph) { return; }
    var source = graph.getAttribute("data-src");
    var slider = document.getElementById("poll-interval");
    var label = document.getElementById("poll-label");
    var svg = graph.querySelector("svg");
    var processedLine = svg.querySelector(".processed");
    var failedLine = svg.querySelector(".failed");
    var points = [];
    var last = null;
    var timer = null;
    // Never faster than every 2 s, never slower than every 20 s.
    function clamp(ms) { ms = parseInt(ms, 10); return isNaN(ms) ? 5000 : Math.min(20000, Math.max(2000, ms)); }
    var interval = clamp(localStorage.getItem("jobs.poll") || graph.getAttribute("data-poll-ms"));
    if (slider) { slider.value = interval; }

    function draw() {
      var width = 600, height = 160;
      var max = 1;
      points.forEach(function (p) { max = Math.max(max, p.processed, p.failed); });
      function line(key) {
        return points.map(function (p, i) {
          var x = points.length < 2 ? width : (i / (points.length - 1)) * width;
          var y = height - (p[key] / max) * (height - 10);
          return x.toFixed(1) + "," + y.toFixed(1);
        }).join(" ");
      }
      processedLine.setAttribute("points", line("processed"));
      failedLine.setAttribute("points", line("failed"));
      var peak = document.getElementById("graph-peak");
      if (peak) { peak.textContent = separators.format(max); }
    }

    function update(stats) {
      Object.keys(stats).forEach(function (key) {
        document.querySelectorAll("[data-stat='" + key + "']").forEach(function (el) {
          var value = stats[key];
          el.textContent = typeof value === "number" && key !== "default_latency"
            ? separators.format(value) : value;
        });
      });
      if (last) {
        points.push({
          processed: Math.max(0, stats.processed - last.processed),
          failed: Math.max(0, stats.failed - last.failed)
        });
        if (points.length > 60) { points.shift(); }
        draw();
      }
      last = stats;
    }

    function poll() {
      fetch(source, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (stats) { if (stats) { update(stats); } })
        .catch(function () { /* the next poll tries again */ })
        .then(function () { timer = window.setTimeout(poll, interval); });
    }

    if (slider) {
      slider.addEventListener("input", function () {
        interval = clamp(slider.value);
        localStorage.setItem("jobs.poll", String(interval));
        if (label) { label.textContent = (interval / 1000) + " s"; }
      });
      if (label) { label.textContent = (interval / 1000) + " s"; }
    }
    poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    refreshTimes();
    window.setInterval(refreshTimes, 15000);
    confirmations();
    selectAll();
    liveGraph();
  });
})();
