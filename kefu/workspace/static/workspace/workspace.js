// kefu workspace: live updates over the websocket, keyboard shortcuts, the help overlay.
// No framework: the server renders HTML; a push only says what changed, htmx re-fetches it.
(function () {
  "use strict";

  var REFRESH_DELAY = 150; // coalesce bursts of pushes into one fetch
  var pending = {};

  function selecting() {
    return document.querySelector(".ws-pick:checked") !== null;
  }

  function refresh(selector) {
    // Never swap the list under an agent who is selecting rows for a bulk action.
    if (selector === "#ws-list" && selecting()) {
      var hint = document.querySelector("[data-stale]");
      if (hint) hint.hidden = false;
      return;
    }
    if (pending[selector]) return;
    pending[selector] = setTimeout(function () {
      delete pending[selector];
      var target = document.querySelector(selector);
      if (target && window.htmx) window.htmx.trigger(target, "ws-refresh");
    }, REFRESH_DELAY);
  }

  function onPush(event) {
    var page = document.querySelector("[data-conversation-page]");
    if (document.getElementById("ws-list")) refresh("#ws-list");
    if (page && String(event.id) === page.getAttribute("data-conversation-page")) {
      refresh("#ws-timeline");
    }
    document.dispatchEvent(new CustomEvent("kefu:push", { detail: event }));
  }

  // --- Presence: who else has this conversation open, who is typing (the collision warning) ------

  var PRESENCE_EVERY = 10000; // re-announce "viewing"; others forget us after 3 silent periods
  var TYPING_EVERY = 3000;    // at most one "typing" per 3 s
  var socket = null;
  var others = {};            // agent id -> {name, state, at}
  var lastTyping = 0;

  function conversationId() {
    var page = document.querySelector("[data-conversation-page]");
    return page ? parseInt(page.getAttribute("data-conversation-page"), 10) : null;
  }

  function announce(state) {
    var id = conversationId();
    if (id === null || !socket || socket.readyState !== 1) return;
    socket.send(JSON.stringify({ type: "presence", id: id, state: state }));
  }

  function showPresence() {
    var box = document.querySelector("[data-presence]");
    if (!box) return;
    var now = Date.now(), lines = [];
    Object.keys(others).forEach(function (key) {
      var other = others[key];
      if (other.state === "left" || now - other.at > 3 * PRESENCE_EVERY) { delete others[key]; return; }
      var typing = other.state === "typing" && now - other.at < 2 * TYPING_EVERY;
      lines.push((typing ? box.getAttribute("data-typing") : box.getAttribute("data-viewing")).replace("{name}", other.name));
    });
    box.textContent = lines.join(" · ");
    box.hidden = lines.length === 0;
  }

  function onPresence(event) {
    if (event.id !== conversationId()) return;
    others[event.agent_id] = { name: event.agent, state: event.state, at: Date.now() };
    showPresence();
  }

  function onTyping() {
    var now = Date.now();
    if (now - lastTyping < TYPING_EVERY) return;
    lastTyping = now;
    announce("typing");
  }

  function connect(attempt) {
    var header = document.querySelector("[data-socket]");
    if (!header || !window.WebSocket) return;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + header.getAttribute("data-socket"));
    var state = document.querySelector("[data-live-state]");
    socket.onopen = function () {
      attempt = 0;
      if (state) state.classList.add("ws-live-on");
      document.documentElement.setAttribute("data-live", "on");
      announce("viewing");
    };
    socket.onmessage = function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      if (event.type === "access.changed") { refresh("#ws-list"); return; }
      if (event.type === "presence") { onPresence(event); return; }
      if (typeof event.id === "number") onPush(event);
    };
    socket.onclose = function (close) {
      if (state) state.classList.remove("ws-live-on");
      document.documentElement.setAttribute("data-live", "off");
      if (close.code === 4401) return; // signed out
      // Back off up to 30 s; on the way back, fetch what was missed.
      var wait = Math.min(30000, 500 * Math.pow(2, attempt || 0));
      setTimeout(function () { connect((attempt || 0) + 1); refresh("#ws-list"); refresh("#ws-timeline"); }, wait);
    };
  }

  // --- Keyboard --------------------------------------------------------------------------------

  function typing(target) {
    return target.closest("input, textarea, select, [contenteditable]") !== null;
  }

  function rows() { return Array.prototype.slice.call(document.querySelectorAll(".ws-row")); }

  function move(step) {
    var all = rows();
    if (!all.length) return;
    var current = all.findIndex(function (row) { return row.classList.contains("ws-selected"); });
    var next = Math.max(0, Math.min(all.length - 1, current + step));
    all.forEach(function (row) { row.classList.remove("ws-selected"); });
    all[next].classList.add("ws-selected");
    all[next].querySelector("a").focus();
  }

  function click(selector) {
    var element = document.querySelector(selector);
    if (element) element.click();
    return Boolean(element);
  }

  function compose(kind) {
    var radio = document.querySelector(kind === "note" ? "[data-kind-note]" : "[data-kind-reply]");
    var text = document.querySelector("[data-composer-text]");
    if (radio) radio.checked = true;
    if (text) text.focus();
  }

  var lastKey = "";
  function onKey(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    var key = event.key;
    var handled = true;
    if (lastKey === "g" && key === "i") { location.href = "/"; }
    else if (key === "j") move(1);
    else if (key === "k") move(-1);
    else if (key === "r") compose("reply");
    else if (key === "n") compose("note");
    else if (key === "a") handled = click("[data-assign-me]");
    else if (key === "s") handled = click("[data-solve]");
    else if (key === "?") { var help = document.querySelector("[data-help]"); if (help) help.showModal(); }
    else handled = key === "g";
    lastKey = key;
    if (handled) event.preventDefault();
  }

  // Ctrl+Enter sends the composer.
  function onComposerKey(event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      event.target.form.requestSubmit();
    }
  }

  // --- Templates: render for this conversation, insert at the caret, remember which one ----------

  function onTemplate(event) {
    var select = event.target;
    if (!select.value) return;
    var url = select.getAttribute("data-template-url").replace(/0\/$/, select.value + "/");
    fetch(url, { credentials: "same-origin" }).then(function (response) {
      return response.text().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (result) {
      if (!result.ok) { alertInline(result.body); return; }
      var text = document.querySelector("[data-composer-text]");
      var start = text.selectionStart, end = text.selectionEnd;
      text.value = text.value.slice(0, start) + result.body + text.value.slice(end);
      document.querySelector("[data-kind-reply]").checked = true;
      document.querySelector("[data-template-used]").value = select.value;
      select.value = "";
      text.focus();
    });
  }

  function alertInline(message) {
    var box = document.querySelector("[data-composer-error]");
    if (box) { box.textContent = message; box.hidden = false; }
  }

  // --- Bulk selection ----------------------------------------------------------------------------

  function onPick() {
    var count = document.querySelectorAll(".ws-pick:checked").length;
    var bar = document.querySelector("[data-bulk]");
    if (!bar) return;
    bar.hidden = count === 0;
    var label = bar.querySelector("[data-bulk-count]");
    if (label) label.textContent = String(count);
    if (count === 0) {
      var hint = document.querySelector("[data-stale]");
      if (hint && !hint.hidden) { hint.hidden = true; refresh("#ws-list"); }
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    connect(0);
    var template = document.querySelector("[data-template]");
    if (template) template.addEventListener("change", onTemplate);
    document.addEventListener("change", function (event) {
      if (event.target.classList && event.target.classList.contains("ws-pick")) onPick();
    });
    document.addEventListener("keydown", onKey);
    var text = document.querySelector("[data-composer-text]");
    if (text) {
      text.addEventListener("keydown", onComposerKey);
      text.addEventListener("input", onTyping);
    }
    // "Someone is here": the chat widget offers live chat rather than a message for later.
    setInterval(function () {
      if (socket && socket.readyState === 1) socket.send(JSON.stringify({ type: "ping" }));
    }, 30000);
    if (conversationId() !== null) {
      setInterval(function () { announce("viewing"); showPresence(); }, PRESENCE_EVERY);
      window.addEventListener("pagehide", function () { announce("left"); });
    }
    var open = document.querySelector("[data-help-open]");
    if (open) open.addEventListener("click", function () { document.querySelector("[data-help]").showModal(); });
  });
})();
