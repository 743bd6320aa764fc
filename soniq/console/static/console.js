// Soniq Console live updates: no dependencies, no network access but this console.
// The server says only *that* something changed (server-sent events fed by LISTEN/NOTIFY,
// debounced); the page then fetches itself again and swaps its [data-live] fragments.
// Polls instead while the event stream is down, refreshes every 15 s anyway (workers and
// heartbeats change without a notification), and does nothing while the tab is hidden.
(function () {
  "use strict";
  var POLL_MS = 5000;
  // Workers come and go and heartbeats age without a notification: refresh now and then.
  var SLOW_REFRESH_MS = 15000;
  var source = null;
  var pollTimer = null;
  var busy = false;
  var status = null;

  function mark(state) {
    if (status) { status.className = state; status.title = "live updates: " + state; }
  }

  function refresh() {
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(window.location.href, { headers: { "X-Soniq-Fragment": "1" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (old) {
          // Never under the user's hands: a fragment with a ticked box or the focus stays.
          if (old.querySelector("input:checked") || old.contains(document.activeElement)) { return; }
          var next = fresh.getElementById(old.id);
          if (next) { old.replaceChildren.apply(old, Array.from(next.childNodes).map(function (n) { return document.importNode(n, true); })); }
        });
        document.dispatchEvent(new CustomEvent("soniq:refreshed"));
      })
      .catch(function () {})
      .then(function () { busy = false; });
  }

  function startPolling() {
    mark("polling");
    if (!pollTimer) { pollTimer = setInterval(refresh, POLL_MS); }
  }

  function stopPolling() {
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
  }

  function connect() {
    var url = document.body.getAttribute("data-events");
    if (!url || !window.EventSource) { startPolling(); return; }
    source = new EventSource(url);
    source.addEventListener("open", function () { stopPolling(); mark("live"); });
    source.addEventListener("refresh", refresh);
    source.addEventListener("error", function () {
      // The browser reconnects by itself; poll until it has.
      if (source && source.readyState !== EventSource.OPEN) { startPolling(); }
    });
  }

  function disconnect() {
    if (source) { source.close(); source = null; }
    stopPolling();
    mark("paused");
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { disconnect(); } else { refresh(); connect(); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    status = document.getElementById("live-status");
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
    if (!document.hidden) { connect(); }
    setInterval(function () { if (source) { refresh(); } }, SLOW_REFRESH_MS);
  });
}());
