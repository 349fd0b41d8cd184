// The operator console: plain JS over /console/api and /console/ws (see bot/assist/console.py).
(function () {
  "use strict";
  const T = {
    zh: {
      title: "客服工作台", analytics: "数据分析", logout: "退出", queue: "排队中", active: "服务中", archive: "历史会话",
      search: "搜索", pick: "请选择左侧的会话", claim: "接入", takeover: "接管", handback: "交还机器人", reply: "回复客户",
      send: "发送", suggestions: "话术推荐", summary: "会话摘要", "edit-summary": "修改摘要", problem: "问题",
      "next-step": "建议下一步", save: "保存", trace: "机器人轨迹", use: "使用", none: "暂无", user: "客户", bot: "机器人",
      operator: "客服", waited: "等待", mine: "我", priority: ["", "普通", "较高", "紧急"], online: "在线客服",
      sources: {faq: "常见问题", kg: "知识图谱", doc: "文档", archive: "历史回复", generator: "生成"},
      intent: "意图", actions: "动作", facts: "依据", safety: "安全", slots: "槽位", sent: "已发送", readonly: "（历史，只读）",
      recommended: "猜你想问",
    },
    en: {
      title: "Operator console", analytics: "Analytics", logout: "Sign out", queue: "Waiting", active: "In service",
      archive: "Archive", search: "Search", pick: "Pick a conversation on the left", claim: "Take", takeover: "Take over",
      handback: "Hand back to bot", reply: "Reply to the customer", send: "Send", suggestions: "Suggested replies",
      summary: "Summary", "edit-summary": "Edit summary", problem: "Problem", "next-step": "Next step", save: "Save",
      trace: "Bot trace", use: "Use", none: "None", user: "Customer", bot: "Bot", operator: "Agent", waited: "waited",
      mine: "me", priority: ["", "normal", "high", "urgent"], online: "Agents online",
      sources: {faq: "FAQ", kg: "Knowledge graph", doc: "Docs", archive: "Past reply", generator: "Generated"},
      intent: "Intent", actions: "Actions", facts: "Facts", safety: "Safety", slots: "Slots", sent: "Sent", readonly: "(archived, read only)",
      recommended: "You may also ask",
    },
  };
  let lang = (localStorage.getItem("kefu-console-lang") || navigator.language || "zh").startsWith("en") ? "en" : "zh";
  let me = "";
  let current = null; // {id, ticket}
  let shown = []; // suggestions on screen, best first
  let chosen = null; // the suggestion the reply box started from
  const $ = (id) => document.getElementById(id);
  const t = (key) => T[lang][key] ?? key;

  function applyLanguage() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
    document.querySelectorAll("[data-tp]").forEach((el) => { el.placeholder = t(el.dataset.tp); });
    $("lang").textContent = lang === "zh" ? "English" : "中文";
  }

  async function api(path, body) {
    const options = {credentials: "same-origin"};
    if (body !== undefined) {
      Object.assign(options, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    }
    const response = await fetch(path, options);
    if (response.status === 401) { location.assign("/console/login?next=/console"); throw new Error("signed out"); }
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
    });
    children.flat().forEach((c) => node.append(c instanceof Node ? c : document.createTextNode(String(c))));
    return node;
  }

  function minutes(seconds) { return seconds < 60 ? `${Math.round(seconds)}s` : `${Math.round(seconds / 60)}min`; }

  function ticketItem(ticket) {
    const summary = ticket.summary || {};
    const label = `${summary.topic || summary.problem || ticket.conversation_id}`;
    const who = ticket.operator ? ` · ${ticket.operator === me ? t("mine") : ticket.operator}` : "";
    return el("li", {class: `ticket p${ticket.priority}`, "data-id": ticket.conversation_id},
      el("button", {type: "button", onclick: () => openConversation(ticket.conversation_id)},
        el("strong", {}, label),
        el("span", {class: "meta"}, `${t("priority")[ticket.priority] || ""} · ${ticket.language} · ${ticket.channel} · ${t("waited")} ${minutes(ticket.waited_s)}${who}`),
        el("span", {class: "reason"}, ticket.reason)));
  }

  async function loadQueue() {
    const data = await api("/console/api/queue");
    me = data.operator;
    $("me").textContent = `${me} · ${t("online")}: ${data.online.length}`;
    $("waiting").replaceChildren(...(data.waiting.length ? data.waiting.map(ticketItem) : [el("li", {class: "empty"}, t("none"))]));
    $("active").replaceChildren(...(data.active.length ? data.active.map(ticketItem) : [el("li", {class: "empty"}, t("none"))]));
  }

  function transcriptItem(entry) {
    const item = el("li", {class: entry.role, "data-seq": entry.seq}, el("span", {class: "who"}, t(entry.role)), el("p", {}, entry.text));
    if (entry.buttons) item.append(el("span", {class: "meta"}, entry.buttons.map((b) => `[${b.title}]`).join(" ")));
    if (entry.quick_replies) {
      item.append(el("span", {class: "meta recommended"}, `${t("recommended")}: ${entry.quick_replies.map((b) => `[${b.title}]`).join(" ")}`));
    }
    return item;
  }

  function traceItem(turn) {
    const rows = [
      [t("intent"), turn.intent ? `${turn.intent} (${turn.confidence})` : "-"],
      [t("actions"), turn.actions.map((a) => `${a.action} ← ${a.policy}`).join(", ") || "-"],
      [t("facts"), turn.facts.join(", ") || "-"],
      [t("slots"), turn.slots.map((s) => `${s.slot}=${s.value}`).join(", ") || "-"],
      [t("safety"), turn.safety.map((v) => `${v.check}:${v.action}${v.category ? " " + v.category : ""}`).join(", ") || "-"],
    ];
    return el("li", {"data-seq": turn.seq}, el("q", {}, turn.text),
      el("dl", {}, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
      turn.handoff ? el("p", {class: "handoff"}, `→ ${turn.handoff}`) : "");
  }

  async function openConversation(id) {
    const data = await api(`/console/api/conversation/${encodeURIComponent(id)}`);
    const changed = !current || current.id !== id;
    current = {id, ticket: data.ticket};
    const ticket = data.ticket;
    $("conversation-title").textContent = `${(data.summary && data.summary.topic) || ""} ${id}`;
    $("transcript").replaceChildren(...data.transcript.map(transcriptItem));
    $("transcript").lastElementChild?.scrollIntoView({block: "nearest"});
    $("trace").replaceChildren(...data.turns.slice().reverse().map(traceItem));
    $("summary").textContent = data.summary_text;
    if (changed) { $("summary-problem").value = data.summary.problem || ""; $("summary-next").value = data.summary.next_step || ""; }
    $("ticket-actions").hidden = !ticket;
    $("reply").hidden = !ticket;
    const mine = ticket && ticket.operator === me;
    $("claim").hidden = !ticket || mine;
    $("claim").textContent = ticket && ticket.operator && !mine ? t("takeover") : t("claim");
    $("handback").hidden = !ticket;
    document.querySelectorAll(".ticket").forEach((li) => li.toggleAttribute("aria-current", li.dataset.id === id));
    if (ticket) loadSuggestions(id); else $("suggestions").replaceChildren();
  }

  function suggestionItem(s) {
    return el("li", {class: `suggestion ${s.source}`},
      el("span", {class: "source"}, t("sources")[s.source] || s.source),
      s.title ? el("span", {class: "meta"}, s.title) : "",
      el("p", {}, s.text),
      el("button", {type: "button", onclick: () => { chosen = s; $("reply-text").value = s.text; $("reply-text").focus(); }}, t("use")));
  }

  async function loadSuggestions(id) {
    const quick = await api(`/console/api/suggestions/${encodeURIComponent(id)}`);
    if (!current || current.id !== id) return;
    shown = quick.suggestions;
    $("suggestions").replaceChildren(...(shown.length ? shown.map(suggestionItem) : [el("li", {class: "empty"}, t("none"))]));
    const generated = await api(`/console/api/suggestions/${encodeURIComponent(id)}?generator=1`).catch(() => ({suggestions: []}));
    if (!current || current.id !== id) return;
    const extra = generated.suggestions.filter((s) => s.source === "generator" && !shown.some((o) => o.text === s.text));
    if (extra.length) { shown = shown.concat(extra); $("suggestions").append(...extra.map(suggestionItem)); }
  }

  async function send(event) {
    event.preventDefault();
    const text = $("reply-text").value.trim();
    if (!text || !current) return;
    $("reply-problem").textContent = "";
    try {
      await api(`/console/api/messages/${encodeURIComponent(current.id)}`, {text, suggestion: chosen, shown: shown.slice(0, 1)});
      $("reply-text").value = "";
      chosen = null;
      await openConversation(current.id);
      await loadQueue();
    } catch (err) { $("reply-problem").textContent = err.message; }
  }

  async function act(path, body) {
    if (!current) return;
    try { await api(`${path}/${encodeURIComponent(current.id)}`, body); } catch (err) { $("reply-problem").textContent = err.message; }
    await loadQueue();
    await openConversation(current.id);
  }

  async function searchArchive(event) {
    event.preventDefault();
    const data = await api(`/console/api/archive?q=${encodeURIComponent($("archive-q").value)}`);
    $("archive-hits").replaceChildren(...data.sessions.map((s) => el("li", {class: "ticket"},
      el("button", {type: "button", onclick: () => openArchived(s.conversation_id)}, el("strong", {}, s.first_message),
        el("span", {class: "meta"}, `${new Date(s.ended_at * 1000).toLocaleString()} · ${s.channel}`), el("span", {class: "reason"}, s.snippet)))));
  }

  async function openArchived(id) {
    const data = await api(`/console/api/archive/${encodeURIComponent(id)}`);
    current = null;
    $("conversation-title").textContent = `${id} ${t("readonly")}`;
    $("transcript").replaceChildren(...data.sessions.flatMap((s) => s.transcript.map(transcriptItem)));
    ["ticket-actions", "reply"].forEach((x) => { $(x).hidden = true; });
  }

  function listen(delay) {
    const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/console/ws`);
    socket.onopen = () => { delay = 500; };
    socket.onmessage = (event) => {
      const notice = JSON.parse(event.data);
      loadQueue().catch(() => {});
      if (current && notice.conversation_id === current.id) openConversation(current.id).catch(() => {});
    };
    socket.onclose = () => setTimeout(() => listen(Math.min(delay * 2, 15000)), delay + Math.random() * 300);
  }

  $("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("kefu-console-lang", lang); applyLanguage(); loadQueue(); });
  $("logout").addEventListener("click", async () => { await api("/console/api/logout", {}); location.assign("/console/login"); });
  $("reply").addEventListener("submit", send);
  $("reply-text").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) send(e); });
  $("claim").addEventListener("click", () => act("/console/api/claim", {take_over: Boolean(current && current.ticket && current.ticket.operator)}));
  $("handback").addEventListener("click", () => act("/console/api/handback", {}));
  $("archive-search").addEventListener("submit", searchArchive);
  $("summary-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    await act("/console/api/summary", {problem: $("summary-problem").value, next_step: $("summary-next").value});
  });
  applyLanguage();
  loadQueue().then(() => listen(500)).catch(() => {});
  setInterval(() => loadQueue().catch(() => {}), 15000);
})();
