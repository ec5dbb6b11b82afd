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
      // Submits the CSRF-protected lock form: the server locks the session (POST, never GET).
      timer = setTimeout(function () {
        var b = document.getElementById("lock-now");
        if (b) { b.click(); } else { window.location.href = "/lock"; }
      }, idle);
    };
    ["mousemove", "keydown", "click", "scroll", "touchstart"].forEach(function (e) {
      document.addEventListener(e, reset, { passive: true });
    });
    reset();
  }
  // Live lists refresh every 2 s (htmx polling); never while someone is typing in them, so
  // that an alarm comment being written is not wiped by the refresh.
  document.body.addEventListener("htmx:beforeRequest", function (e) {
    var t = e.detail && e.detail.elt;
    if (!t || !t.hasAttribute("hx-trigger") || t.getAttribute("hx-trigger").indexOf("every") < 0) return;
    var busy = Array.prototype.some.call(t.querySelectorAll("input[type=text], input:not([type])"), function (i) {
      return i === document.activeElement || i.value !== "";
    });
    if (busy) e.preventDefault();
  });
  // The approved print view's print button (no inline script under the CSP).
  document.querySelectorAll("[data-print]").forEach(function (el) {
    el.addEventListener("click", function () { window.print(); });
  });
  // Personal data views: no copy or context menu on elements marked .no-copy.
  document.querySelectorAll(".no-copy").forEach(function (el) {
    el.addEventListener("copy", function (e) { e.preventDefault(); });
    el.addEventListener("contextmenu", function (e) { e.preventDefault(); });
  });
  // Passkeys (WebAuthn): the server's options carry base64url strings; the browser wants bytes.
  function b64uToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), a = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) a[i] = bin.charCodeAt(i);
    return a.buffer;
  }
  function bufToB64u(b) {
    if (!b) return null;
    var a = new Uint8Array(b), s = "";
    for (var i = 0; i < a.length; i++) s += String.fromCharCode(a[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function postJSON(url, body, csrf) {
    var h = { "Content-Type": "application/json" };
    if (csrf) h["X-CSRF-Token"] = csrf;
    return fetch(url, { method: "POST", headers: h, body: JSON.stringify(body), credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.message || r.status); return j; }); });
  }
  function status(msg) { var el = document.getElementById("passkey-status"); if (el) el.textContent = msg; }
  var reg = document.getElementById("passkey-register");
  if (reg) {
    reg.addEventListener("click", function () {
      var csrf = reg.getAttribute("data-csrf");
      postJSON("/account/passkeys/start", {}, csrf).then(function (start) {
        var o = start.options.publicKey;
        o.challenge = b64uToBuf(o.challenge);
        o.user.id = b64uToBuf(o.user.id);
        (o.excludeCredentials || []).forEach(function (c) { c.id = b64uToBuf(c.id); });
        return navigator.credentials.create({ publicKey: o }).then(function (cred) {
          return postJSON("/account/passkeys/finish", {
            ceremony: start.ceremony,
            name: (document.getElementById("passkey-name") || {}).value || "passkey",
            credential: {
              id: cred.id, rawId: bufToB64u(cred.rawId), type: cred.type,
              response: { attestationObject: bufToB64u(cred.response.attestationObject), clientDataJSON: bufToB64u(cred.response.clientDataJSON) },
              extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
            }
          }, csrf);
        });
      }).then(function () { window.location.reload(); }, function (e) { status(String(e.message || e)); });
    });
  }
  var login = document.getElementById("passkey-login");
  if (login) {
    login.addEventListener("click", function () {
      var csrf = login.getAttribute("data-csrf");
      var name = (document.getElementById("login") || {}).value || "";
      postJSON("/login/passkey/start", { login: name, csrf: csrf }).then(function (start) {
        var o = start.options.publicKey;
        o.challenge = b64uToBuf(o.challenge);
        (o.allowCredentials || []).forEach(function (c) { c.id = b64uToBuf(c.id); });
        return navigator.credentials.get({ publicKey: o }).then(function (cred) {
          return postJSON("/login/passkey/finish", {
            ceremony: start.ceremony, csrf: csrf, lang: login.getAttribute("data-lang"),
            credential: {
              id: cred.id, rawId: bufToB64u(cred.rawId), type: cred.type,
              response: {
                authenticatorData: bufToB64u(cred.response.authenticatorData),
                clientDataJSON: bufToB64u(cred.response.clientDataJSON),
                signature: bufToB64u(cred.response.signature),
                userHandle: bufToB64u(cred.response.userHandle)
              },
              extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
            }
          });
        });
      }).then(function (r) { window.location.href = r.redirect || "/"; }, function (e) { status(String(e.message || e)); });
    });
  }
})();
