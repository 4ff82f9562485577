/* The WhatsApp Web test double's page: loading -> login (QR) | syncing -> main.
 *
 * All data comes from the server (snapshots from /api/poll, a long poll, and from every /api/*
 * POST); the page keeps only what a browser keeps: its session token in localStorage. The DOM is
 * updated in place (rows, messages, the QR holder), so elements a bot holds stay valid.
 *
 * CFG.variant picks the markup of each concern of the contract: 0 the first-listed variant,
 * 1 the second, 2 the third where there are three (else the last one).
 */
(function () {
  "use strict";

  const CFG = JSON.parse(document.getElementById("wa-config").textContent);
  const V = CFG.variant;
  const TOKEN_KEY = "wa-double-session";
  const PIXEL = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";
  // One emoji (one <img class="emoji"> each): flags, keycaps, pictographs with variation
  // selectors, skin tones, tag sequences and ZWJ sequences; lone regional indicators/modifiers.
  const EMOJI_RE = new RegExp(
    "\\p{Regional_Indicator}{2}" +
      "|[#*0-9]\\uFE0F?\\u20E3" +
      "|\\p{Extended_Pictographic}(?:\\uFE0F|\\p{Emoji_Modifier})*(?:[\\u{E0020}-\\u{E007E}]+\\u{E007F})?" +
      "(?:\\u200D\\p{Extended_Pictographic}(?:\\uFE0F|\\p{Emoji_Modifier})*)*" +
      "|\\p{Regional_Indicator}|\\p{Emoji_Modifier}",
    "gu"
  );

  const app = document.getElementById("app");
  let state = "loading";
  let gen = 0; // bumped by every change of screen; async steps of an old screen stop
  let version = -1;
  let openJid = null;
  let sendIntent = CFG.send; // {phone, text} of /send, until main is reached
  let ui = {};

  // -- helpers ------------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined && child !== false) el.append(child);
    }
    return el;
  }

  function svg(markup) {
    const holder = document.createElement("span");
    holder.innerHTML =
      '<svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">' + markup + "</svg>";
    return holder.firstChild;
  }

  const ICONS = {
    "msg-time":
      '<circle cx="12" cy="12" r="7" fill="none" stroke="currentColor" stroke-width="1.5"/>' +
      '<path d="M12 8v4l3 2" fill="none" stroke="currentColor" stroke-width="1.5"/>',
    "msg-check": '<path d="M5 12l4 4 9-9" fill="none" stroke="currentColor" stroke-width="2"/>',
    "msg-dblcheck":
      '<path d="M2 12l4 4 9-9M9 16l1 0 9-9" fill="none" stroke="currentColor" stroke-width="2"/>',
    send: '<path d="M3 20l18-8L3 4v6l12 2-12 2z" fill="currentColor"/>',
    mic:
      '<rect x="9" y="3" width="6" height="11" rx="3" fill="currentColor"/>' +
      '<path d="M6 11a6 6 0 0 0 12 0M12 17v4" fill="none" stroke="currentColor" stroke-width="2"/>',
    refresh:
      '<path d="M17.6 6.4A8 8 0 1 0 20 12h-2a6 6 0 1 1-1.8-4.2L13 11h7V4z" fill="currentColor"/>',
    play: '<path d="M8 5v14l11-7z" fill="currentColor"/>',
  };
  const TICK_LABELS = { "msg-time": " Pending ", "msg-check": " Sent ", "msg-dblcheck": " Delivered " };

  function token() {
    try {
      return localStorage.getItem(TOKEN_KEY) || "";
    } catch (e) {
      return "";
    }
  }

  function forget() {
    try {
      localStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      /* nothing to forget */
    }
  }

  function base(extra) {
    return Object.assign({ page: CFG.page, token: token() }, extra || {});
  }

  async function api(path, body) {
    const options = { cache: "no-store" };
    if (body !== undefined) {
      options.method = "POST";
      options.headers = { "Content-Type": "application/json" };
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response.json();
  }

  // POSTs go one at a time, in order (state reports, opens, sends).
  let queue = Promise.resolve();
  function call(path, body) {
    const result = queue.then(() => api(path, body));
    queue = result.catch(() => {});
    return result;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function enter(next) {
    state = next;
    gen += 1;
    ui = {};
    return gen;
  }

  function animate(bar, seconds) {
    const start = performance.now();
    const step = () => {
      if (!bar.isConnected) return;
      const done = Math.min(100, ((performance.now() - start) / Math.max(1, seconds * 1000)) * 100);
      if (bar.tagName === "PROGRESS") bar.value = done;
      else if (bar.firstElementChild) bar.firstElementChild.style.width = done + "%";
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }

  // Text with every emoji as <img alt="😀" class="emoji"> between text nodes; "\n" as <br>.
  function richText(target, text) {
    String(text)
      .split("\n")
      .forEach((line, index) => {
        if (index) target.append(h("br"));
        let last = 0;
        for (const match of line.matchAll(EMOJI_RE)) {
          if (match.index > last) target.append(line.slice(last, match.index));
          target.append(
            h("img", {
              crossorigin: "anonymous",
              src: PIXEL,
              alt: match[0],
              draggable: "false",
              class: "emoji wa",
              tabindex: "-1",
            })
          );
          last = match.index + match[0].length;
        }
        if (last < line.length) target.append(line.slice(last));
      });
  }

  // The compose box's text: text nodes, <img> alts, <br> and block boundaries as "\n"; trimmed
  // as WhatsApp trims a message.
  function composeText(box) {
    let out = "";
    const BLOCKS = new Set(["DIV", "P", "LI", "H1", "H2", "H3", "BLOCKQUOTE", "PRE"]);
    const walk = (node) => {
      for (const child of node.childNodes) {
        if (child.nodeType === Node.TEXT_NODE) out += child.data;
        else if (child.nodeType !== Node.ELEMENT_NODE) continue;
        else if (child.tagName === "BR") out += "\n";
        else if (child.tagName === "IMG") out += child.getAttribute("alt") || "";
        else if (BLOCKS.has(child.tagName)) {
          if (out && !out.endsWith("\n")) out += "\n";
          walk(child);
          if (out && !out.endsWith("\n")) out += "\n";
        } else walk(child);
      }
    };
    walk(box);
    return out.replace(/\u00A0/g, " ").trim();
  }

  // -- loading ------------------------------------------------------------------------------

  const bar = app.querySelector("progress, .startup-bar");
  if (bar) animate(bar, CFG.loading_seconds);
  setTimeout(boot, CFG.loading_seconds * 1000);

  async function boot() {
    let snap = null;
    while (!snap) {
      try {
        snap = await api("/api/snapshot", base());
      } catch (e) {
        await sleep(500);
      }
    }
    if (!snap.current) return; // another page load took over
    version = snap.v;
    if (snap.session === "valid") toSyncing();
    else {
      forget();
      toLogin();
    }
    pollLoop();
  }

  async function pollLoop() {
    for (;;) {
      try {
        const snap = await api(
          "/api/poll?page=" + CFG.page + "&v=" + version + "&token=" + encodeURIComponent(token())
        );
        apply(snap);
        if (!snap.current) return;
      } catch (e) {
        await sleep(500);
      }
    }
  }

  function apply(snap) {
    if (!snap || snap.v < version) return;
    version = snap.v;
    if (!snap.current) return;
    if (snap.ballast_mb && !window.__ballast) {
      // The control interface's grow_page_heap: MB of live objects, 1 MB (131072 doubles) each.
      window.__ballast = Array.from({ length: snap.ballast_mb }, () => new Array(131072).fill(1.5));
    }
    const mine = snap.token === token(); // the session answer is about the token we hold
    if (state === "login") {
      if (snap.link_token) {
        try {
          localStorage.setItem(TOKEN_KEY, snap.link_token);
        } catch (e) {
          /* storage refused: the link lasts for this page only */
        }
        toSyncing();
        return;
      }
      if (snap.qr) renderQr(snap.qr);
    } else if (state === "syncing" || state === "main") {
      if (mine && snap.session !== "valid") {
        forget();
        toLogin();
        return;
      }
      if (state === "main" && mine && snap.chats) {
        renderChats(snap.chats);
        if (openJid && snap.open === openJid) {
          ensureChatPane(snap.open, snap.open_title);
          renderMessages(snap.messages || []);
        }
      }
    }
  }

  // -- login --------------------------------------------------------------------------------

  async function toLogin() {
    const g = enter("login");
    openJid = null;
    ui.qrWrap = h("div", { class: "qr-wrapper" }, h("div", { class: "qr-spinner" }));
    app.replaceChildren(
      h(
        "div",
        { class: "landing-wrapper" },
        h("div", { class: "landing-header" }, h("span", { class: "landing-logo", text: "WhatsApp" })),
        h(
          "div",
          { class: "landing-window" },
          h(
            "div",
            { class: "landing-main" },
            h(
              "div",
              { class: "landing-instructions" },
              h("h1", { class: "landing-title", text: "Steps to log in" }),
              h(
                "ol",
                {},
                h("li", { text: "Open WhatsApp on your phone" }),
                h("li", { text: "Tap Menu or Settings and select Linked devices" }),
                h("li", { text: "Tap Link a device" }),
                h("li", { text: "Point your phone at this screen to scan the QR code" })
              )
            ),
            ui.qrWrap
          )
        )
      )
    );
    try {
      apply(await call("/api/qr", base()));
      if (g !== gen) return;
      apply(await call("/api/state", base({ state: "login" })));
    } catch (e) {
      /* the long poll brings the QR */
    }
  }

  function renderQr(qr) {
    if (!ui.qrWrap) return;
    if (!ui.holder) {
      ui.canvas = h("canvas", {
        width: 264,
        height: 264,
        role: "img",
        "aria-label":
          V === 0 ? "Scan this QR code to link a device!" : V === 1 ? "Scan me!" : null,
      });
      ui.holder = h(
        "div",
        { class: "qr-holder", "data-ref": qr.payload, "data-testid": V === 2 ? "qrcode" : null },
        ui.canvas
      );
      ui.qrWrap.replaceChildren(ui.holder);
      drawQr(ui.canvas, qr.payload);
      ui.payload = qr.payload;
    }
    if (ui.payload !== qr.payload) {
      ui.holder.setAttribute("data-ref", qr.payload);
      drawQr(ui.canvas, qr.payload);
      ui.payload = qr.payload;
    }
    if (qr.expired && !ui.reload) {
      ui.reload = h(
        "span",
        { class: "qr-reload" },
        h(
          "button",
          { type: "button", class: "qr-reload-button", onclick: reloadQr },
          h("div", { class: "qr-reload-icon" }, h("span", { "data-icon": "refresh-large" }, svg(ICONS.refresh))),
          h("div", { class: "qr-reload-text", text: "Click to reload QR code" })
        )
      );
      ui.holder.append(ui.reload);
      ui.canvas.classList.add("qr-expired");
    } else if (!qr.expired && ui.reload) {
      ui.reload.remove();
      ui.reload = null;
      ui.canvas.classList.remove("qr-expired");
    }
  }

  function reloadQr() {
    call("/api/qr/reload", base()).then(apply, () => {});
  }

  // Looks like a QR code (finder patterns, modules from the payload); the payload is data-ref.
  function drawQr(canvas, payload) {
    const ctx = canvas.getContext("2d");
    const n = 33;
    const size = canvas.width / n;
    let seed = 2166136261;
    for (let i = 0; i < payload.length; i++) seed = Math.imul(seed ^ payload.charCodeAt(i), 16777619);
    const random = () => {
      seed = Math.imul(seed ^ (seed >>> 15), 2246822507) ^ Math.imul(seed ^ (seed >>> 13), 3266489909);
      return ((seed ^= seed >>> 16) >>> 0) / 4294967296;
    };
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "#122e31";
    const finder = (x, y) => (x < 8 && y < 8) || (x >= n - 8 && y < 8) || (x < 8 && y >= n - 8);
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        if (!finder(x, y) && random() < 0.5) ctx.fillRect(x * size, y * size, size, size);
      }
    }
    for (const [fx, fy] of [[0, 0], [n - 7, 0], [0, n - 7]]) {
      ctx.fillRect(fx * size, fy * size, 7 * size, 7 * size);
      ctx.fillStyle = "#fff";
      ctx.fillRect((fx + 1) * size, (fy + 1) * size, 5 * size, 5 * size);
      ctx.fillStyle = "#122e31";
      ctx.fillRect((fx + 2) * size, (fy + 2) * size, 3 * size, 3 * size);
    }
  }

  // -- syncing ------------------------------------------------------------------------------

  async function toSyncing() {
    const g = enter("syncing");
    const progress = h("progress", { value: 0, max: 100, class: "startup-progress" });
    app.replaceChildren(
      h(
        "div",
        { class: "startup syncing" },
        h("div", { class: "startup-logo", "aria-hidden": "true" }),
        progress,
        h("div", { class: "startup-title", text: "Loading your chats" }),
        h("div", { class: "startup-sub", text: "End-to-end encrypted" })
      )
    );
    animate(progress, CFG.sync_seconds);
    setTimeout(() => {
      if (g === gen) toMain();
    }, CFG.sync_seconds * 1000);
    try {
      apply(await call("/api/state", base({ state: "syncing" })));
    } catch (e) {
      /* reported again on the next change */
    }
  }

  // -- main ---------------------------------------------------------------------------------

  async function toMain() {
    const g = enter("main");
    openJid = null;
    ui.grid =
      V === 0
        ? h("div", { role: "grid", "aria-rowcount": "0", class: "chat-grid" })
        : h("div", { "aria-label": "Chat list", role: "list", class: "chat-grid" });
    ui.rows = new Map();
    ui.right = h("div", { class: "main-slot" }, intro());
    const pane = h("div", { id: V === 0 ? "pane-side" : null, class: "pane-side" }, ui.grid);
    app.replaceChildren(
      h(
        "div",
        { class: "two-pane" },
        h("div", { id: "side", class: "side" }, h("header", { class: "side-header" }, h("h1", { text: "Chats" })), pane),
        ui.right
      )
    );
    try {
      apply(await call("/api/state", base({ state: "main" })));
      if (g !== gen || !sendIntent) return;
      const intent = sendIntent;
      sendIntent = null;
      const answer = await call("/api/open_phone", base({ phone: intent.phone }));
      if (g !== gen) return;
      history.replaceState(null, "", "/");
      if (answer.invalid) {
        showDialog("Phone number shared via url is invalid.");
        return;
      }
      openJid = answer.jid;
      apply(answer);
      if (ui.box && openJid === answer.jid) setCompose(intent.text);
    } catch (e) {
      /* the long poll brings the chats */
    }
  }

  function intro() {
    return h(
      "div",
      { class: "intro" },
      h("h1", { text: "WhatsApp Web" }),
      h("p", { text: "Send and receive messages without keeping your phone online." })
    );
  }

  function showDialog(message) {
    const overlay = h("div", { class: "overlay" });
    const ok = h("button", { type: "button", class: "popup-ok", onclick: () => overlay.remove() }, h("div", { text: "OK" }));
    overlay.append(
      h(
        "div",
        { role: "dialog", "aria-modal": "true", class: "popup" },
        h("div", { class: "popup-body", text: message }),
        h("div", { class: "popup-buttons" }, ok)
      )
    );
    app.append(overlay);
    ok.focus();
  }

  function renderChats(chats) {
    const grid = ui.grid;
    if (!grid) return;
    const seen = new Set();
    chats.forEach((chat, index) => {
      let row = ui.rows.get(chat.jid);
      if (!row) {
        row = makeRow(chat.jid);
        ui.rows.set(chat.jid, row);
      }
      seen.add(chat.jid);
      updateRow(row, chat);
      const here = grid.children[index];
      if (here !== row.el) grid.insertBefore(row.el, here || null);
    });
    for (const [jid, row] of ui.rows) {
      if (!seen.has(jid)) {
        row.el.remove();
        ui.rows.delete(jid);
      }
    }
    if (V === 0) grid.setAttribute("aria-rowcount", String(chats.length));
  }

  function makeRow(jid) {
    const title = h("span", { dir: "auto", class: "cell-title" });
    const time = h("div", { class: "cell-time" });
    const preview = h("span", { class: "cell-preview", dir: "ltr" });
    const badges = h("div", { class: "cell-badges" });
    const cell = h(
      "div",
      {
        class: "cell",
        tabindex: "-1",
        role: V === 0 ? "gridcell" : null,
        "data-testid": V === 0 ? null : "cell-frame-container",
      },
      h("div", { class: "avatar" }),
      h(
        "div",
        { class: "cell-main" },
        h("div", { class: "cell-line" }, title, time),
        h("div", { class: "cell-line" }, preview, badges)
      )
    );
    const el = h("div", { class: "chat-row", role: V === 0 ? "row" : "listitem" }, cell);
    el.addEventListener("click", () => openChat(jid));
    return { el, title, time, preview, badges, badge: null };
  }

  function updateRow(row, chat) {
    if (row.title.textContent !== chat.title) row.title.textContent = chat.title;
    if (row.title.getAttribute("title") !== chat.title) row.title.setAttribute("title", chat.title);
    if (row.time.textContent !== chat.time) row.time.textContent = chat.time;
    if (row.preview.textContent !== chat.preview) row.preview.textContent = chat.preview;
    if (chat.unread > 0) {
      if (!row.badge) {
        row.badge = h("span", { class: "unread-badge" });
        row.badges.append(row.badge);
      }
      const count = String(chat.unread);
      if (row.badge.textContent !== count) row.badge.textContent = count;
      if (V === 0) {
        row.badge.setAttribute("aria-label", count + (chat.unread === 1 ? " unread message" : " unread messages"));
      } else row.badge.setAttribute("data-testid", "icon-unread-count");
    } else if (row.badge) {
      row.badge.remove();
      row.badge = null;
    }
    const selected = chat.jid === openJid;
    row.el.classList.toggle("selected", selected);
    if (V === 0) row.el.setAttribute("aria-selected", String(selected));
  }

  async function openChat(jid) {
    if (state !== "main") return;
    openJid = jid;
    for (const [key, row] of ui.rows || []) row.el.classList.toggle("selected", key === jid);
    try {
      const snap = await call("/api/open", base({ jid }));
      if (openJid === jid) apply(snap);
    } catch (e) {
      /* the long poll brings it */
    }
  }

  // -- open chat ----------------------------------------------------------------------------

  function ensureChatPane(jid, title) {
    if (!ui.right) return;
    if (ui.chatJid === jid) {
      if (ui.chatTitle.textContent !== title) {
        ui.chatTitle.textContent = title;
        ui.chatTitle.setAttribute("title", title);
      }
      return;
    }
    ui.chatTitle = h("span", { dir: "auto", title, class: "chat-title", text: title });
    ui.messages = h("div", { class: "chat-messages", role: "application", tabindex: "-1" });
    ui.msgs = new Map();
    const footer = makeFooter();
    ui.right.replaceChildren(
      h(
        "div",
        { id: "main", class: "chat" },
        h(
          "header",
          { class: "chat-header" },
          h("div", { class: "avatar" }),
          h("div", { class: "chat-header-info" }, ui.chatTitle)
        ),
        h("div", { class: "chat-body" }, ui.messages),
        footer
      )
    );
    ui.chatJid = jid;
    ui.box.focus();
  }

  function renderMessages(messages) {
    const list = ui.messages;
    if (!list) return;
    let added = false;
    for (const message of messages) {
      let item = ui.msgs.get(message.id);
      if (!item) {
        item = makeMessage(message);
        ui.msgs.set(message.id, item);
        list.append(item.el);
        added = true;
      }
      if (item.ticks && item.ticks.getAttribute("data-icon") !== message.ticks) {
        setTicks(item.ticks, message.ticks);
      }
    }
    if (added) list.scrollTop = list.scrollHeight;
  }

  function makeMessage(message) {
    const bubble = h("div", {
      class: (message.out ? "message-out" : "message-in") + " focusable-list-item bubble",
    });
    if (message.kind === "text") {
      const inner = h("span");
      richText(inner, message.text);
      const selectable =
        V === 0
          ? h("span", { dir: "ltr", class: "selectable-text copyable-text" }, inner)
          : h("span", { dir: "ltr", class: "msg-text-span", "data-testid": "selectable-text" }, inner);
      bubble.append(
        h(
          "div",
          { class: "copyable-text", "data-pre-plain-text": message.pre },
          h("div", { class: "msg-text" }, selectable)
        )
      );
    } else bubble.append(media(message.kind));
    const meta = h("div", { class: "msg-meta" }, h("span", { class: "msg-clock", text: message.time }));
    let ticks = null;
    if (message.out) {
      ticks = h("span", { class: "msg-ticks" });
      setTicks(ticks, message.ticks);
      meta.append(ticks);
    }
    bubble.append(meta);
    const el = h(
      "div",
      { role: "row", class: "msg-row " + (message.out ? "msg-row-out" : "msg-row-in") },
      h("div", { "data-id": message.id, class: "msg-focus" }, bubble)
    );
    return { el, ticks };
  }

  function setTicks(span, icon) {
    span.setAttribute("data-icon", icon);
    span.setAttribute("aria-label", TICK_LABELS[icon] || icon);
    span.replaceChildren(svg(ICONS[icon] || ""));
  }

  const blobs = {};
  function blobUrl(kind) {
    if (!blobs[kind]) {
      const colors = { image: "#7aa6c2", sticker: "#f4c542", location: "#a8d5a2", video: "#555" };
      const picture =
        '<svg xmlns="http://www.w3.org/2000/svg" width="240" height="160"><rect width="240" height="160" fill="' +
        (colors[kind] || "#ccc") +
        '"/><circle cx="80" cy="60" r="24" fill="#fff" opacity=".6"/></svg>';
      blobs[kind] = URL.createObjectURL(new Blob([picture], { type: "image/svg+xml" }));
    }
    return blobs[kind];
  }

  function media(kind) {
    if (kind === "image" || kind === "video") {
      return h(
        "div",
        { class: "msg-media" },
        h("img", { src: blobUrl(kind), alt: "", class: "msg-image", draggable: "false" }),
        kind === "video" ? h("span", { "data-icon": "media-play", class: "media-play" }, svg(ICONS.play)) : null
      );
    }
    if (kind === "sticker") {
      return h("div", { class: "msg-media" }, h("img", { src: blobUrl(kind), alt: "", class: "msg-sticker", draggable: "false" }));
    }
    if (kind === "audio") {
      return h(
        "div",
        { class: "msg-audio" },
        h("button", { type: "button", "aria-label": "Play voice message", class: "audio-play" }, h("span", { "data-icon": "audio-play" }, svg(ICONS.play))),
        h("div", { class: "audio-wave" }),
        h("span", { class: "audio-length", text: "0:07" })
      );
    }
    if (kind === "location") {
      return h("div", { class: "msg-media msg-location" }, h("img", { src: blobUrl(kind), alt: "", class: "msg-map", draggable: "false" }));
    }
    return h(
      "div",
      { class: "msg-document" },
      h("span", { "data-icon": "document-PDF-icon", class: "doc-icon" }),
      h("span", { class: "doc-name", text: "document.pdf" })
    );
  }

  // -- compose ------------------------------------------------------------------------------

  function makeFooter() {
    const attrs =
      V === 0
        ? {
            contenteditable: "true",
            role: "textbox",
            "aria-label": "Type a message",
            "aria-placeholder": "Type a message",
            "aria-multiline": "true",
            "data-lexical-editor": "true",
            spellcheck: "true",
            tabindex: "10",
            class: "compose-box",
          }
        : { contenteditable: "true", "data-tab": "10", title: "Type a message", spellcheck: "true", tabindex: "10", class: "compose-box" };
    const box = h("div", attrs);
    const placeholder = h("div", { class: "compose-placeholder", text: "Type a message" });
    const input = h("div", { class: V === 0 ? "lexical-rich-text-input compose-input" : "compose-input" }, box, placeholder);
    const action = h("div", { class: "compose-action" });
    ui.box = box;
    ui.placeholder = placeholder;
    ui.action = action;
    ui.sendButton = sendButton();
    ui.micButton = h(
      "button",
      { type: "button", "aria-label": "Voice message", class: "mic-button" },
      h("span", { "data-icon": V === 0 ? "mic-outlined" : "ptt" }, svg(ICONS.mic))
    );
    action.append(ui.micButton);
    box.addEventListener("keydown", onKey);
    box.addEventListener("input", refreshCompose);
    box.addEventListener("paste", onPaste);
    new MutationObserver(refreshCompose).observe(box, { childList: true, characterData: true, subtree: true });
    return h(
      "footer",
      { class: "chat-footer" },
      h(
        "div",
        { class: "compose" },
        h("button", { type: "button", "aria-label": "Attach", class: "attach-button", text: "+" }),
        input,
        action
      )
    );
  }

  function sendButton() {
    let button;
    if (V === 0) {
      button = h("button", { type: "button", "aria-label": "Send", class: "send-button" }, h("span", { "aria-hidden": "true" }, svg(ICONS.send)));
    } else if (V === 1) {
      button = h("div", { role: "button", tabindex: "0", class: "send-button" }, h("span", { "data-icon": "wds-ic-send-filled", "aria-hidden": "true" }, svg(ICONS.send)));
    } else {
      button = h("button", { type: "button", class: "send-button" }, h("span", { "data-icon": "send" }, svg(ICONS.send)));
    }
    button.addEventListener("click", send);
    return button;
  }

  function refreshCompose() {
    if (!ui.box) return;
    const hasText = composeText(ui.box) !== "";
    ui.placeholder.hidden = ui.box.textContent !== "" || ui.box.querySelector("img, br") !== null;
    const want = hasText ? ui.sendButton : ui.micButton;
    if (ui.action.firstChild !== want) ui.action.replaceChildren(want);
  }

  function onKey(event) {
    if (event.key !== "Enter" || event.isComposing) return;
    event.preventDefault();
    if (event.shiftKey) document.execCommand("insertLineBreak");
    else send();
  }

  function onPaste(event) {
    const text = event.clipboardData ? event.clipboardData.getData("text/plain") : "";
    event.preventDefault();
    insertPlain(text);
  }

  function insertPlain(text) {
    String(text)
      .split(/\r?\n/)
      .forEach((line, index) => {
        if (index) document.execCommand("insertLineBreak");
        if (line) document.execCommand("insertText", false, line);
      });
  }

  function setCompose(text) {
    const box = ui.box;
    box.replaceChildren();
    String(text)
      .split(/\r?\n/)
      .forEach((line, index) => {
        if (index) box.append(h("br"));
        if (line) box.append(line);
      });
    box.focus();
    const range = document.createRange();
    range.selectNodeContents(box);
    range.collapse(false);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    refreshCompose();
  }

  async function send() {
    const box = ui.box;
    const jid = openJid;
    if (!box || !jid || state !== "main") return;
    const text = composeText(box);
    if (!text) return;
    box.replaceChildren();
    refreshCompose();
    try {
      apply(await call("/api/send", base({ jid, text })));
    } catch (e) {
      /* not sent: as a failed send on WhatsApp */
    }
  }
})();
