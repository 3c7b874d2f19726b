// Candor verification UI: progressive enhancement only. Every page works
// without this script; it adds the live expiry countdown, copy buttons,
// the device's time zone, and a progress bar (with resume) for bulk
// issuing. No inline script, no third-party code.
(function () {
  "use strict";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function pad(n) { return (n < 10 ? "0" : "") + n; }

  // Controls that need the script are hidden in the markup.
  $$(".js-only").forEach(function (el) { el.hidden = false; });
  $$(".no-js-hint").forEach(function (el) { el.hidden = true; });

  // The device's time zone (IANA name). The server renders and checks
  // dates in the account's zone; the device's only fills in the time-zone
  // question and warns when the two differ.
  var deviceZone = "";
  try { deviceZone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { deviceZone = ""; }
  $$("input[data-device-zone-fill]").forEach(function (input) {
    if (input.value || !deviceZone) { return; }
    input.value = deviceZone;
    $$("[data-device-filled]").forEach(function (el) { el.hidden = false; });
  });
  $$("[data-zone-check]").forEach(function (el) {
    if (!deviceZone || deviceZone === el.getAttribute("data-zone-check")) { return; }
    $$("[data-device-zone]", el).forEach(function (s) { s.textContent = deviceZone; });
    el.hidden = false;
  });

  var announcer = $("[data-announce]");
  function announce(text) {
    if (!announcer) { return; }
    announcer.textContent = "";
    window.setTimeout(function () { announcer.textContent = text; }, 50);
  }

  // Live countdown to a code's expiry. data-expires and data-now are Unix
  // seconds from the server, so a wrong device clock does not matter.
  $$(".countdown[data-expires]").forEach(function (el) {
    var expires = Number(el.getAttribute("data-expires")) * 1000;
    var skew = el.hasAttribute("data-now") ? Number(el.getAttribute("data-now")) * 1000 - Date.now() : 0;
    var said = {};
    el.hidden = false;
    el.setAttribute("aria-hidden", "true"); // announced at milestones instead
    function tick() {
      var left = Math.round((expires - (Date.now() + skew)) / 1000);
      if (left <= 0) {
        el.textContent = "Expired: issue a new code.";
        el.className = "countdown over";
        if (!said.over) { said.over = true; announce("The code has expired."); }
        return;
      }
      el.textContent = Math.floor(left / 60) + ":" + pad(left % 60) + " left";
      el.className = left <= 120 ? "countdown soon" : "countdown";
      [300, 60].forEach(function (m) {
        if (left <= m && !said[m]) { said[m] = true; announce(m / 60 + (m === 60 ? " minute" : " minutes") + " left to use the code."); }
      });
      window.setTimeout(tick, 1000 - ((Date.now() + skew) % 1000));
    }
    tick();
  });

  // Copy buttons.
  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.className = "sr-only";
    document.body.appendChild(ta);
    ta.select();
    var ok = document.execCommand("copy");
    document.body.removeChild(ta);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy failed"));
  }
  $$("button[data-copy]").forEach(function (b) {
    b.addEventListener("click", function () {
      copy(b.getAttribute("data-copy")).then(function () { announce("Copied."); }, function () { announce("Could not copy; select the text instead."); });
    });
  });

  // "Use this device's time zone".
  $$("button[data-fill-zone]").forEach(function (b) {
    var input = document.getElementById(b.getAttribute("data-fill-zone"));
    if (!deviceZone || input.value === deviceZone) { b.hidden = true; return; }
    b.textContent = "Use this device's time zone (" + deviceZone + ")";
    b.addEventListener("click", function () { input.value = deviceZone; input.focus(); });
  });

  // Bulk issue: parse the file on the server, then issue in small batches,
  // showing progress; after a failure, Resume continues with the same rows
  // (their tracking IDs make a retry safe). The results file is built here
  // and never stored on the server.
  var form = $("form[data-bulk]");
  if (form) { bulk(form); }

  function bulk(form) {
    var csrf = $("input[name=csrf]", form).value;
    var zone = $("input[name=zone]", form).value;
    var box = $("#bulk-progress"), bar = $("#bulk-bar"), status = $("#bulk-status");
    var resume = $("#bulk-resume"), done = $("#bulk-done"), download = $("#bulk-download"), failures = $("#bulk-failures");
    var rows = [], results = [], next = 0, running = false;
    var batchSize = 10;

    function say(text) { status.textContent = text; }

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (running) { return; }
      var file = $("input[type=file]", form);
      if (!file.files || file.files.length === 0) { file.focus(); say("Choose a CSV file first."); box.hidden = false; return; }
      running = true;
      box.hidden = false; done.hidden = true; resume.hidden = true;
      rows = []; results = []; next = 0;
      bar.max = 1; bar.value = 0;
      say("Reading the file…");
      fetch("/ui/bulk/parse", { method: "POST", body: new FormData(form), credentials: "same-origin", headers: { "X-CSRF-Token": csrf } })
        .then(function (res) { return res.json().then(function (body) { return { ok: res.ok, body: body }; }); })
        .then(function (r) {
          if (!r.ok) { throw new Error(r.body.error || "The file was refused."); }
          rows = r.body.rows;
          bar.max = rows.length;
          run();
        })
        .catch(function (e) { running = false; say(e.message || "The file could not be sent. Check the connection and try again."); });
    });

    resume.addEventListener("click", function () { resume.hidden = true; running = true; run(); });

    function run() {
      if (next >= rows.length) { finish(); return; }
      var batch = rows.slice(next, next + batchSize);
      say("Issuing codes: " + next + " of " + rows.length + " rows done.");
      fetch("/ui/bulk/issue", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ rows: batch, zone: zone })
      })
        .then(function (res) {
          if (res.status === 401 || res.status === 403) {
            var e = new Error("your session ended");
            e.signedOut = true;
            throw e;
          }
          if (!res.ok) { throw new Error("the server answered " + res.status); }
          return res.json();
        })
        .then(function (body) {
          Array.prototype.push.apply(results, body.results);
          next += batch.length;
          bar.value = next;
          run();
        })
        .catch(function (e) {
          running = false;
          if (e.signedOut) {
            say("Stopped after " + next + " of " + rows.length + " rows: your session ended. Sign in again, then upload the same file again: rows already issued are not issued twice.");
            if (results.length) { finish(true); }
            return;
          }
          say("Stopped after " + next + " of " + rows.length + " rows (" + e.message + "). Press Resume to continue; rows already done are not issued twice.");
          resume.hidden = false;
          resume.focus();
        });
    }

    // finish offers the results so far; partial: the run stopped early
    // (the status line already says why).
    function finish(partial) {
      running = false;
      var n = { issued: 0, "issued-earlier": 0, failed: 0 };
      results.forEach(function (r) { n[r.status] = (n[r.status] || 0) + 1; });
      if (!partial) {
        say("Done: " + n.issued + " codes issued" + (n["issued-earlier"] ? ", " + n["issued-earlier"] + " issued earlier" : "") + (n.failed ? ", " + n.failed + " failed" : "") + ". Download the results now.");
      }
      var blob = new Blob([toCSV(results)], { type: "text/csv;charset=utf-8" });
      if (download.href && download.href.indexOf("blob:") === 0) { URL.revokeObjectURL(download.href); }
      download.href = URL.createObjectURL(blob);
      var now = new Date();
      download.download = "candor-codes-" + (form.getAttribute("data-realm") || "realm") + "-" + now.getFullYear() + "-" + pad(now.getMonth() + 1) + "-" + pad(now.getDate()) + "-" + pad(now.getHours()) + pad(now.getMinutes()) + ".csv";
      failures.textContent = "";
      var failed = results.filter(function (r) { return r.status === "failed"; });
      if (failed.length) {
        var h = document.createElement("h3");
        h.textContent = "Rows that failed";
        var ul = document.createElement("ul");
        failed.forEach(function (r) {
          var li = document.createElement("li");
          li.textContent = "Row " + r.row + (r.ref ? " (" + r.ref + ")" : "") + ": " + r.error;
          ul.appendChild(li);
        });
        failures.appendChild(h);
        failures.appendChild(ul);
      }
      done.hidden = false;
      download.focus();
    }
  }

  // The results file; the same columns as the server's (no-script) file.
  var columns = ["row", "ref", "status", "code", "code_expires", "link", "link_expires", "long_code", "tracking_id", "test_type", "symptom_date", "test_date", "error"];
  function iso(unix) {
    if (!unix) { return ""; }
    var d = new Date(unix * 1000), off = -d.getTimezoneOffset(), a = Math.abs(off);
    var zone = off === 0 ? "Z" : (off > 0 ? "+" : "-") + pad(Math.floor(a / 60)) + ":" + pad(a % 60);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + zone;
  }
  function safe(s) { s = s || ""; return /^[=+\-@\t\r]/.test(s) ? "'" + s : s; }
  function field(s) {
    s = String(s === undefined || s === null ? "" : s);
    return /[",\r\n]/.test(s) || /^\s|\s$/.test(s) ? "\"" + s.replace(/"/g, "\"\"") + "\"" : s;
  }
  function toCSV(results) {
    var lines = [columns.join(",")];
    results.forEach(function (r) {
      lines.push([r.row, safe(r.ref), r.status, r.code, iso(r.expiresAt), r.link, iso(r.longExpiresAt), r.longCode, r.uuid,
        safe(r.testType), safe(r.symptomDate), safe(r.testDate), r.error].map(field).join(","));
    });
    return lines.join("\n") + "\n";
  }
}());
