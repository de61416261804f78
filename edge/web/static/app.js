/* The operator's page: live "today" figures, the card enrolment countdown,
   small conveniences. Plain JavaScript, no library; every request stays on
   this device. */
(function () {
  "use strict";

  var tokenMeta = document.querySelector('meta[name="csrf-token"]');
  var csrfToken = tokenMeta ? tokenMeta.getAttribute("content") : "";

  function toLogin() {
    window.location.href = "/login?next=" + encodeURIComponent(
      window.location.pathname + window.location.search);
  }

  function readReply(response) {
    if (response.status === 401) {
      toLogin();
      throw new Error("login required");
    }
    return response.json().then(function (data) {
      if (!response.ok) {
        throw new Error((data && data.error && data.error.message) || String(response.status));
      }
      return data;
    });
  }

  function getJSON(url) {
    return fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(readReply);
  }

  function postJSON(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json",
                "X-CSRFToken": csrfToken},
      body: JSON.stringify(body || {})
    }).then(readReply);
  }

  function cell(row, text, className) {
    var td = document.createElement("td");
    if (className) { td.className = className; }
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  /* -- conveniences ------------------------------------------------------------ */
  Array.prototype.forEach.call(document.querySelectorAll("select[data-autosubmit]"),
    function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  Array.prototype.forEach.call(document.querySelectorAll("form[data-confirm]"), function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });

  /* -- today: refresh from /api/today every 2 s --------------------------------- */
  function today() {
    var body = document.getElementById("taps");
    var liveState = document.getElementById("live-state");
    var highest = 0;
    Array.prototype.forEach.call(body.querySelectorAll("tr[data-seq]"), function (row) {
      highest = Math.max(highest, Number(row.getAttribute("data-seq")));
    });

    function render(data) {
      Array.prototype.forEach.call(document.querySelectorAll("[data-count]"), function (node) {
        node.textContent = data.counts[node.getAttribute("data-count")];
      });
      document.getElementById("date-label").textContent = data.date_label;
      document.getElementById("plan").textContent = data.plan;
      var rows = document.createDocumentFragment();
      var newest = highest;
      data.taps.forEach(function (tap) {
        var row = document.createElement("tr");
        row.setAttribute("data-seq", tap.seq);
        if (highest && tap.seq > highest) { row.className = "new"; }
        newest = Math.max(newest, tap.seq);
        cell(row, tap.time);
        cell(row, tap.name || tap.card_uid);
        cell(row, tap.group, "wide");
        var badge = document.createElement("span");
        badge.className = "badge v-" + tap.verdict;
        badge.textContent = tap.verdict_label;
        cell(row, "").appendChild(badge);
        rows.appendChild(row);
      });
      highest = newest;
      body.replaceChildren(rows);
      document.getElementById("no-taps").hidden = data.taps.length > 0;
      var lines = document.createDocumentFragment();
      data.service_lines.forEach(function (line) {
        var item = document.createElement("li");
        item.className = line.ok ? "ok" : "bad";
        item.setAttribute("data-key", line.key);
        var label = document.createElement("span");
        label.textContent = line.label;
        var value = document.createElement("strong");
        value.textContent = line.value;
        item.appendChild(label);
        item.appendChild(value);
        lines.appendChild(item);
      });
      document.getElementById("service-lines").replaceChildren(lines);
    }

    function poll() {
      getJSON("/api/today").then(function (data) {
        render(data);
        liveState.textContent = liveState.getAttribute("data-ok");
        liveState.classList.remove("off");
      }).catch(function () {
        liveState.textContent = liveState.getAttribute("data-bad");
        liveState.classList.add("off");
      }).then(function () { window.setTimeout(poll, 2000); });
    }
    window.setTimeout(poll, 2000);
  }

  /* -- cards: arm the enrolment, count down, show the result ------------------------ */
  function cards() {
    var box = document.getElementById("enrol-state");
    var form = document.getElementById("enrol-form");
    if (!box || !form) { return; }
    var message = document.getElementById("enrol-message");
    var note = document.getElementById("enrol-note");
    var cancel = document.getElementById("enrol-cancel");
    var ticket = box.getAttribute("data-ticket");
    var timer = null;

    function fill(template, state) {
      return template.replace("{name}", state.name || "")
        .replace("{s}", String(state.seconds_left)).replace("{card}", state.card_uid || "");
    }

    function show(state) {
      var outcome = state.outcome || "";
      box.setAttribute("data-outcome", outcome);
      var template = outcome ? box.getAttribute("data-t-" + outcome) : "";
      message.textContent = template ? fill(template, state) : "";
      note.textContent = state.message || "";
      cancel.hidden = outcome !== "armed";
      window.clearTimeout(timer);
      if (outcome === "armed") { timer = window.setTimeout(poll, 1000); }
    }

    function poll() {
      getJSON("/api/enrolment").then(function (state) {
        if (ticket && state.ticket && state.ticket !== ticket) { return; }
        show(state);
      }).catch(function (error) {
        note.textContent = error.message;
        timer = window.setTimeout(poll, 2000);
      });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      postJSON("/api/enrolment", {person_id: form.elements.person_id.value})
        .then(function (state) { ticket = state.ticket; show(state); })
        .catch(function (error) { note.textContent = error.message; });
    });
    cancel.addEventListener("click", function () {
      postJSON("/api/enrolment/cancel", {ticket: ticket}).then(show)
        .catch(function (error) { note.textContent = error.message; });
    });
    if (box.getAttribute("data-outcome") === "armed") { poll(); }
  }

  var page = document.body.getAttribute("data-page");
  if (page === "today") { today(); }
  if (page === "cards") { cards(); }
}());
