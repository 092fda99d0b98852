// Relative times kept current, the job list reloaded while nobody types, and the actions and log requests sent
// with the bearer token the user enters (kept for this tab only, in sessionStorage).
(function () {
  var KEY = "cronframework-token";
  var UNITS = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];
  function relative(at) {
    var s = Math.round((at - Date.now()) / 1000), a = Math.abs(s), text = a + " s";
    if (s === 0) { return "now"; }
    for (var i = 0; i < UNITS.length; i++) {
      if (a >= UNITS[i][1]) { text = Math.floor(a / UNITS[i][1]) + " " + UNITS[i][0]; break; }
    }
    return s > 0 ? "in " + text : text + " ago";
  }
  function refresh() {
    document.querySelectorAll("time[datetime] .rel").forEach(function (el) {
      var at = Date.parse(el.parentNode.getAttribute("datetime"));
      if (!isNaN(at)) { el.textContent = relative(at); }
    });
  }
  function token() {
    var input = document.getElementById("token");
    var value = input && input.value ? input.value : sessionStorage.getItem(KEY) || "";
    if (input && input.value) { sessionStorage.setItem(KEY, input.value); }
    return value;
  }
  function send(method, url, body) {
    var headers = { "Content-Type": "application/json" }, secret = token();
    if (secret) { headers.Authorization = "Bearer " + secret; }
    return fetch(url, { method: method, headers: headers, body: body, credentials: "same-origin" });
  }
  function say(out, ok, text) { out.className = ok ? "ok" : "bad"; out.textContent = text; }
  function act(form, button) {
    var job = form.getAttribute("data-job"), action = button.getAttribute("data-action");
    var out = document.getElementById("outcome");
    var body = action === "trigger" ? JSON.stringify({ force: button.hasAttribute("data-force") }) : "{}";
    send("POST", "/v1/jobs/" + encodeURIComponent(job) + "/" + action, body).then(function (reply) {
      return reply.json().then(function (data) {
        if (!reply.ok) { say(out, false, action + " refused (" + reply.status + "): " + data.error); return; }
        var done = action === "trigger" ? "trigger " + data.trigger + " requested" : job + (data.paused ? " paused" : " resumed");
        say(out, true, done);
      });
    }).catch(function (err) { say(out, false, action + " failed: " + err); });
  }
  function showLogs(button) {
    var out = document.getElementById("output");
    send("GET", button.getAttribute("data-url")).then(function (reply) {
      return reply.text().then(function (text) {
        out.textContent = reply.ok ? (text || "(no output)") : "refused (" + reply.status + "): " + text;
      });
    }).catch(function (err) { out.textContent = "failed: " + err; });
  }
  var actions = document.getElementById("actions");
  if (actions) {
    actions.querySelectorAll("button[data-action]").forEach(function (b) {
      b.addEventListener("click", function () { act(actions, b); });
    });
  }
  var logs = document.getElementById("show-logs");
  if (logs) {
    logs.addEventListener("click", function () { showLogs(logs); });
    if (sessionStorage.getItem(KEY)) { showLogs(logs); }
  }
  refresh();
  setInterval(refresh, 5000);
  if (document.getElementById("jobs")) {
    setInterval(function () {
      var busy = document.activeElement && /INPUT|SELECT/.test(document.activeElement.tagName);
      if (!busy) { location.reload(); }
    }, 30000);
  }
})();
