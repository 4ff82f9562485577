/* Live shop dashboard: login, one WebSocket at /ws/ (see shared/protocol.md), service cards,
   orders feed, conversations and the "Testar o bot" simulator. Everything from the server is
   rendered with textContent. */
'use strict';

(() => {
  const ROOMS = ['Services', 'Orders', 'Conversations', 'Simulator'];
  const TOKEN_KEYS = { access: 'mb.access', refresh: 'mb.refresh' };
  const BACKOFF_CAP_S = 30;
  const TOAST_MS = 6000;
  const MAX_TOASTS = 4;
  const MAX_ORDERS = 50;
  const MAX_CHAT_MESSAGES = 200;
  const SIM_KEYS = { chat: 'mb.sim.chat', name: 'mb.sim.name' };
  const SIM_DEFAULT_NAME = 'Cliente teste';

  const SERVICE_STATUS_TEXT = { 100: 'Inicializando', 102: 'Autenticando', 200: 'Conectado', 403: 'Desconectado' };
  const QR_HIDING_STATUSES = new Set([200, 403]);
  const ORDER_STATUS_TEXT = {
    pending: 'Pendente', confirmed: 'Confirmado', shipped: 'Enviado', delivered: 'Entregue', cancelled: 'Cancelado',
  };
  const CONNECTION_TEXT = { connecting: 'Conectando…', connected: 'Conectado', reconnecting: 'Reconectando…' };

  const brl = new Intl.NumberFormat('pt-BR', { style: 'currency', currency: 'BRL' });
  const clock = new Intl.DateTimeFormat('pt-BR', { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  const shortClock = new Intl.DateTimeFormat('pt-BR', { hour: '2-digit', minute: '2-digit', hour12: false });
  const fullDate = new Intl.DateTimeFormat('pt-BR', { dateStyle: 'short', timeStyle: 'medium' });

  const state = {
    loggedIn: false,
    socket: null,
    wasConnected: false, // a socket reached "Conectado" before: later drops are reconnections
    attempt: 0, // reconnect attempts since the last full connection (drives the back-off)
    reconnectAt: 0,
    reconnectTimer: null,
    countdownTimer: null,
    pendingJoins: [], // {room, token, retried}, in the order sent: answers come back in that order
    joinedRooms: new Set(),
    refreshing: null, // the one token refresh in flight (rotation blacklists a reused refresh token)
    services: {}, // name -> {status, since, detail, version}
    chats: new Map(), // chatKey -> {service, chat, customer, messages, handoff, unread, el}
    selectedChat: null,
    simChat: null, // the simulator's chat id (also kept in localStorage)
  };

  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function parseDate(value) {
    if (!value) return null;
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  // --- Tokens and HTTP -------------------------------------------------------------------------

  const tokens = {
    access: () => sessionStorage.getItem(TOKEN_KEYS.access),
    refresh: () => sessionStorage.getItem(TOKEN_KEYS.refresh),
    store(access, refresh) {
      sessionStorage.setItem(TOKEN_KEYS.access, access);
      if (refresh) sessionStorage.setItem(TOKEN_KEYS.refresh, refresh);
    },
    clear() {
      sessionStorage.removeItem(TOKEN_KEYS.access);
      sessionStorage.removeItem(TOKEN_KEYS.refresh);
    },
  };

  async function postJson(url, body) {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
      credentials: 'same-origin',
    });
    let payload = null;
    try { payload = await response.json(); } catch { /* empty or non-JSON body */ }
    return { ok: response.ok, status: response.status, payload };
  }

  /** Resolves to 'ok', 'dead' (the refresh token is refused: log in again) or 'offline'. */
  function refreshTokens() {
    if (!state.refreshing) {
      state.refreshing = doRefresh().finally(() => { state.refreshing = null; });
    }
    return state.refreshing;
  }

  async function doRefresh() {
    const refresh = tokens.refresh();
    if (!refresh) return 'dead';
    let result;
    try {
      result = await postJson('/api/auth/token/refresh/', { refresh });
    } catch {
      return 'offline';
    }
    if (result.ok && result.payload && result.payload.access) {
      tokens.store(result.payload.access, result.payload.refresh);
      return 'ok';
    }
    return result.status === 400 || result.status === 401 ? 'dead' : 'offline';
  }

  async function fetchServiceStates() {
    try {
      const response = await fetch('/api/services/', {
        headers: { Accept: 'application/json', Authorization: `Bearer ${tokens.access()}` },
        credentials: 'same-origin',
      });
      return response.ok ? await response.json() : null;
    } catch {
      return null;
    }
  }

  // --- Login / logout --------------------------------------------------------------------------

  async function onLoginSubmit(event) {
    event.preventDefault();
    const username = $('#login-username').value.trim();
    const password = $('#login-password').value;
    const error = $('#login-error');
    if (!username || !password) {
      error.textContent = 'Informe usuário e senha.';
      return;
    }
    const button = $('#login-submit');
    button.disabled = true;
    error.textContent = '';
    try {
      const result = await postJson('/api/auth/token/', { username, password });
      if (result.ok && result.payload && result.payload.access) {
        tokens.store(result.payload.access, result.payload.refresh);
        $('#login-password').value = '';
        showDashboard();
      } else if (result.status === 401 || result.status === 400) {
        error.textContent = 'Usuário ou senha inválidos.';
      } else {
        error.textContent = 'Não foi possível entrar agora. Tente de novo em instantes.';
      }
    } catch {
      error.textContent = 'Sem conexão com o servidor. Tente de novo em instantes.';
    } finally {
      button.disabled = false;
    }
  }

  function showDashboard() {
    state.loggedIn = true;
    $('#login-view').hidden = true;
    $('#dashboard-view').hidden = false;
    $('#login-error').textContent = '';
    connect();
  }

  function showLogin(message = '') {
    state.loggedIn = false;
    disconnect();
    resetDashboard();
    $('#dashboard-view').hidden = true;
    $('#login-view').hidden = false;
    $('#login-error').textContent = message;
    $('#login-username').focus();
  }

  function logout() {
    tokens.clear();
    showLogin();
  }

  function sessionExpired(message) {
    if (!state.loggedIn) return; // several refused rooms may report the same thing
    tokens.clear();
    showLogin(message || 'Sua sessão expirou. Entre novamente.');
  }

  // --- Socket ----------------------------------------------------------------------------------

  function socketUrl() {
    const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
    return `${scheme}://${window.location.host}/ws/`;
  }

  function connect() {
    clearReconnectTimers();
    setConnectionState(state.wasConnected ? 'reconnecting' : 'connecting');
    if (!$('#connection-banner').hidden) updateBanner(); // drop the countdown while trying
    state.pendingJoins = [];
    state.joinedRooms = new Set();
    const socket = new WebSocket(socketUrl());
    state.socket = socket;
    // A replaced or deliberately closed socket must not touch the state any more.
    socket.addEventListener('message', (event) => { if (state.socket === socket) onFrame(event.data); });
    socket.addEventListener('close', () => { if (state.socket === socket) onSocketClosed(); });
  }

  function disconnect() {
    clearReconnectTimers();
    const socket = state.socket;
    state.socket = null;
    state.pendingJoins = [];
    state.joinedRooms = new Set();
    state.wasConnected = false;
    state.attempt = 0;
    if (socket) socket.close(1000);
    setConnectionState('connecting');
    $('#connection-banner').hidden = true;
  }

  function onSocketClosed() {
    state.socket = null;
    state.pendingJoins = [];
    state.joinedRooms = new Set();
    if (state.loggedIn) scheduleReconnect();
  }

  function scheduleReconnect() {
    clearReconnectTimers();
    const base = Math.min(BACKOFF_CAP_S, 2 ** state.attempt);
    // ±20 % jitter so that many dashboards do not all come back in the same second.
    const delaySeconds = Math.min(BACKOFF_CAP_S, base * (0.8 + Math.random() * 0.4));
    state.attempt += 1;
    state.reconnectAt = Date.now() + delaySeconds * 1000;
    setConnectionState('reconnecting');
    state.reconnectTimer = setTimeout(connect, delaySeconds * 1000);
    state.countdownTimer = setInterval(updateBanner, 250);
    updateBanner();
  }

  function clearReconnectTimers() {
    clearTimeout(state.reconnectTimer);
    clearInterval(state.countdownTimer);
    state.reconnectTimer = null;
    state.countdownTimer = null;
  }

  function updateBanner() {
    const banner = $('#connection-banner');
    const seconds = Math.ceil((state.reconnectAt - Date.now()) / 1000);
    banner.textContent = state.reconnectTimer && seconds > 0
      ? `Conexão perdida. Reconectando em ${seconds} s…`
      : 'Conexão perdida. Reconectando…';
    banner.hidden = false;
  }

  function setConnectionState(key) {
    const node = $('#connection-state');
    node.textContent = CONNECTION_TEXT[key];
    node.dataset.state = key;
  }

  function onConnected() {
    state.wasConnected = true;
    state.attempt = 0;
    clearReconnectTimers();
    setConnectionState('connected');
    $('#connection-banner').hidden = true;
  }

  /** Sends one frame; false (and nothing sent) when the socket is not open. */
  function send(event, data = {}) {
    const socket = state.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify({ event, data }));
    return true;
  }

  /** send() for a user's action: says so when the socket is down. */
  function sendFromUser(event, data) {
    const sent = send(event, data);
    if (!sent) toast('Sem conexão com o servidor. Aguarde a reconexão e tente de novo.');
    return sent;
  }

  function onFrame(raw) {
    let frame;
    try { frame = JSON.parse(raw); } catch { return; }
    if (!frame || typeof frame.event !== 'string') return;
    const handler = handlers[frame.event];
    if (!handler) return;
    const data = frame.data && typeof frame.data === 'object' ? frame.data : {};
    try {
      handler(data);
    } catch (error) {
      console.error(`dashboard: could not handle ${frame.event}`, error);
    }
  }

  // --- Rooms -----------------------------------------------------------------------------------

  function joinRoom(room, retried = false) {
    const token = tokens.access();
    if (!token) { sessionExpired(); return; }
    if (send('join_room', { room, auth: token })) state.pendingJoins.push({ room, token, retried });
  }

  function onJoinAnswer(data) {
    // A 403/400 answer names no room: match it with the oldest join still waiting for its answer.
    const index = data.room ? state.pendingJoins.findIndex((join) => join.room === data.room) : 0;
    const join = index >= 0 ? state.pendingJoins.splice(index, 1)[0] : undefined;
    const room = data.room || (join && join.room);
    if (data.status === 200 && room) {
      onRoomJoined(room);
    } else if (data.status === 403 && join) {
      onRoomRefused(join, data.message);
    } else {
      toast(data.message || `Não foi possível entrar na sala ${room || ''}.`);
    }
  }

  function onRoomJoined(room) {
    state.joinedRooms.add(room);
    if (room === 'Services') refreshServices();
    if (ROOMS.every((name) => state.joinedRooms.has(name))) onConnected();
  }

  async function onRoomRefused(join, message) {
    if (join.retried) { sessionExpired(message); return; }
    // Another refused room may already have refreshed the token this join was sent with.
    if (join.token === tokens.access()) {
      const result = await refreshTokens();
      if (result === 'dead') { sessionExpired(); return; }
      if (result === 'offline') {
        const socket = state.socket;
        if (socket && socket.readyState === WebSocket.OPEN) {
          toast('Não foi possível renovar o acesso. Tentando de novo…');
          socket.close(); // the reconnection re-joins, with back-off
        }
        return;
      }
    }
    if (state.loggedIn) joinRoom(join.room, true);
  }

  // --- Services --------------------------------------------------------------------------------

  function serviceCard(name) {
    return $(`.service-card[data-service="${CSS.escape(name)}"]`);
  }

  function serviceState(name) {
    if (!state.services[name]) state.services[name] = { status: null, since: null, detail: '', version: 0 };
    return state.services[name];
  }

  /** Asks the socket for the codes and the REST API for since when (the socket does not say). */
  async function refreshServices() {
    send('check_services', {});
    const versions = Object.fromEntries(Object.entries(state.services).map(([name, svc]) => [name, svc.version]));
    const states = await fetchServiceStates();
    if (!states || typeof states !== 'object') return;
    for (const [name, info] of Object.entries(states)) {
      // A live change that arrived during the request is newer than this snapshot.
      if (!info || serviceState(name).version !== (versions[name] || 0)) continue;
      setService(name, info.status, { since: info.since, detail: info.detail || '' });
    }
  }

  /** Sets a service's status; `since`/`detail` undefined mean "not told". */
  function setService(name, status, { since, detail } = {}) {
    if (typeof status !== 'number') return;
    const svc = serviceState(name);
    const changed = svc.status !== status;
    svc.status = status;
    if (since !== undefined) svc.since = parseDate(since);
    else if (changed) svc.since = null; // a change at an unknown time: better no time than a wrong one
    if (detail !== undefined) svc.detail = detail || '';
    else if (changed) svc.detail = '';
    renderService(name);
    if (changed && QR_HIDING_STATUSES.has(status)) hideQr(name);
  }

  function applyCodes(codes, skip) {
    if (!codes || typeof codes !== 'object') return;
    for (const [name, code] of Object.entries(codes)) {
      if (name !== skip && typeof code === 'number') setService(name, code);
    }
  }

  function renderService(name) {
    const card = serviceCard(name);
    if (!card) return;
    const svc = serviceState(name);
    card.dataset.status = svc.status === null ? '' : String(svc.status);
    $('.service-status', card).textContent = SERVICE_STATUS_TEXT[svc.status] || `Código ${svc.status}`;
    const since = $('.service-since', card);
    since.textContent = svc.since ? `desde ${clock.format(svc.since)}` : '';
    since.title = svc.since ? fullDate.format(svc.since) : '';
    since.hidden = !svc.since;
    const detail = $('.service-detail', card);
    detail.textContent = svc.detail;
    detail.hidden = !svc.detail;
  }

  function showQr({ service, qr, svg }) {
    const card = serviceCard(service);
    if (!card || typeof svg !== 'string' || !svg) return;
    // The SVG goes in as an image, never as markup: whatever it holds cannot run in the page.
    const image = el('img', 'qr-image');
    image.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
    image.alt = `QR code para conectar o ${service}`;
    image.dataset.qr = qr == null ? '' : String(qr);
    const hint = el('p', 'qr-hint', `Abra o ${service} no celular e escaneie o código.`);
    const area = $('.service-qr', card);
    area.replaceChildren(image, hint);
    area.hidden = false;
  }

  function hideQr(service) {
    const card = serviceCard(service);
    if (!card) return;
    const area = $('.service-qr', card);
    area.replaceChildren();
    area.hidden = true;
  }

  function resetServices() {
    state.services = {};
    for (const card of $$('.service-card')) {
      card.dataset.status = '';
      $('.service-status', card).textContent = '—';
      for (const selector of ['.service-since', '.service-detail']) {
        $(selector, card).textContent = '';
        $(selector, card).hidden = true;
      }
      hideQr(card.dataset.service);
    }
  }

  function onServiceButton(event) {
    const button = event.target.closest('.generate-session, .logout-session');
    if (!button) return;
    const service = button.closest('.service-card').dataset.service;
    const action = button.classList.contains('generate-session') ? 'generate_session' : 'logout_session';
    sendFromUser(action, { service });
  }

  // --- Messages (toasts) -----------------------------------------------------------------------

  function toast(text, kind = 'error') {
    const container = $('#messages');
    const item = el('div', `message ${kind}`, text);
    item.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    item.title = 'Clique para fechar';
    item.addEventListener('click', () => item.remove());
    container.append(item);
    while (container.children.length > MAX_TOASTS) container.firstElementChild.remove();
    setTimeout(() => item.remove(), TOAST_MS);
  }

  // --- Orders ----------------------------------------------------------------------------------

  function formatMoney(total) {
    const value = Number.parseFloat(total);
    return Number.isFinite(value) ? brl.format(value) : String(total ?? '');
  }

  function upsertOrder(order) {
    const key = String(order.number ?? order.id ?? '');
    if (!key) return;
    const list = $('#orders .orders-list');
    let item = $(`.order-item[data-number="${CSS.escape(key)}"]`, list);
    if (!item) {
      item = buildOrderItem(key);
      list.prepend(item);
      while (list.children.length > MAX_ORDERS) list.lastElementChild.remove();
    }
    fillOrderItem(item, order);
    flash(item);
    $('#orders .orders-empty').hidden = true;
  }

  function buildOrderItem(key) {
    const item = el('li', 'order-item');
    item.dataset.number = key;
    const top = el('div', 'order-row');
    top.append(el('span', 'order-number'), el('span', 'order-status'));
    const bottom = el('div', 'order-row');
    bottom.append(el('span', 'order-customer'), el('span', 'order-total'));
    item.append(top, bottom);
    return item;
  }

  function fillOrderItem(item, order) {
    if (order.id != null) item.dataset.id = String(order.id);
    item.dataset.status = String(order.status ?? '');
    $('.order-number', item).textContent = `#${item.dataset.number}`;
    $('.order-status', item).textContent = ORDER_STATUS_TEXT[order.status] || String(order.status ?? '');
    $('.order-customer', item).textContent = order.customer || 'Cliente';
    $('.order-total', item).textContent = formatMoney(order.total);
  }

  function flash(node) {
    node.classList.remove('flash');
    void node.offsetWidth; // restart the CSS animation
    node.classList.add('flash');
  }

  function resetOrders() {
    $('#orders .orders-list').replaceChildren();
    $('#orders .orders-empty').hidden = false;
  }

  // --- Conversations ---------------------------------------------------------------------------

  const chatKey = (service, chat) => `${service}\u0000${chat}`;

  function ensureChat({ service, chat, customer }) {
    if (typeof service !== 'string' || chat === undefined || chat === null) return null;
    const key = chatKey(service, String(chat));
    let entry = state.chats.get(key);
    if (!entry) {
      entry = { key, service, chat: String(chat), customer: '', messages: [], handoff: false, unread: 0, el: null };
      entry.el = buildChatItem(entry);
      state.chats.set(key, entry);
      $('#conversations .chats-empty').hidden = true;
    }
    if (customer) entry.customer = String(customer);
    return entry;
  }

  function buildChatItem(entry) {
    const li = el('li');
    const button = el('button', 'chat-item');
    button.type = 'button';
    button.dataset.service = entry.service;
    button.dataset.chat = entry.chat;
    const head = el('span', 'chat-item-head');
    head.append(el('span', 'chat-customer'), el('span', 'chat-unread'));
    const meta = el('span', 'chat-item-meta');
    meta.append(el('span', 'chat-service', entry.service), el('span', 'chat-handoff', 'Aguardando atendente'));
    button.append(head, meta, el('span', 'chat-preview'));
    button.addEventListener('click', () => selectChat(entry.key));
    li.append(button);
    return li;
  }

  function renderChatItem(entry) {
    const button = $('.chat-item', entry.el);
    $('.chat-customer', button).textContent = entry.customer || entry.chat;
    const unread = $('.chat-unread', button);
    unread.textContent = entry.unread > 0 ? String(entry.unread) : '';
    unread.hidden = entry.unread === 0;
    $('.chat-handoff', button).hidden = !entry.handoff;
    const last = entry.messages[entry.messages.length - 1];
    $('.chat-preview', button).textContent = last ? last.text : '';
    button.classList.toggle('handoff', entry.handoff);
    if (entry.handoff) button.dataset.handoff = 'true';
    else delete button.dataset.handoff;
    const selected = entry.key === state.selectedChat;
    button.classList.toggle('selected', selected);
    button.setAttribute('aria-pressed', String(selected));
  }

  /** Puts a chat with news at the top of the list. */
  function bumpChat(entry) {
    const list = $('#conversations .chat-list');
    if (list.firstElementChild !== entry.el) list.prepend(entry.el);
    renderChatItem(entry);
  }

  function onChatMessage(data) {
    const entry = ensureChat(data);
    if (!entry) return;
    const message = { direction: data.direction === 'out' ? 'out' : 'in', text: String(data.text ?? ''), at: data.at };
    entry.messages.push(message);
    if (entry.messages.length > MAX_CHAT_MESSAGES) entry.messages.shift();
    if (entry.key === state.selectedChat) {
      appendChatMessage(message);
      renderChatHeader(entry);
    } else {
      entry.unread += 1;
    }
    bumpChat(entry);
  }

  function onHandoffRequested(data) {
    const entry = ensureChat(data);
    if (!entry) return;
    entry.handoff = true;
    bumpChat(entry);
    if (entry.key === state.selectedChat) renderChatHeader(entry);
  }

  function selectChat(key) {
    const previous = state.chats.get(state.selectedChat);
    const entry = state.chats.get(key);
    if (!entry) return;
    state.selectedChat = key;
    entry.unread = 0;
    if (previous) renderChatItem(previous);
    renderChatItem(entry);
    renderChatView(entry);
    if (window.matchMedia('(max-width: 800px)').matches) {
      $('#chat-view').scrollIntoView({ block: 'start' });
    }
  }

  function renderChatView(entry) {
    $('#chat-placeholder').hidden = Boolean(entry);
    $('#chat-open').hidden = !entry;
    if (!entry) return;
    renderChatHeader(entry);
    $('#chat-messages').replaceChildren();
    entry.messages.forEach(appendChatMessage);
  }

  function renderChatHeader(entry) {
    $('#chat-title').textContent = entry.customer || entry.chat;
    $('#chat-subtitle').textContent = `${entry.service} · ${entry.chat}`;
    $('#chat-handoff-label').hidden = !entry.handoff;
    $('#chat-open').classList.toggle('handoff', entry.handoff);
  }

  function appendChatMessage(message) {
    const list = $('#chat-messages');
    const item = el('li', `chat-message ${message.direction}`);
    item.dataset.direction = message.direction;
    item.append(el('div', 'chat-bubble-text', message.text));
    const at = parseDate(message.at);
    if (at) {
      const time = el('time', 'chat-time', shortClock.format(at));
      time.dateTime = at.toISOString();
      time.title = fullDate.format(at);
      item.append(time);
    }
    list.append(item);
    list.scrollTop = list.scrollHeight;
  }

  function selectedChat() {
    return state.chats.get(state.selectedChat) || null;
  }

  function onChatSubmit(event) {
    event.preventDefault();
    const entry = selectedChat();
    const textarea = $('#chat-text');
    const text = textarea.value;
    if (!entry || !text.trim()) return;
    // No optimistic bubble: the server echoes the message as chat_message once it is sent.
    if (sendFromUser('send_message', { service: entry.service, chat: entry.chat, text })) {
      textarea.value = '';
      textarea.focus();
    }
  }

  function onChatKeydown(event) {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      $('#chat-form').requestSubmit();
    }
  }

  function onReleaseChat() {
    const entry = selectedChat();
    if (!entry) return;
    if (sendFromUser('release_chat', { service: entry.service, chat: entry.chat })) {
      entry.handoff = false;
      renderChatItem(entry);
      renderChatHeader(entry);
    }
  }

  function resetConversations() {
    state.chats = new Map();
    state.selectedChat = null;
    $('#conversations .chat-list').replaceChildren();
    $('#conversations .chats-empty').hidden = false;
    $('#chat-text').value = '';
    renderChatView(null);
  }

  // --- Simulator ("Testar o bot") -------------------------------------------------------------

  // localStorage may be unavailable (private modes, blocked storage): the page still works.
  const localStore = {
    get(key) {
      try { return localStorage.getItem(key); } catch { return null; }
    },
    set(key, value) {
      try { localStorage.setItem(key, value); } catch { /* not kept: fine for a test chat */ }
    },
  };

  function newSimChatId() {
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    return `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
  }

  /** The simulator's chat id, made once and kept, so that a test cart survives a reload. */
  function simChatId() {
    if (!state.simChat) {
      state.simChat = localStore.get(SIM_KEYS.chat) || newSimChatId();
      localStore.set(SIM_KEYS.chat, state.simChat);
    }
    return state.simChat;
  }

  function simName() {
    return $('#sim-name').value.trim() || SIM_DEFAULT_NAME;
  }

  // WhatsApp-style *bold*: an asterisk pair around non-blank text, not inside a word.
  const BOLD_PATTERN = /(?<![\p{L}\p{N}*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\p{L}\p{N}*])/gu;

  /** Appends `text` to `node` as text nodes and <strong> nodes: never parsed as markup. */
  function appendFormatted(node, text) {
    let last = 0;
    for (const match of text.matchAll(BOLD_PATTERN)) {
      if (match.index > last) node.append(document.createTextNode(text.slice(last, match.index)));
      node.append(el('strong', null, match[1]));
      last = match.index + match[0].length;
    }
    if (last < text.length) node.append(document.createTextNode(text.slice(last)));
  }

  function appendSimMessage(direction, text, buttons = []) {
    const list = $('#simulator .sim-messages');
    const item = el('li', `sim-message ${direction}`);
    item.dataset.direction = direction;
    const body = el('div', 'sim-bubble-text');
    if (direction === 'in') appendFormatted(body, text);
    else body.textContent = text;
    item.append(body);
    if (buttons.length) {
      const row = el('div', 'sim-buttons');
      for (const label of buttons) {
        const button = el('button', 'sim-button', label);
        button.type = 'button';
        button.dataset.label = label;
        row.append(button);
      }
      item.append(row);
    }
    list.append(item);
    while (list.children.length > MAX_CHAT_MESSAGES) list.firstElementChild.remove();
    $('#simulator .sim-empty').hidden = true;
    list.scrollTop = list.scrollHeight;
  }

  function showSimNote(text) {
    const note = $('#sim-note');
    note.textContent = text;
    note.hidden = !text;
  }

  /** Sends `text` as the test customer and shows it at once; false when it could not go. */
  function sendSimMessage(text) {
    if (!state.joinedRooms.has('Simulator')) {
      showSimNote('Sem conexão com o servidor. Aguarde a reconexão e tente de novo.');
      return false;
    }
    if (!send('test_message', { chat: simChatId(), name: simName(), text })) {
      showSimNote('Sem conexão com o servidor. Aguarde a reconexão e tente de novo.');
      return false;
    }
    showSimNote('');
    appendSimMessage('out', text);
    return true;
  }

  function onSimSubmit(event) {
    event.preventDefault();
    const input = $('#sim-text');
    const text = input.value;
    if (!text.trim()) return;
    if (sendSimMessage(text)) input.value = '';
    input.focus();
  }

  function onSimButton(event) {
    const button = event.target.closest('.sim-button');
    if (!button) return;
    sendSimMessage(button.dataset.label);
  }

  function onTestReply(data) {
    if (typeof data.chat !== 'string' || data.chat !== simChatId()) return;
    const buttons = Array.isArray(data.buttons)
      ? data.buttons.filter((label) => label !== null && label !== undefined).map(String)
      : [];
    appendSimMessage('in', String(data.text ?? ''), buttons);
  }

  function clearSimMessages() {
    $('#simulator .sim-messages').replaceChildren();
    $('#simulator .sim-empty').hidden = false;
    showSimNote('');
  }

  function onSimNew() {
    state.simChat = newSimChatId();
    localStore.set(SIM_KEYS.chat, state.simChat);
    clearSimMessages();
    $('#sim-text').value = '';
    $('#sim-text').focus();
  }

  function onSimNameChange() {
    const name = $('#sim-name').value.trim();
    localStore.set(SIM_KEYS.name, name || SIM_DEFAULT_NAME);
  }

  function onError(data) {
    const message = data.message || 'Ocorreu um erro.';
    if (data.event === 'test_message') showSimNote(String(message));
    else toast(message);
  }

  function initSimulator() {
    $('#sim-name').value = localStore.get(SIM_KEYS.name) || SIM_DEFAULT_NAME;
    $('#sim-name').addEventListener('input', onSimNameChange);
    $('#sim-form').addEventListener('submit', onSimSubmit);
    $('#simulator .sim-messages').addEventListener('click', onSimButton);
    $('#sim-new').addEventListener('click', onSimNew);
  }

  // --- Wiring ----------------------------------------------------------------------------------

  const handlers = {
    welcome: () => ROOMS.forEach((room) => joinRoom(room)),
    accept_in_room: onJoinAnswer,
    services_status: (codes) => applyCodes(codes),
    services_change_status: (data) => {
      if (typeof data.service !== 'string') return;
      serviceState(data.service).version += 1;
      setService(data.service, data.status, {
        since: data.since === undefined ? new Date().toISOString() : data.since,
        detail: data.detail || '',
      });
      applyCodes(data.services, data.service);
    },
    qr_code: showQr,
    error: onError,
    order_created: upsertOrder,
    order_status_changed: upsertOrder,
    chat_message: onChatMessage,
    handoff_requested: onHandoffRequested,
    test_reply: onTestReply,
  };

  function resetDashboard() {
    resetServices();
    resetOrders();
    resetConversations();
    clearSimMessages();
    $('#messages').replaceChildren();
  }

  function init() {
    $('#login-form').addEventListener('submit', onLoginSubmit);
    $('#logout').addEventListener('click', logout);
    $('#services').addEventListener('click', onServiceButton);
    $('#chat-form').addEventListener('submit', onChatSubmit);
    $('#chat-text').addEventListener('keydown', onChatKeydown);
    $('#chat-release').addEventListener('click', onReleaseChat);
    initSimulator();
    if (tokens.access() && tokens.refresh()) showDashboard();
    else showLogin();
  }

  init();
})();
