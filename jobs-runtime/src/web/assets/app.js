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

  // Never faster than every 2 s, never slower than every 20 s (CVE-2023-26141); 5 s unless the
  // dashboard's slider chose otherwise.
  function pollInterval(fallback) {
    var ms = parseInt(localStorage.getItem("jobs.poll") || fallback, 10);
    return isNaN(ms) ? 5000 : Math.min(20000, Math.max(2000, ms));
  }

  // What a page's script attaches to its content; run again on content swapped in.
  function enhance() {
    refreshTimes();
    confirmations();
    selectAll();
  }

  // Live poll, as on Sidekiq's list pages: while the toggle is on (kept in localStorage), the
  // page is fetched again every few seconds and its header counts, content and footer swapped
  // in place. Ticked boxes stay ticked; a round is skipped while a field of the page has the
  // focus, while the tab is hidden, and when the answer is not this page.
  function livePoll() {
    var toggle = document.getElementById("live-poll");
    if (!toggle) { return; }
    toggle.hidden = false;
    var timer = null;

    function busy() {
      var active = document.activeElement;
      return document.hidden || (active && active.closest("main") &&
        /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName) && active.type !== "checkbox");
    }

    function swap(html) {
      var fresh = new DOMParser().parseFromString(html, "text/html");
      var main = document.querySelector("main");
      var next = fresh.querySelector("main");
      if (!main || !next) { return; }
      var ticked = {};
      main.querySelectorAll("input[type=checkbox][name=key]:checked").forEach(function (box) {
        ticked[box.value] = true;
      });
      var all = main.querySelector("input[data-select-all]");
      var allTicked = all && all.checked;
      next = document.adoptNode(next);
      next.querySelectorAll("input[type=checkbox][name=key]").forEach(function (box) {
        if (ticked[box.value]) { box.checked = true; }
      });
      var nextAll = next.querySelector("input[data-select-all]");
      if (nextAll && allTicked) { nextAll.checked = true; }
      main.replaceWith(next);
      ["header.top nav", "footer"].forEach(function (css) {
        var old = document.querySelector(css);
        var fresher = fresh.querySelector(css);
        if (old && fresher) { old.replaceWith(document.adoptNode(fresher)); }
      });
      enhance();
    }

    // Each switch-on starts a new chain; a round of an older chain (its fetch still in flight
    // when the toggle went off and on) schedules nothing, so one chain polls at a time.
    var chain = 0;

    function poll(mine) {
      if (mine !== chain) { return; }
      timer = null;
      var next = function () {
        if (mine === chain && toggle.getAttribute("aria-pressed") === "true") {
          timer = window.setTimeout(function () { poll(mine); }, pollInterval(5000));
        }
      };
      if (busy()) { next(); return; }
      var address = window.location.href;
      fetch(address, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          return response.ok && !response.redirected ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null && window.location.href === address &&
              toggle.getAttribute("aria-pressed") === "true") { swap(html); }
        })
        .catch(function () { /* the next round tries again */ })
        .then(next);
    }

    function set(on) {
      toggle.setAttribute("aria-pressed", on ? "true" : "false");
      toggle.textContent = on ? "Live poll on" : "Live poll";
      if (on) { localStorage.setItem("jobs.live", "on"); } else { localStorage.removeItem("jobs.live"); }
      if (timer !== null) { window.clearTimeout(timer); timer = null; }
      chain += 1;
      var mine = chain;
      if (on) { timer = window.setTimeout(function () { poll(mine); }, pollInterval(5000)); }
    }

    toggle.addEventListener("click", function () {
      set(toggle.getAttribute("aria-pressed") !== "true");
    });
    set(localStorage.getItem("jobs.live") === "on");
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
    var interval = pollInterval(graph.getAttribute("data-poll-ms"));
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
    enhance();
    window.setInterval(refreshTimes, 15000);
    liveGraph();
    livePoll();
  });
})();
