// mamori console behaviour. No inline scripts (CSP): everything is wired here.
(function () {
  "use strict";
  // Sortable tables: click a header to sort by that column.
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th").forEach(function (th, col) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var asc = !th.classList.contains("sorted-asc");
        table.querySelectorAll("th").forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
        th.classList.add(asc ? "sorted-asc" : "sorted-desc");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = (a.cells[col] || {}).textContent || "", y = (b.cells[col] || {}).textContent || "";
          var nx = parseFloat(x), ny = parseFloat(y);
          var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y, "ja");
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  // Filter boxes: <input class="filter" data-filter="tableId">
  document.querySelectorAll("input.filter[data-filter]").forEach(function (input) {
    input.addEventListener("input", function () {
      var table = document.getElementById(input.getAttribute("data-filter"));
      if (!table) return;
      var q = input.value.toLowerCase();
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        r.style.display = r.textContent.toLowerCase().indexOf(q) >= 0 ? "" : "none";
      });
    });
  });
  // Idle lock (DATA-8): after the configured idle time without input, go to the lock screen.
  var idle = parseInt(document.body.getAttribute("data-idle-ms") || "0", 10);
  if (idle > 0) {
    var timer;
    var reset = function () {
      clearTimeout(timer);
      timer = setTimeout(function () { window.location.href = "/lock"; }, idle);
    };
    ["mousemove", "keydown", "click", "scroll", "touchstart"].forEach(function (e) {
      document.addEventListener(e, reset, { passive: true });
    });
    reset();
  }
  // Personal data views: no copy or context menu on elements marked .no-copy.
  document.querySelectorAll(".no-copy").forEach(function (el) {
    el.addEventListener("copy", function (e) { e.preventDefault(); });
    el.addEventListener("contextmenu", function (e) { e.preventDefault(); });
  });
})();
