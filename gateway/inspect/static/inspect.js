// hookgate inspect: live updates over SSE, relative times, copy buttons, confirmations.
// Server-rendered pages; on a change the page re-reads itself and swaps its [data-live] regions.
(function () {
  "use strict";
  var body = document.body;
  var kinds = (body.dataset.liveKinds || "").split(/\s+/).filter(Boolean);
  var key = body.dataset.liveKey || "";
  var value = body.dataset.liveValue || "";
  var badge = document.getElementById("live-state");

  function relative(ts) {
    var delta = Date.now() / 1000 - ts, future = delta < 0, d = Math.abs(delta), text;
    if (d < 1) return future ? "now" : "just now";
    if (d >= 86400) text = Math.floor(d / 86400) + " d";
    else if (d >= 3600) text = Math.floor(d / 3600) + " h";
    else if (d >= 60) text = Math.floor(d / 60) + " min";
    else text = Math.floor(d) + " s";
    return future ? "in " + text : text + " ago";
  }
  function tick() {
    document.querySelectorAll(".rel[data-ts]").forEach(function (el) {
      el.textContent = relative(parseFloat(el.dataset.ts));
    });
  }
  setInterval(tick, 5000);

  // live regions
  var pending = null, inFlight = false, again = false;
  function refresh() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    fetch(location.href, { headers: { "X-Inspect-Partial": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (region) {
          var next = doc.getElementById(region.id);
          if (!next || next.innerHTML === region.innerHTML) return;
          var open = {};
          region.querySelectorAll("details[id]").forEach(function (d) { open[d.id] = d.open; });
          var before = {};
          region.querySelectorAll("tr[data-run],tr[data-delivery]").forEach(function (tr) {
            before[tr.dataset.run || tr.dataset.delivery] = true;
          });
          region.innerHTML = next.innerHTML;
          region.querySelectorAll("details[id]").forEach(function (d) {
            if (d.id in open) d.open = open[d.id];
          });
          region.querySelectorAll("tr[data-run],tr[data-delivery]").forEach(function (tr) {
            if (!before[tr.dataset.run || tr.dataset.delivery]) tr.classList.add("fresh");
          });
        });
        tick();
        document.dispatchEvent(new CustomEvent("inspect:refreshed"));
      })
      .catch(function () {})
      .finally(function () {
        inFlight = false;
        if (again) { again = false; schedule(); }
      });
  }
  function schedule() {
    if (pending) return;
    pending = setTimeout(function () { pending = null; refresh(); }, 150);
  }
  function relevant(change) {
    if (change.kind === "resync") return true;
    if (kinds.indexOf(change.kind) < 0) return false;
    return !key || !(key in change) || change[key] === null || String(change[key]) === value;
  }
  function setState(state, text) {
    if (!badge) return;
    badge.dataset.state = state;
    badge.textContent = text;
  }
  if (kinds.length && window.EventSource) {
    var wasDown = false;
    var connect = function () {
      var source = new EventSource("/inspect/live");
      source.onopen = function () {
        setState("on", "live");
        // Subscribed: re-read once, so a change between rendering and subscribing (or while
        // disconnected) is not missed; the same order the run event log follows.
        wasDown = false;
        schedule();
      };
      source.addEventListener("change", function (e) {
        var change;
        try { change = JSON.parse(e.data); } catch (err) { return; }
        if (relevant(change)) schedule();
      });
      source.onerror = function () {
        wasDown = true;
        setState("retry", "reconnecting…");
        if (source.readyState === EventSource.CLOSED) {
          setTimeout(connect, 2000);  // the browser gave up (e.g. a 401): try again ourselves
        }
      };
    };
    connect();
  }

  // copy buttons: text from data-copy, or a secret fetched on click (never in the page)
  function copied(button, text) {
    var done = function () {
      button.classList.add("done");
      setTimeout(function () { button.classList.remove("done"); }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { window.prompt("Copy:", text); });
    } else {
      window.prompt("Copy:", text);
    }
  }
  document.addEventListener("click", function (e) {
    var button = e.target.closest("button.copy");
    if (!button) return;
    if (button.dataset.copy !== undefined) { copied(button, button.dataset.copy); return; }
    if (button.dataset.copySecret) {
      fetch(button.dataset.copySecret, {
        method: "POST", credentials: "same-origin",
        headers: { "X-CSRF-Token": body.dataset.csrf || "" }
      }).then(function (r) { return r.json(); }).then(function (data) {
        if (data.secret) copied(button, data.secret);
      });
    }
  });
  document.addEventListener("submit", function (e) {
    var message = e.target.dataset && e.target.dataset.confirm;
    if (message && !window.confirm(message)) e.preventDefault();
  });
})();
