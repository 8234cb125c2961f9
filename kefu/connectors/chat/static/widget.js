/* kefu chat widget: one <script src=".../chat/widget.js" data-key="wk_..." async></script>.
 * No dependencies, no cookies, no inline styles on the host page: everything lives in a shadow
 * root styled through a constructed stylesheet (allowed by any Content-Security-Policy that lets
 * the script run). The server sends every word the widget shows, in the visitor's language. */
(function () {
  "use strict";

  var script = document.currentScript || document.querySelector("script[data-key][src*='/chat/widget.js']");
  if (!script || window.__kefuChat) return;
  var KEY = script.getAttribute("data-key") || "";
  var BASE = new URL(script.src, location.href);
  var SOCKET_URL = (BASE.protocol === "https:" ? "wss://" : "ws://") + BASE.host + "/ws/chat/" + encodeURIComponent(KEY) + "/";
  var UPLOAD_URL = BASE.origin + "/connectors/chat/" + encodeURIComponent(KEY) + "/upload";
  var STORE = "kefu-chat:" + KEY;
  var PING_EVERY = 25000, TYPING_EVERY = 3000, TYPING_SHOWN = 6000;

  var state = {
    token: null, name: "", email: "", texts: {}, dir: "ltr", language: "",
    available: true, seen: false, messages: [], pending: [], open: false,
    socket: null, attempt: 0, lastTyping: 0, typingTimer: null, started: false
  };

  function load() {
    try {
      var saved = JSON.parse(localStorage.getItem(STORE) || "{}");
      state.token = saved.token || null;
      state.name = saved.name || "";
      state.email = saved.email || "";
      state.open = !!saved.open;
    } catch (e) { /* private mode: a fresh visitor each time */ }
  }

  function save() {
    try {
      localStorage.setItem(STORE, JSON.stringify({ token: state.token, name: state.name, email: state.email, open: state.open }));
    } catch (e) { /* ignore */ }
  }

  function t(key) { return state.texts[key] || ""; }

  function newId() {
    var bytes = new Uint8Array(12);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  // --- DOM ----------------------------------------------------------------------------------------

  var CSS = [
    ":host{all:initial}",
    ".k{position:fixed;bottom:20px;inset-inline-end:20px;z-index:2147483000;font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans','PingFang SC','Microsoft YaHei',Tahoma,sans-serif;color:#1c1f23}",
    ".launch{width:56px;height:56px;border-radius:50%;border:0;background:#1f5eff;color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);display:grid;place-items:center}",
    ".panel{position:absolute;bottom:70px;inset-inline-end:0;width:340px;max-width:calc(100vw - 40px);height:480px;max-height:calc(100vh - 110px);display:flex;flex-direction:column;background:#fff;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);overflow:hidden}",
    ".panel[hidden],.prechat[hidden],.typing[hidden],.composer[hidden]{display:none}",
    ".head{background:#1f5eff;color:#fff;padding:12px 14px;display:flex;align-items:center;gap:8px}",
    ".head h2{font-size:15px;margin:0;flex:1}.head p{margin:0;font-size:12px;opacity:.85}",
    ".x{background:none;border:0;color:#fff;font-size:20px;cursor:pointer}",
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:6px;background:#f6f7f9}",
    ".m{max-width:80%;padding:8px 10px;border-radius:10px;white-space:pre-wrap;overflow-wrap:anywhere}",
    ".m.visitor{align-self:flex-end;background:#1f5eff;color:#fff}",
    ".m.agent{align-self:flex-start;background:#fff;border:1px solid #e2e5ea}",
    ".m.failed{opacity:.6;cursor:pointer}.m small{display:block;font-size:11px;opacity:.75}",
    ".m a{color:inherit}.greet{align-self:center;color:#5b6370;font-size:13px;text-align:center}",
    ".seen{align-self:flex-end;font-size:11px;color:#5b6370}",
    ".typing{padding:2px 12px;font-size:12px;color:#5b6370;background:#f6f7f9}",
    ".prechat{padding:12px;display:flex;flex-direction:column;gap:8px;border-top:1px solid #e2e5ea}",
    ".prechat input{padding:8px;border:1px solid #c9ced6;border-radius:6px;font:inherit}",
    ".composer{display:flex;gap:6px;padding:8px;border-top:1px solid #e2e5ea;align-items:flex-end}",
    ".composer textarea{flex:1;resize:none;border:1px solid #c9ced6;border-radius:6px;padding:8px;font:inherit;max-height:120px}",
    "button.send,button.start{background:#1f5eff;color:#fff;border:0;border-radius:6px;padding:8px 12px;cursor:pointer;font:inherit}",
    "button.attach{background:none;border:0;cursor:pointer;padding:6px;color:#5b6370;display:grid;place-items:center}",
    ".note{padding:6px 12px;font-size:12px;color:#8a1c1c;background:#fff4f4}.note[hidden]{display:none}"
  ].join("");

  var root, els = {};

  function el(tag, cls, attrs) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    return node;
  }

  // Drawn, not typed: an emoji font may be missing on the visitor's system.
  function icon(path) {
    var NS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "24");
    svg.setAttribute("height", "24");
    svg.setAttribute("aria-hidden", "true");
    var line = document.createElementNS(NS, "path");
    line.setAttribute("d", path);
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "currentColor");
    line.setAttribute("stroke-width", "2");
    line.setAttribute("stroke-linejoin", "round");
    line.setAttribute("stroke-linecap", "round");
    svg.appendChild(line);
    return svg;
  }

  function build() {
    var host = el("div", "", { "data-kefu-chat": "" });
    document.body.appendChild(host);
    root = host.attachShadow({ mode: "open" });
    if ("adoptedStyleSheets" in root && window.CSSStyleSheet && CSSStyleSheet.prototype.replaceSync) {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } else {
      var style = el("style");
      style.textContent = CSS;
      root.appendChild(style);
    }
    var box = els.box = el("div", "k");
    els.launch = el("button", "launch", { type: "button", "data-kefu": "launch", "aria-expanded": "false" });
    els.launch.appendChild(icon("M4 4h16a1 1 0 0 1 1 1v11a1 1 0 0 1-1 1H9l-5 4v-4H4a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1z"));
    els.panel = el("section", "panel", { "data-kefu": "panel", role: "dialog" });
    els.panel.hidden = true;
    var head = el("div", "head");
    var titles = el("div");
    els.title = el("h2");
    els.status = el("p", "", { "data-kefu": "status" });
    titles.appendChild(els.title);
    titles.appendChild(els.status);
    els.close = el("button", "x", { type: "button" });
    els.close.textContent = "\u00D7";
    head.appendChild(titles);
    head.appendChild(els.close);
    els.log = el("div", "log", { role: "log", "aria-live": "polite", "data-kefu": "log" });
    els.typing = el("div", "typing", { "data-kefu": "typing", "aria-live": "polite" });
    els.typing.hidden = true;
    els.note = el("div", "note", { role: "alert", "data-kefu": "note" });
    els.note.hidden = true;
    els.prechat = el("form", "prechat", { "data-kefu": "prechat" });
    els.nameInput = el("input", "", { name: "name", autocomplete: "name", maxlength: "100" });
    els.emailInput = el("input", "", { name: "email", type: "email", autocomplete: "email", maxlength: "254" });
    els.start = el("button", "start", { type: "submit" });
    els.prechat.appendChild(els.nameInput);
    els.prechat.appendChild(els.emailInput);
    els.prechat.appendChild(els.start);
    els.composer = el("form", "composer", { "data-kefu": "composer" });
    els.file = el("input", "", { type: "file", hidden: "" });
    els.attach = el("button", "attach", { type: "button", "data-kefu": "attach" });
    els.attach.appendChild(icon("M12 5v14M5 12h14"));
    els.text = el("textarea", "", { rows: "1", "data-kefu": "text", maxlength: "5000" });
    els.send = el("button", "send", { type: "submit", "data-kefu": "send" });
    [els.file, els.attach, els.text, els.send].forEach(function (node) { els.composer.appendChild(node); });
    [head, els.log, els.typing, els.note, els.prechat, els.composer].forEach(function (node) { els.panel.appendChild(node); });
    box.appendChild(els.panel);
    box.appendChild(els.launch);
    root.appendChild(box);

    els.launch.addEventListener("click", function () { setOpen(!state.open); });
    els.close.addEventListener("click", function () { setOpen(false); });
    els.prechat.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!state.available && !els.emailInput.value.trim()) { els.emailInput.focus(); return; }
      state.name = els.nameInput.value.trim();
      state.email = els.emailInput.value.trim();
      state.started = true;
      save();
      render();
      els.text.focus();
    });
    els.composer.addEventListener("submit", function (event) { event.preventDefault(); sendText(); });
    els.text.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); sendText(); }
    });
    els.text.addEventListener("input", onTyping);
    els.attach.addEventListener("click", function () { els.file.click(); });
    els.file.addEventListener("change", function () { if (els.file.files[0]) upload(els.file.files[0]); els.file.value = ""; });
    els.log.addEventListener("click", function (event) {
      var bubble = event.target.closest && event.target.closest(".m.failed");
      if (bubble) retry(bubble.getAttribute("data-client-id"));
    });
    document.addEventListener("visibilitychange", receipts);
  }

  function setOpen(open) {
    state.open = open;
    save();
    els.panel.hidden = !open;
    els.launch.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) { receipts(); (needsPrechat() ? els.nameInput : els.text).focus(); }
  }

  function needsPrechat() {
    return !state.started && !state.name && state.messages.length === 0 && state.pending.length === 0;
  }

  // --- rendering ----------------------------------------------------------------------------------

  function labels() {
    els.box.setAttribute("dir", state.dir);
    els.box.setAttribute("lang", state.language);
    els.title.textContent = t("title");
    els.launch.setAttribute("aria-label", t("open"));
    els.close.setAttribute("aria-label", t("close"));
    els.panel.setAttribute("aria-label", t("title"));
    els.nameInput.setAttribute("placeholder", t("name"));
    els.emailInput.setAttribute("placeholder", state.available ? t("email") : t("email_required"));
    els.start.textContent = t("start");
    els.text.setAttribute("placeholder", t("placeholder"));
    els.text.setAttribute("aria-label", t("placeholder"));
    els.send.textContent = t("send");
    els.attach.setAttribute("aria-label", t("attach"));
    els.status.textContent = state.available ? t("online") : t("offline");
  }

  function bubble(message) {
    var fromVisitor = message.from === "visitor";
    var node = el("div", "m " + (fromVisitor ? "visitor" : "agent"), { "data-kefu-message": String(message.id || "") });
    if (!fromVisitor) {
      var who = el("small");
      who.textContent = message.author || t("agent");
      node.appendChild(who);
    }
    var body = el("span");
    body.textContent = message.text;  // text only: nothing a message says is ever HTML here
    node.appendChild(body);
    (message.attachments || []).forEach(function (file) {
      var line = el("small");
      if (file.url) {
        var link = el("a", "", { href: BASE.origin + file.url + "?t=" + encodeURIComponent(state.token || ""), target: "_blank", rel: "noopener" });
        link.textContent = "\u2193 " + file.name;
        line.appendChild(link);
      } else {
        line.textContent = file.name + (file.refused ? " (" + t("refused") + ")" : "");
      }
      node.appendChild(line);
    });
    return node;
  }

  function render() {
    var log = els.log;
    var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.textContent = "";
    if (state.greeting) {
      var greet = el("div", "greet");
      greet.textContent = state.greeting;
      log.appendChild(greet);
    }
    state.messages.forEach(function (message) { log.appendChild(bubble(message)); });
    state.pending.forEach(function (item) {
      var node = bubble({ from: "visitor", text: item.text });
      node.classList.add(item.failed ? "failed" : "pending");
      node.setAttribute("data-client-id", item.client_id);
      var hint = el("small");
      hint.textContent = item.failed ? (item.error || t("failed")) : t("sending");
      node.appendChild(hint);
      log.appendChild(node);
    });
    var last = state.messages[state.messages.length - 1];
    if (state.seen && last && last.from === "visitor" && state.pending.length === 0) {
      var seen = el("div", "seen", { "data-kefu": "seen" });
      seen.textContent = t("seen");
      log.appendChild(seen);
    }
    if (atBottom || state.open) log.scrollTop = log.scrollHeight;
    var prechat = needsPrechat();
    els.prechat.hidden = !prechat;
    els.composer.hidden = prechat;
  }

  function merge(found) {
    var known = {};
    state.messages.forEach(function (message) { known[message.id] = true; });
    found.forEach(function (message) {
      if (known[message.id]) {
        state.messages = state.messages.map(function (m) { return m.id === message.id ? message : m; });
        return;
      }
      state.messages.push(message);
      state.pending = state.pending.filter(function (item) { return item.client_id !== message.client_id; });
    });
    state.messages.sort(function (a, b) { return a.id - b.id; });
  }

  // --- the socket ---------------------------------------------------------------------------------

  function connect() {
    var socket = state.socket = new WebSocket(SOCKET_URL);
    socket.onopen = function () {
      state.attempt = 0;
      els.note.hidden = true;
      socket.send(JSON.stringify({ type: "hello", token: state.token, name: state.name, language: navigator.language || "en", page: location.href.slice(0, 500) }));
    };
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      var handler = HANDLERS[frame.type];
      if (handler) handler(frame);
    };
    socket.onclose = function (event) {
      if (event.code === 4403) return; // this site may not use the widget
      if (state.texts.reconnecting) { els.note.textContent = t("reconnecting"); els.note.hidden = false; }
      var wait = Math.min(30000, 500 * Math.pow(2, state.attempt++));
      setTimeout(connect, wait);
    };
  }

  function send(frame) {
    if (state.socket && state.socket.readyState === 1) { state.socket.send(JSON.stringify(frame)); return true; }
    return false;
  }

  var HANDLERS = {
    welcome: function (frame) {
      state.token = frame.token;
      state.texts = frame.texts || {};
      state.dir = frame.dir || "ltr";
      state.language = frame.language || "en";
      state.greeting = frame.greeting || "";
      state.available = !!frame.available;
      state.seen = !!frame.seen;
      state.messages = [];
      merge(frame.messages || []);
      save();
      labels();
      render();
      state.pending.forEach(function (item) { if (!item.failed) transmit(item); });
      receipts();
    },
    messages: function (frame) {
      merge(frame.messages || []);
      state.seen = !!frame.seen;
      var agentWrote = (frame.messages || []).some(function (m) { return m.from === "agent"; });
      if (agentWrote) showTyping(null);
      render();
      receipts();
    },
    ack: function (frame) {
      state.pending.forEach(function (item) { if (item.client_id === frame.client_id) item.id = frame.id; });
    },
    typing: function (frame) { showTyping(frame.state === "typing" ? (frame.name || t("agent")) : null); },
    error: function (frame) {
      var text = frame.code === "rate_limited" ? t("rate_limited") : frame.detail;
      var item = state.pending.filter(function (p) { return p.client_id === frame.client_id; })[0];
      if (item) { item.failed = true; item.error = text; render(); return; }
      els.note.textContent = text;
      els.note.hidden = false;
    },
    pong: function () {}
  };

  function showTyping(name) {
    clearTimeout(state.typingTimer);
    if (!name) { els.typing.hidden = true; return; }
    els.typing.textContent = t("typing").replace("{name}", name);
    els.typing.hidden = false;
    state.typingTimer = setTimeout(function () { els.typing.hidden = true; }, TYPING_SHOWN);
  }

  function receipts() {
    var agentIds = state.messages.filter(function (m) { return m.from === "agent"; }).map(function (m) { return m.id; });
    if (!agentIds.length) return;
    var upTo = Math.max.apply(null, agentIds);
    var reading = state.open && document.visibilityState === "visible";
    send({ type: reading ? "read" : "delivered", up_to: upTo });
  }

  function onTyping() {
    var now = Date.now();
    if (now - state.lastTyping < TYPING_EVERY) return;
    state.lastTyping = now;
    send({ type: "typing", state: "typing" });
  }

  // --- sending ------------------------------------------------------------------------------------

  function transmit(item) {
    send({ type: "message", client_id: item.client_id, text: item.text, name: state.name, email: state.email, language: navigator.language || "", page: location.href.slice(0, 500) });
  }

  function sendText() {
    var text = els.text.value.trim();
    if (!text) return;
    var item = { client_id: newId(), text: text };
    state.pending.push(item);
    els.text.value = "";
    render();
    transmit(item);  // a closed socket re-sends pending messages after its welcome
  }

  function retry(clientId) {
    state.pending.forEach(function (item) {
      if (item.client_id === clientId) { item.failed = false; transmit(item); }
    });
    render();
  }

  function upload(file) {
    var item = { client_id: newId(), text: file.name };
    state.pending.push(item);
    render();
    var form = new FormData();
    form.append("file", file);
    form.append("client_id", item.client_id);
    form.append("name", state.name);
    form.append("email", state.email);
    form.append("language", navigator.language || "");
    fetch(UPLOAD_URL, { method: "POST", body: form, headers: { Authorization: "Bearer " + state.token }, credentials: "omit" })
      .then(function (response) {
        if (response.status === 413) throw new Error(t("too_large"));
        if (response.status === 429) throw new Error(t("rate_limited"));
        if (!response.ok) throw new Error(t("failed"));
      })
      .catch(function (error) { item.failed = true; item.error = error.message; render(); });
  }

  function start() {
    load();
    build();
    els.panel.hidden = !state.open;
    connect();
    setInterval(function () { send({ type: "ping" }); }, PING_EVERY);
  }

  window.__kefuChat = { version: 1 };
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
