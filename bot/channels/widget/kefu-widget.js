/* kefu web chat widget. Embed it with one tag:
 *   <script src="https://your-kefu-server/widget/kefu-widget.js" defer></script>
 * Optional attributes: data-server (default: where the script came from), data-lang (zh | en; default: the
 * browser's), data-title, data-greeting, data-open ("true" opens the panel on load).
 *
 * The conversation id and the messages not yet stored by the server live in localStorage, so a reload shows
 * the history and a reconnect resends exactly what the server has not stored.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var data = (script && script.dataset) || {};
  var origin = data.server || (script && script.src ? new URL(script.src, location.href).origin : location.origin);
  var STORE = "kefu-widget:" + origin;

  var TEXT = {
    zh: {
      title: "在线客服", greeting: "您好！请问有什么可以帮您？", placeholder: "请输入您的问题…", send: "发送",
      open: "打开在线客服", close: "关闭", connecting: "正在连接…", reconnecting: "连接已断开，正在重新连接…",
      connected: "", waiting: "等待发送", typing: "客服正在输入", helpful: "有帮助", unhelpful: "没有帮助",
      end: "结束对话", csat: "请为本次服务打分", star: "分", thanks: "谢谢您的评价！", switchLang: "English",
      log: "对话记录", you: "我", bot: "客服", operator: "人工客服", image: "图片", error: "出错了：",
      suggest: "猜你想问"
    },
    en: {
      title: "Customer service", greeting: "Hello! How can I help you?", placeholder: "Type your question…",
      send: "Send", open: "Open customer service chat", close: "Close", connecting: "Connecting…",
      reconnecting: "Connection lost. Reconnecting…", connected: "", waiting: "Waiting to send",
      typing: "The assistant is typing", helpful: "Helpful", unhelpful: "Not helpful", end: "End chat",
      csat: "How would you rate this chat?", star: "out of 5", thanks: "Thank you for your rating!",
      switchLang: "中文", log: "Conversation", you: "You", bot: "Assistant", operator: "Agent", image: "Image",
      error: "Error: ", suggest: "You may also ask"
    }
  };

  var saved = load();
  var lang = data.lang || saved.lang || ((navigator.language || "zh").toLowerCase().indexOf("zh") === 0 ? "zh" : "en");
  if (!TEXT[lang]) lang = "zh";
  var socket = null, attempt = 0, retryTimer = null, ready = false, rated = false;
  var seen = -1;  // the last transcript position this page shows: a reload starts again from the beginning
  // the hot questions (猜你想问) by language, the language of those shown, and the one the bot answers in
  var hot = {}, hotLang = null, spoken = null;

  function load() {
    try {
      var value = JSON.parse(localStorage.getItem(STORE) || "{}");
      return { cid: value.cid || null, outbox: Array.isArray(value.outbox) ? value.outbox : [],
               lang: value.lang, open: !!value.open };
    } catch (e) {
      return { cid: null, outbox: [], lang: null, open: false };
    }
  }
  function persist() {
    saved.lang = lang;
    try { localStorage.setItem(STORE, JSON.stringify(saved)); } catch (e) { /* private mode: this tab only */ }
  }
  function t(key) { return TEXT[lang][key]; }

  /* ---------------------------------------------------------------- the view */
  var host = document.createElement("div");
  host.id = "kefu-widget";
  var root = host.attachShadow({ mode: "open" });
  root.innerHTML =
    "<style>" +
    ":host{all:initial}*{box-sizing:border-box;font-family:system-ui,'WenQuanYi Micro Hei','PingFang SC','Microsoft YaHei',sans-serif}" +
    ".launcher{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;background:#1f6feb;color:#fff;font-size:24px;cursor:pointer;box-shadow:0 2px 8px rgba(0,0,0,.3);z-index:2147483000}" +
    ".launcher:focus-visible,button:focus-visible,textarea:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}" +
    ".panel{position:fixed;right:20px;bottom:88px;width:370px;height:560px;max-height:calc(100vh - 110px);display:flex;flex-direction:column;background:#fff;color:#1b1f24;border-radius:12px;box-shadow:0 4px 24px rgba(0,0,0,.25);overflow:hidden;z-index:2147483001}" +
    ".panel[hidden]{display:none}" +
    "header{display:flex;align-items:center;gap:8px;padding:10px 12px;background:#1f6feb;color:#fff}" +
    "header h2{flex:1;margin:0;font-size:16px}" +
    "header button{background:transparent;border:1px solid rgba(255,255,255,.6);color:#fff;border-radius:6px;padding:4px 8px;cursor:pointer;font-size:13px}" +
    ".status{font-size:12px;padding:4px 12px;background:#fff4e5;color:#6b3d00}.status:empty{display:none}" +
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f6f8fa}" +
    ".msg{max-width:85%;padding:8px 10px;border-radius:10px;line-height:1.45;font-size:14px;white-space:pre-wrap;word-wrap:break-word}" +
    ".user{align-self:flex-end;background:#1f6feb;color:#fff}.bot,.operator{align-self:flex-start;background:#fff;border:1px solid #d0d7de}" +
    ".operator{border-color:#8250df}.pending{opacity:.65}.pending .note{display:block;font-size:11px}.note{display:none}" +
    ".who{position:absolute;left:-10000px}" +
    ".msg img{display:block;max-width:100%;margin-top:6px;border-radius:6px}" +
    ".card{margin-top:6px;border:1px solid #d0d7de;border-radius:8px;padding:8px;background:#fafbfc}.card h3{margin:0 0 4px;font-size:14px}" +
    ".card p{margin:0 0 4px;color:#57606a}.card dl{margin:0;display:grid;grid-template-columns:auto 1fr;gap:2px 8px}.card dt{color:#57606a}.card dd{margin:0}" +
    ".card a{color:#0969da}" +
    ".quick{display:flex;flex-wrap:wrap;gap:6px;margin-top:6px}.quick button{border:1px solid #1f6feb;background:#fff;color:#1f6feb;border-radius:14px;padding:4px 10px;cursor:pointer;font-size:13px}" +
    ".quick button:disabled{opacity:.5;cursor:default}" +
    ".quick-label{flex-basis:100%;font-size:12px;color:#57606a}" +
    ".thumbs{display:flex;gap:4px;margin-top:4px}.thumbs button{border:0;background:transparent;cursor:pointer;font-size:14px;opacity:.6}.thumbs button[aria-pressed=true]{opacity:1}" +
    ".typing{align-self:flex-start;font-size:20px;letter-spacing:2px;color:#57606a}.typing[hidden]{display:none}" +
    "form{display:flex;gap:6px;padding:8px;border-top:1px solid #d0d7de}textarea{flex:1;resize:none;height:40px;padding:8px;border:1px solid #d0d7de;border-radius:8px;font-size:14px}" +
    "form button{border:0;background:#1f6feb;color:#fff;border-radius:8px;padding:0 14px;cursor:pointer;font-size:14px}" +
    ".csat{padding:8px 12px;border-top:1px solid #d0d7de}.csat[hidden]{display:none}.csat p{margin:0 0 6px;font-size:13px}.csat button{border:1px solid #d0d7de;background:#fff;border-radius:6px;padding:4px 10px;margin-right:4px;cursor:pointer}" +
    "@media (max-width:480px){.panel{right:0;bottom:0;width:100%;height:100%;max-height:none;border-radius:0}.launcher{right:12px;bottom:12px}}" +
    "</style>" +
    "<button class='launcher' type='button' aria-haspopup='dialog' aria-expanded='false'>💬</button>" +
    "<section class='panel' role='dialog' aria-modal='false' hidden>" +
    "<header><h2 class='title'></h2><button type='button' class='lang'></button><button type='button' class='end'></button>" +
    "<button type='button' class='close'>✕</button></header>" +
    "<div class='status' role='status' aria-live='polite'></div>" +
    "<div class='log' role='log' aria-live='polite' aria-relevant='additions text'>" +
    "<div class='typing' hidden role='status'><span aria-hidden='true'>•••</span><span class='who typing-label'></span></div></div>" +
    "<div class='csat' hidden><p class='csat-question'></p><div class='stars'></div></div>" +
    "<form><label class='who' for='kefu-input'></label><textarea id='kefu-input' maxlength='4000' rows='1'></textarea>" +
    "<button type='submit' class='send'></button></form></section>";
  var $ = function (selector) { return root.querySelector(selector); };
  var launcher = $(".launcher"), panel = $(".panel"), log = $(".log"), typing = $(".typing");
  var input = $("textarea"), status = $(".status"), csat = $(".csat");

  function label() {
    $(".title").textContent = data.title || t("title");
    panel.setAttribute("aria-label", data.title || t("title"));
    launcher.setAttribute("aria-label", t("open"));
    $(".close").setAttribute("aria-label", t("close"));
    $(".lang").textContent = t("switchLang");
    $(".end").textContent = t("end");
    log.setAttribute("aria-label", t("log"));
    $(".typing-label").textContent = t("typing");
    $("label").textContent = t("placeholder");
    input.placeholder = t("placeholder");
    $(".send").textContent = t("send");
    $(".csat-question").textContent = t(rated ? "thanks" : "csat");
    var greeting = $(".greeting .text");
    if (greeting) greeting.textContent = data.greeting || t("greeting");
    var stars = $(".stars");
    stars.textContent = "";
    for (var i = 1; !rated && i <= 5; i++) stars.appendChild(starButton(i));
    root.querySelectorAll(".pending .note").forEach(function (n) { n.textContent = t("waiting"); });
    root.querySelectorAll(".suggested").forEach(function (row) { labelSuggestions(row); });
    if (!ready) status.textContent = attempt ? t("reconnecting") : t("connecting");
  }
  function starButton(n) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = n + " ★";
    b.setAttribute("aria-label", n + " " + t("star"));
    b.addEventListener("click", function () { rate(n); });
    return b;
  }

  function setOpen(open, moveFocus) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    saved.open = open;
    persist();
    if (open) scroll();
    if (moveFocus) (open ? input : launcher).focus();
  }
  launcher.addEventListener("click", function () { setOpen(panel.hidden, true); });
  $(".close").addEventListener("click", function () { setOpen(false, true); });
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") setOpen(false, true); });
  $(".lang").addEventListener("click", function () {
    lang = lang === "zh" ? "en" : "zh";
    persist();
    label();
    showHot(lang);
  });
  $(".end").addEventListener("click", function () { csat.hidden = false; csat.querySelector("button").focus(); });
  $("form").addEventListener("submit", function (e) { e.preventDefault(); submit(); });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });

  function scroll() { log.scrollTop = log.scrollHeight; }
  function bubble(role, id) {
    var el = document.createElement("div");
    el.className = "msg " + role;
    if (id) el.dataset.id = id;
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = t(role === "user" ? "you" : role) + ": ";
    el.appendChild(who);
    var body = document.createElement("span");
    body.className = "text";
    el.appendChild(body);
    log.insertBefore(el, typing);
    return el;
  }
  function find(id) { return id ? log.querySelector(".msg[data-id='" + CSS.escape(id) + "']") : null; }

  function showEntry(entry) {
    var el = find(entry.id);
    if (entry.role === "user") {
      if (!el) el = bubble("user", entry.id);
      el.classList.remove("pending");
      el.querySelector(".text").textContent = entry.text;
      var note = el.querySelector(".note");
      if (note) note.remove();
      return;
    }
    if (!el) el = bubble(entry.role, entry.id);
    el.classList.remove("streaming");
    el.dataset.seq = entry.seq;
    el.querySelector(".text").textContent = entry.text || "";
    if (entry.image && /^https?:|^\//.test(entry.image)) addImage(el, entry.image);
    if (entry.custom && entry.custom.card) addCard(el, entry.custom.card);
    if (entry.buttons && entry.buttons.length) addQuickReplies(el, entry.buttons);
    if (entry.quick_replies && entry.quick_replies.length) addSuggestions(el, entry.quick_replies);
    if (entry.role === "bot") addThumbs(el, entry.id);
  }
  function addImage(el, src) {
    var img = document.createElement("img");
    img.src = src;
    img.alt = t("image");
    el.appendChild(img);
  }
  function addCard(el, card) {
    var box = document.createElement("div");
    box.className = "card";
    if (card.image && /^https?:|^\//.test(card.image)) addImage(box, card.image);
    var h = document.createElement("h3");
    h.textContent = card.title || "";
    box.appendChild(h);
    if (card.subtitle) { var p = document.createElement("p"); p.textContent = card.subtitle; box.appendChild(p); }
    if (Array.isArray(card.fields) && card.fields.length) {
      var dl = document.createElement("dl");
      card.fields.forEach(function (f) {
        var dt = document.createElement("dt"), dd = document.createElement("dd");
        dt.textContent = f.label;
        dd.textContent = f.value;
        dl.appendChild(dt);
        dl.appendChild(dd);
      });
      box.appendChild(dl);
    }
    if (card.url && /^https?:|^\//.test(card.url)) {
      var a = document.createElement("a");
      a.href = card.url;
      a.target = "_blank";
      a.rel = "noopener";
      a.textContent = card.link || (lang === "zh" ? "查看详情" : "View details");
      box.appendChild(a);
    }
    el.appendChild(box);
  }
  // recommended questions (猜你想问): chips like buttons, under a small label in the widget's language
  function addSuggestions(el, questions) {
    var row = addQuickReplies(el, questions);
    row.classList.add("suggested");
    var note = document.createElement("span");
    note.className = "quick-label";
    row.insertBefore(note, row.firstChild);
    labelSuggestions(row);
    return row;
  }
  function labelSuggestions(row) {
    row.querySelector(".quick-label").textContent = t("suggest");
    row.setAttribute("aria-label", t("suggest"));
  }
  // The hot questions under the greeting, in `language`: until one is clicked they follow the customer into
  // the other language (the widget's switch, or the language the server says it answers in).
  function showHot(language) {
    var greeting = $(".greeting"), shown = greeting && greeting.querySelector(".quick");
    if (!greeting || !hot[language] || !hot[language].length || language === hotLang) return;
    if (shown && shown.querySelector("button:disabled")) return;  // clicked: part of the history now
    if (shown) shown.remove();
    addSuggestions(greeting, hot[language]).setAttribute("lang", language);
    hotLang = language;
  }
  function addQuickReplies(el, buttons) {
    var row = document.createElement("div");
    row.className = "quick";
    row.setAttribute("role", "group");
    buttons.forEach(function (b) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = b.title;
      button.addEventListener("click", function () {
        row.querySelectorAll("button").forEach(function (x) { x.disabled = true; });
        say(b.payload || b.title, b.title);
      });
      row.appendChild(button);
    });
    el.appendChild(row);
    return row;
  }
  function addThumbs(el, id) {
    var row = document.createElement("div");
    row.className = "thumbs";
    [[1, "👍", "helpful"], [-1, "👎", "unhelpful"]].forEach(function (spec) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = spec[1];
      button.setAttribute("aria-label", t(spec[2]));
      button.setAttribute("aria-pressed", "false");
      button.addEventListener("click", function () {
        row.querySelectorAll("button").forEach(function (x) { x.setAttribute("aria-pressed", "false"); });
        button.setAttribute("aria-pressed", "true");
        send({ type: "feedback", reply_id: id, rating: spec[0] });
      });
      row.appendChild(button);
    });
    el.appendChild(row);
  }
  function rate(n) {
    send({ type: "csat", rating: n });
    csat.querySelector(".stars").textContent = "";
  }

  /* ------------------------------------------------------------ messages out */
  function newId() {
    var bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function submit() {
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    say(text, text);
  }
  function say(text, shown) {
    var item = { id: newId(), text: text, shown: shown };
    saved.outbox.push(item);
    persist();
    showPending(item);
    if (ready) send({ type: "message", id: item.id, text: item.text });
  }
  function showPending(item) {
    if (find(item.id)) return;
    var el = bubble("user", item.id);
    el.classList.add("pending");
    el.querySelector(".text").textContent = item.shown;
    var note = document.createElement("span");
    note.className = "note";
    note.textContent = t("waiting");
    el.appendChild(note);
    scroll();
  }
  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }

  /* ------------------------------------------------------------- messages in */
  function receive(frame) {
    switch (frame.type) {
      case "welcome":
        if (saved.cid !== frame.conversation_id) { saved.cid = frame.conversation_id; seen = -1; }
        persist();
        if (frame.hot_by_lang) hot = frame.hot_by_lang;  // sent only while nothing was asked yet
        showHot(spoken || lang);
        break;
      case "messages":
        frame.messages.forEach(function (entry) {
          if (entry.seq <= seen) return;
          showEntry(entry);
          seen = entry.seq;
          if (entry.role === "user") saved.outbox = saved.outbox.filter(function (m) { return m.id !== entry.id; });
        });
        persist();
        if (frame.lang && frame.lang !== spoken) { spoken = frame.lang; showHot(spoken); }
        if (!ready) { ready = true; status.textContent = t("connected"); flush(); }
        scroll();
        break;
      case "ack": {
        var el = find(frame.id);
        if (el) { el.classList.remove("pending"); var note = el.querySelector(".note"); if (note) note.remove(); }
        break;
      }
      case "typing":
        typing.hidden = !frame.on;
        scroll();
        break;
      case "partial": {
        var reply = find(frame.reply_id) || bubble("bot", frame.reply_id);
        reply.classList.add("streaming");
        reply.dataset.streamed = "true";
        var shown = reply.querySelector(".text");
        var glue = /[A-Za-z0-9.,!?;:)]$/.test(shown.textContent) && /^[A-Za-z0-9(]/.test(frame.text) ? " " : "";
        shown.textContent += glue + frame.text;
        scroll();
        break;
      }
      case "done":
        typing.hidden = true;
        break;
      case "recorded":
        if (frame.kind === "csat") { rated = true; csat.querySelector(".csat-question").textContent = t("thanks"); }
        else {
          var rated = find(frame.reply_id);
          if (rated) rated.querySelector(".thumbs").dataset.recorded = "true";
        }
        break;
      case "error":
        if (frame.id) {
          saved.outbox = saved.outbox.filter(function (m) { return m.id !== frame.id; });
          persist();
        }
        var problem = bubble("bot", null);
        problem.querySelector(".text").textContent = t("error") + frame.error;
        break;
    }
  }
  function flush() {
    saved.outbox.forEach(function (item) { send({ type: "message", id: item.id, text: item.text }); });
  }

  /* ----------------------------------------------------- connection, backoff */
  function connect() {
    var url = origin.replace(/^http/, "ws") + "/ws";
    try { socket = new WebSocket(url); } catch (e) { return retry(); }
    socket.onopen = function () {
      attempt = 0;
      socket.send(JSON.stringify({ type: "hello", conversation_id: saved.cid, after: seen, lang: lang }));
    };
    socket.onmessage = function (event) {
      try { receive(JSON.parse(event.data)); } catch (e) { /* a frame this version does not know */ }
    };
    socket.onclose = function () { ready = false; socket = null; retry(); };
  }
  function retry() {
    if (retryTimer) return;
    status.textContent = t("reconnecting");
    var delay = Math.min(30000, 500 * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
    attempt += 1;
    retryTimer = setTimeout(function () { retryTimer = null; connect(); }, delay);
  }

  function start() {
    document.body.appendChild(host);
    bubble("bot", null).classList.add("greeting");
    label();
    saved.outbox.forEach(showPending);
    if (data.open === "true" || saved.open) setOpen(true, false);
    connect();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
