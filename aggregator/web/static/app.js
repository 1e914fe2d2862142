// The reader's progressive enhancement: local times, copy buttons, keyboard moves, the trend chart.
// Everything works without it; htmx (loaded beside it) swaps #main when a filter changes.
(function () {
  "use strict";

  var dateFormat = new Intl.DateTimeFormat(undefined, {dateStyle: "medium", timeStyle: "short"});

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var moment = new Date(el.getAttribute("datetime"));
      if (!isNaN(moment)) {
        el.title = el.textContent;
        el.textContent = dateFormat.format(moment);
      }
    });
  }

  function copyButtons(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var input = document.getElementById(button.getAttribute("data-copy"));
        var done = function () {
          button.classList.add("copied");
          button.firstChild.textContent = "Copied";
          setTimeout(function () { button.classList.remove("copied"); button.firstChild.textContent = "Copy"; }, 2000);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(input.value).then(done, function () { input.select(); });
        } else {
          input.select();
          try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected to copy by hand */ }
        }
      });
    });
  }

  function trendChart(root) {
    var box = root.querySelector("#trend[data-src]");
    if (!box || !window.uPlot) { return; }
    fetch(box.getAttribute("data-src"), {headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (data) { drawTrend(box, data); })
      .catch(function () { box.textContent = "The chart could not be loaded."; });
  }

  var COLOURS = ["#155eef", "#dc6803", "#067647", "#7a5af8", "#c11574"];

  function drawTrend(box, data) {
    var xs = data.days.map(function (d) { return Date.parse(d + "T12:00:00Z") / 1000; });
    var surgeDays = {};
    data.surges.forEach(function (s) { surgeDays[s.day] = s.count; });
    var marks = data.days.map(function (d) { return d in surgeDays ? surgeDays[d] : null; });
    var series = [{}, {label: "All posts", stroke: "#101828", width: 2}];
    var columns = [xs, data.total];
    data.series.forEach(function (s, i) {
      series.push({label: s.name, stroke: COLOURS[i % COLOURS.length], width: 1.5});
      columns.push(s.counts);
    });
    series.push({label: "Surge", stroke: "#b42318", width: 0, paths: function () { return null; },
                 points: {show: true, size: 10, fill: "#b42318", stroke: "#b42318"}});
    columns.push(marks);
    box.textContent = "";
    var width = Math.max(280, box.clientWidth);
    var chart = new window.uPlot({width: width, height: 260, series: series, axes: [{}, {label: "posts"}],
                                  scales: {x: {time: true}}}, columns, box);
    box.setAttribute("data-drawn", String(data.total.reduce(function (a, b) { return a + b; }, 0)));
    window.addEventListener("resize", function () { chart.setSize({width: Math.max(280, box.clientWidth), height: 260}); });
  }

  function keyboard() {
    document.addEventListener("keydown", function (event) {
      var target = event.target;
      if (event.ctrlKey || event.metaKey || event.altKey || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) { return; }
      if (event.key === "/") {
        var search = document.getElementById("q");
        if (search) { event.preventDefault(); search.focus(); }
        return;
      }
      if (event.key !== "j" && event.key !== "k") { return; }
      var links = Array.prototype.slice.call(document.querySelectorAll("a.post-link"));
      if (!links.length) { return; }
      var at = links.indexOf(document.activeElement);
      var next = event.key === "j" ? Math.min(links.length - 1, at + 1) : Math.max(0, at - 1);
      links[next].focus();
      event.preventDefault();
    });
  }

  function enhance(root) {
    localTimes(root);
    copyButtons(root);
    trendChart(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    keyboard();
    document.body.addEventListener("htmx:afterSettle", function (event) {
      var swapped = event.target;
      if (!swapped || swapped.nodeType !== 1) { return; }
      enhance(swapped);
      // A new view replaced the clicked link: keep keyboard users in the page. A panel that loads
      // later (the facet counts) must not take the focus from where the reader has moved it.
      if (swapped.id === "main") { swapped.focus({preventScroll: true}); }
    });
    document.body.addEventListener("htmx:historyRestore", function () { enhance(document.getElementById("main") || document); });
  });
}());
