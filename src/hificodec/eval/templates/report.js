// hificodec report page: sortable tables and A/B switching between the clips of one file.
(function () {
  "use strict";

  // Sorting: click a header; numbers by value (empty cells last), text alphabetically.
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, col) {
      th.addEventListener("click", function () {
        var current = th.getAttribute("aria-sort");
        var dir = current ? (current === "ascending" ? "descending" : "ascending")
                          : (th.dataset.first === "desc" ? "descending" : "ascending");
        var numeric = th.dataset.type === "number";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
          if (x === "" || y === "") return (x === "") - (y === "");
          var c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
          return dir === "ascending" ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir);
      });
    });
  });

  // A/B: one clip of a file is active; switching moves its position to another clip of the same file.
  var items = Array.prototype.slice.call(document.querySelectorAll(".item"));
  var current = items[0] || null;

  function clips(item) { return Array.prototype.slice.call(item.querySelectorAll("audio")); }
  function active(item) { return item.querySelector("tr.clip.active audio") || clips(item)[0]; }

  function mark(item, audio) {
    items.forEach(function (it) { it.classList.toggle("current", it === item); });
    item.querySelectorAll("tr.clip").forEach(function (tr) { tr.classList.remove("active"); });
    audio.closest("tr.clip").classList.add("active");
    current = item;
  }

  // k is the clip's key (its row: the same system in every file), not its place among this file's
  // players: a file without a clip of some system skips that key instead of shifting the others.
  function switchTo(item, k) {
    var all = clips(item);
    var target = item.querySelector('audio[data-k="' + k + '"]'), from = active(item);
    if (!target) return;
    var t = from.currentTime, playing = !from.paused;
    all.forEach(function (a) { if (a !== target) a.pause(); });
    var go = function () {
      target.currentTime = Math.min(t, target.duration || t);
      if (playing) target.play();
    };
    if (target.readyState >= 1) go(); else target.addEventListener("loadedmetadata", go, { once: true });
    mark(item, target);
  }

  items.forEach(function (item) {
    item.querySelectorAll("button.switch").forEach(function (b) {
      b.addEventListener("click", function () { switchTo(item, parseInt(b.dataset.k, 10)); });
    });
    clips(item).forEach(function (audio) {
      audio.addEventListener("play", function () {
        document.querySelectorAll("audio").forEach(function (a) { if (a !== audio) a.pause(); });
        mark(item, audio);
      });
      audio.addEventListener("timeupdate", function () {
        var cursor = audio.closest("tr.clip").querySelector(".cursor");
        if (cursor && audio.duration) cursor.style.left = (100 * audio.currentTime / audio.duration) + "%";
      });
    });
    item.addEventListener("click", function () { if (current !== item) mark(item, active(item)); });
  });
  if (current) mark(current, active(current));

  document.addEventListener("keydown", function (e) {
    if (!current || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target.closest && e.target.closest("input, textarea, select")) return;
    var all = clips(current), n = all.length, k = all.indexOf(active(current));
    var at = function (i) { return all[i].dataset.k; };  // n/p step through the players this file has
    if (/^[0-9]$/.test(e.key)) switchTo(current, parseInt(e.key, 10));
    else if (e.key === "n") switchTo(current, at(k + 1 < n ? k + 1 : 1 % n));
    else if (e.key === "p") switchTo(current, at(k > 1 ? k - 1 : n - 1));
    else if (e.key === " " && e.target === document.body) {
      var a = active(current);
      if (a.paused) a.play(); else a.pause();
    } else return;
    e.preventDefault();
  });
})();
