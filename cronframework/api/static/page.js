// Show times relative to now (the ISO value stays in the tooltip), and reload every 10 seconds.
(function () {
  var now = Date.now();
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var at = Date.parse(el.getAttribute("datetime"));
    if (isNaN(at)) { return; }
    var s = Math.round((at - now) / 1000), a = Math.abs(s);
    var text = a < 90 ? a + "s" : a < 5400 ? Math.round(a / 60) + "m" : a < 129600 ? Math.round(a / 3600) + "h" : Math.round(a / 86400) + "d";
    el.title = el.textContent;
    el.textContent = el.textContent + " (" + (s >= 0 ? "in " + text : text + " ago") + ")";
  });
  setTimeout(function () { location.reload(); }, 10000);
})();
