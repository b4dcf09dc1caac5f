// The hub's live dashboard: one protocol A connection (SPEC §4) that
// reconnects with backoff and resumes after the last broadcast it showed,
// and, with the admin token, the admin API (SPEC §8). No dependencies.
//
// The key and the admin token can come from the URL fragment
// (/#key=…&admin=…), which browsers never send to the server, and from
// nowhere else in the URL; they are then removed from the address bar. The
// key is kept in localStorage, the admin token only in sessionStorage.

const MAX_STREAM = 300; // broadcasts kept in the list
const MAX_ROWS = 40; // rows kept per board
const PING_EVERY = 5000; // ms
const PONG_WAIT = 10000; // ms without a pong before the connection counts as dead
const BACKOFF_MIN = 500; // ms
const BACKOFF_MAX = 15000; // ms
const ADMIN_REFRESH = 5000; // ms

// Errors after which reconnecting cannot help.
const FATAL = new Set(["apiKey required", "Invalid apiKey format", "Invalid API key", "Invalid or missing token"]);

const $ = (sel) => document.querySelector(sel);

const conn = {
  key: "",
  ws: null,
  // lastId is where the boards stand: snapshot_end's id, then each
  // broadcast's; the next subscribe's since. "" takes a snapshot instead.
  lastId: "",
  inSnapshot: false, // between subscribed and snapshot_end: ids are no resume points
  attempt: 0, // reconnects since the last successful subscribe
  retryTimer: 0,
  pingTimer: 0,
  pingSentAt: 0,
  stopped: true,
  fatal: "",
};
let received = 0;
const ages = []; // recent payload-timestamp → receive delays, ms
let filter = "";
const channelCounts = new Map();
let emergencyOn = false;

// ---- connection state -------------------------------------------------

function setState(state, text) {
  const el = $("#state");
  el.dataset.state = state;
  el.textContent = text || state;
}

function notice(text) {
  $("#notice").textContent = text;
}

function wsURL() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/subscribe`;
}

function connect() {
  clearTimeout(conn.retryTimer);
  if (!conn.key || conn.stopped) return;
  setState("connecting", conn.attempt ? `connecting (attempt ${conn.attempt + 1})` : "connecting");
  let ws;
  try {
    ws = new WebSocket(wsURL());
  } catch (err) {
    scheduleReconnect(String(err));
    return;
  }
  conn.ws = ws;
  ws.onopen = () => {
    subscribe(ws);
  };
  ws.onmessage = (ev) => {
    if (ws !== conn.ws) return;
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    onFrame(msg);
  };
  ws.onclose = (ev) => {
    if (ws !== conn.ws) return;
    conn.ws = null;
    stopPing();
    if (conn.stopped) {
      setState("idle", "disconnected");
      return;
    }
    if (conn.fatal) {
      conn.stopped = true;
      setState("rejected", "rejected");
      notice(conn.fatal);
      return;
    }
    const why = ev.reason ? `closed ${ev.code}: ${ev.reason}` : `closed ${ev.code}`;
    scheduleReconnect(why, ev.code === 1012);
  };
  // An error is always followed by close, which decides what to do.
  ws.onerror = () => {};
}

// subscribe resumes after the last event shown, or fills the boards from
// a snapshot of the current rows (SPEC §10) when there is none.
function subscribe(ws) {
  const frame = { type: "subscribe", apiKey: conn.key };
  if (conn.lastId) frame.since = conn.lastId;
  else frame.snapshot = true;
  ws.send(JSON.stringify(frame));
}

function clearBoards() {
  for (const table of ["#board-orders", "#board-scores", "#board-accounts"]) $(`${table} tbody`).replaceChildren();
}

function scheduleReconnect(why, soon) {
  conn.attempt++;
  const base = soon ? BACKOFF_MIN : Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** (conn.attempt - 1));
  const delay = Math.round(base / 2 + Math.random() * (base / 2));
  setState("reconnecting", `reconnecting in ${(delay / 1000).toFixed(1)} s`);
  notice(why + (conn.lastId ? ` · will resume after ${conn.lastId}` : ""));
  conn.retryTimer = setTimeout(connect, delay);
}

function disconnect() {
  conn.stopped = true;
  clearTimeout(conn.retryTimer);
  stopPing();
  if (conn.ws) conn.ws.close(1000, "bye");
  setState("idle", "disconnected");
}

function startPing() {
  stopPing();
  conn.pingTimer = setInterval(() => {
    const ws = conn.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (conn.pingSentAt && performance.now() - conn.pingSentAt > PONG_WAIT) {
      ws.close(4000, "no pong"); // onclose reconnects
      return;
    }
    if (!conn.pingSentAt) {
      conn.pingSentAt = performance.now();
      ws.send('{"type":"ping"}');
    }
  }, PING_EVERY);
}

function stopPing() {
  clearInterval(conn.pingTimer);
  conn.pingSentAt = 0;
}

function onFrame(msg) {
  switch (msg.type) {
    case "subscribed": {
      conn.attempt = 0;
      setState("subscribed", "subscribed");
      const resumed = conn.lastId ? ` · resumed after ${conn.lastId}` : "";
      notice(`subscription ${msg.subscriptionId}: ${(msg.channels || []).join(", ")}${resumed}`);
      if (msg.recovered === false) {
        // The log no longer reaches back to the boards' state: take them
        // afresh from a snapshot (the new subscribe replaces this one).
        notice("the log no longer reaches back to the last event shown: reloading the boards");
        conn.lastId = "";
        subscribe(conn.ws);
        break;
      }
      if (msg.snapshot) {
        conn.inSnapshot = true;
        clearBoards();
      }
      for (const ch of msg.channels || []) addFilter(ch);
      startPing();
      conn.pingSentAt = performance.now();
      conn.ws.send('{"type":"ping"}');
      break;
    }
    case "snapshot":
      onRow(msg.channel, msg.payload, { event: "SNAPSHOT", payload: msg.payload });
      break;
    case "snapshot_end":
      conn.inSnapshot = false;
      conn.lastId = msg.id;
      $("#last-id").textContent = msg.id;
      break;
    case "broadcast":
      onBroadcast(msg);
      break;
    case "pong":
      if (conn.pingSentAt) {
        $("#rtt").textContent = `${Math.round(performance.now() - conn.pingSentAt)} ms`;
        conn.pingSentAt = 0;
      }
      break;
    case "error":
      if (FATAL.has(msg.message)) conn.fatal = msg.message;
      notice(`error: ${msg.message}`);
      break;
    default: // heartbeat, unsubscribed
  }
}

// ---- broadcasts -------------------------------------------------------

const TIME_KEYS = ["updatedAt", "matchedAt", "placedAt", "createdAt", "triggeredAt"];

// age is how long ago, by this browser's clock, the database wrote the
// row: the newest timestamp the change set (an UPDATE's changed timestamp
// columns, an INSERT's timestamps). null when the change carries none.
function age(msg, now) {
  const keys = msg.old ? TIME_KEYS.filter((k) => k in msg.old) : TIME_KEYS;
  let newest = NaN;
  for (const k of keys) {
    const t = Date.parse(msg.payload && msg.payload[k]);
    if (!Number.isNaN(t) && !(t <= newest)) newest = t;
  }
  return Number.isNaN(newest) ? null : now - newest;
}

function onBroadcast(msg) {
  if (!conn.inSnapshot) conn.lastId = msg.id;
  received++;
  $("#count").textContent = String(received);
  $("#last-id").textContent = msg.id;
  const a = age(msg, Date.now());
  if (a !== null) {
    ages.push(a);
    if (ages.length > 20) ages.shift();
    const sorted = [...ages].sort((x, y) => x - y);
    $("#age").textContent = fmtMs(sorted[Math.floor(sorted.length / 2)]);
  }
  addFilter(msg.channel);
  channelCounts.set(msg.channel, (channelCounts.get(msg.channel) || 0) + 1);
  const btn = document.querySelector(`#filters button[data-channel="${CSS.escape(msg.channel)}"]`);
  if (btn) btn.dataset.count = String(channelCounts.get(msg.channel));
  streamRow(msg);
  onRow(msg.channel, msg.payload, msg);
}

// onRow puts a row's current state on its board: a snapshot's row, or a
// change (msg, with its old values).
function onRow(channel, p, msg) {
  switch (channel) {
    case "orders":
      boardRow("#board-orders", p.orderId, msg, orderCells);
      break;
    case "scores":
      boardRow("#board-scores", p.fixtureId, msg, scoreCells);
      break;
    case "accounts":
      boardRow("#board-accounts", p.accountId, msg, accountCells);
      break;
    case "emergency":
      showEmergency(p);
      break;
  }
}

function fmtMs(ms) {
  if (Math.abs(ms) < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmt(v) {
  if (v === null || v === undefined) return "∅";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// The fields an INSERT row shows first, per channel.
const SUMMARY = {
  orders: ["orderId", "accountId", "exchange", "orderStatus", "orderCents", "orderStake"],
  bets: ["betId", "orderId", "bookmaker", "placedPrice", "placedStake", "betStatus"],
  accounts: ["accountId", "balance", "currency"],
  scores: ["fixtureId", "currentMinute", "scores"],
  emergency: ["emergency", "reason"],
};

function streamRow(msg) {
  const li = el("li", "event");
  li.dataset.channel = msg.channel;
  li.dataset.op = msg.event;
  li.dataset.id = msg.id;
  if (filter && msg.channel !== filter) li.hidden = true;
  const head = el("div", "event-head");
  head.append(
    el("span", `chan chan-${msg.channel}`, msg.channel),
    el("span", `op op-${msg.event}`, msg.event),
    el("span", "subject", subjectOf(msg)),
    el("span", "pos muted", msg.id),
    el("time", "muted", new Date().toLocaleTimeString()),
  );
  const body = el("div", "event-body");
  if (msg.old) {
    for (const k of Object.keys(msg.old)) {
      const f = el("span", "change");
      f.append(el("span", "k", k), el("del", "", fmt(msg.old[k])), el("span", "arrow", "→"), el("ins", "", fmt(msg.payload[k])));
      body.append(f);
    }
  } else {
    const keys = SUMMARY[msg.channel] || Object.keys(msg.payload).slice(0, 6);
    for (const k of keys) {
      if (!(k in msg.payload)) continue;
      const f = el("span", "field");
      f.append(el("span", "k", k), el("span", "", fmt(msg.payload[k])));
      body.append(f);
    }
  }
  li.append(head, body);
  const list = $("#stream");
  list.prepend(li);
  while (list.childElementCount > MAX_STREAM) list.lastElementChild.remove();
}

function subjectOf(msg) {
  const p = msg.payload || {};
  return fmt(p.accountId ?? p.fixtureId ?? p.orderId ?? p.id ?? "");
}

function addFilter(channel) {
  const nav = $("#filters");
  if (nav.querySelector(`button[data-channel="${CSS.escape(channel)}"]`)) return;
  const b = el("button", "", channel);
  b.type = "button";
  b.dataset.channel = channel;
  nav.append(b);
}

function setFilter(channel) {
  filter = channel;
  for (const b of document.querySelectorAll("#filters button")) {
    b.classList.toggle("active", b.dataset.channel === channel);
  }
  for (const li of $("#stream").children) li.hidden = Boolean(channel) && li.dataset.channel !== channel;
}

// ---- boards -----------------------------------------------------------

function money(v) {
  return typeof v === "number" ? v.toFixed(2) : fmt(v);
}

function orderCells(p) {
  return [
    ["orderId", fmt(p.orderId)],
    ["accountId", fmt(p.accountId)],
    ["fixtureId", fmt(p.fixtureId)],
    ["exchange", fmt(p.exchange)],
    ["orderCents", p.orderCents == null ? "∅" : `${p.orderCents}¢`],
    ["orderStake", money(p.orderStake)],
    ["matchedStake", money(p.matchedStake)],
    ["orderStatus", `${fmt(p.orderStatus)} / ${fmt(p.matchedStatus)}`, ["matchedStatus"]],
  ];
}

function scoreCells(p) {
  const s = p.scores || {};
  return [
    ["fixtureId", fmt(p.fixtureId)],
    ["live", p.live ? "●" : "–"],
    ["currentPeriod", fmt(p.currentPeriod)],
    ["currentMinute", p.currentMinute == null ? "∅" : `${p.currentMinute}'`],
    ["scores", s.home !== undefined ? `${s.home} – ${s.away}` : fmt(p.scores)],
  ];
}

function accountCells(p) {
  return [
    ["accountId", fmt(p.accountId)],
    ["venue", fmt(p.venue)],
    ["balance", `${money(p.balance)} ${p.currency || ""}`.trim()],
    ["status", fmt(p.status)],
  ];
}

// boardRow shows the row's latest state, with the cells this change
// touched highlighted; new rows go on top.
function boardRow(table, key, msg, cells) {
  if (key === undefined || key === null) return;
  const tbody = $(`${table} tbody`);
  let tr = tbody.querySelector(`tr[data-key="${CSS.escape(String(key))}"]`);
  const isNew = !tr;
  if (isNew) {
    tr = el("tr");
    tr.dataset.key = String(key);
  }
  tr.replaceChildren();
  for (const [field, text, alsoFields] of cells(msg.payload)) {
    const td = el("td", "", text);
    const changed = msg.old && (field in msg.old || (alsoFields || []).some((f) => f in msg.old));
    if (changed) {
      td.classList.add("changed");
      const old = msg.old[field] !== undefined ? msg.old[field] : msg.old[(alsoFields || [])[0]];
      td.title = `was ${fmt(old)}`;
    }
    tr.append(td);
  }
  if (msg.event !== "SNAPSHOT") {
    tr.classList.remove("flash");
    void tr.offsetWidth; // restart the animation
    tr.classList.add("flash");
  }
  tr.dataset.op = msg.event;
  if (isNew) {
    tbody.prepend(tr);
    while (tbody.childElementCount > MAX_ROWS) tbody.lastElementChild.remove();
  }
}

// ---- emergency --------------------------------------------------------

function showEmergency(p) {
  emergencyOn = Boolean(p.emergency);
  $("#emergency-banner").hidden = !emergencyOn;
  $("#emergency-reason").textContent = p.reason || "";
  $("#emergency-since").textContent = p.triggeredAt ? `since ${new Date(p.triggeredAt).toLocaleString()}` : "";
  const sw = $("#emergency-toggle");
  sw.setAttribute("aria-checked", String(emergencyOn));
  sw.textContent = emergencyOn ? "ON" : "off";
}

// ---- admin ------------------------------------------------------------

const admin = { token: "", timer: 0 };

async function adminFetch(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${admin.token}` } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {
    // an empty or non-JSON body: the status says enough
  }
  if (!res.ok) {
    const err = new Error((data && data.error) || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

// optional reads a route this node may not serve (yet): its failure shows
// in its own panel, as the text render gets instead of the data, and does
// not stop the refresh. Only a refused token does.
async function optional(path, render) {
  try {
    render(await adminFetch("GET", path));
  } catch (err) {
    if (err.status === 401) throw err;
    render(null, err.status === 404 || err.status === 405 ? `GET ${path} is not served by this node yet` : err.message);
  }
}

async function refreshAdmin() {
  clearTimeout(admin.timer);
  if (!admin.token) return;
  try {
    const { clients } = await adminFetch("GET", "/admin/clients");
    const keys = await Promise.all(clients.map((c) => adminFetch("GET", `/admin/clients/${encodeURIComponent(c.client)}/keys`)));
    renderClients(clients, keys.map((k) => k.keys));
    $("#admin-view").hidden = false;
    await optional("/admin/connections", renderConnections);
    await optional("/admin/stats", renderStats);
    $("#admin-notice").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    $("#admin-notice").textContent = `admin: ${err.message}`;
    if (err.status === 401) {
      admin.token = "";
      sessionStorage.removeItem("hub.admin");
      $("#admin-view").hidden = true;
      return;
    }
  }
  admin.timer = setTimeout(refreshAdmin, ADMIN_REFRESH);
}

function renderClients(clients, keyLists) {
  const tbody = $("#admin-clients tbody");
  tbody.replaceChildren();
  clients.forEach((c, i) => {
    const tr = el("tr");
    tr.dataset.key = c.client;
    const keys = el("td", "keys");
    for (const k of keyLists[i] || []) {
      const tag = el("span", k.revokedAt ? "keytag revoked" : "keytag", `#${k.id} · ${k.label || "—"} · ${k.connections}/${k.maxConnections}`);
      if (k.revokedAt) tag.title = `revoked ${k.revokedAt}`;
      keys.append(tag);
    }
    tr.append(el("td", "", c.client), el("td", "", c.active ? "yes" : "no"), el("td", "", String(c.connections)), keys);
    tbody.append(tr);
  });
}

function renderConnections(data, why) {
  const tbody = $("#admin-connections tbody");
  tbody.replaceChildren();
  if (!data) {
    const tr = el("tr");
    const td = el("td", "muted", why);
    td.colSpan = 9;
    tr.append(td);
    tbody.append(tr);
    return;
  }
  for (const c of data.connections) {
    const tr = el("tr");
    tr.dataset.key = c.id;
    const kick = el("button", "small", "close");
    kick.type = "button";
    kick.addEventListener("click", async () => {
      try {
        await adminFetch("DELETE", `/admin/connections/${encodeURIComponent(c.id)}`);
      } catch (err) {
        $("#admin-notice").textContent = `close ${c.id}: ${err.message}`;
      }
      refreshAdmin();
    });
    const kickCell = el("td");
    kickCell.append(kick);
    tr.append(
      el("td", "mono", String(c.id).slice(0, 12)),
      el("td", "", fmt(c.node)),
      el("td", "", fmt(c.client)),
      el("td", "", fmt(c.keyId)),
      el("td", "", fmt(c.protocol)),
      el("td", "mono", fmt(c.remoteAddr)),
      el("td", "", c.connectedAt ? new Date(c.connectedAt).toLocaleTimeString() : "∅"),
      el("td", "", (c.channels || []).join(", ")),
      kickCell,
    );
    tbody.append(tr);
  }
}

function renderStats(s, why) {
  const dl = $("#stats");
  dl.replaceChildren();
  if (!s) {
    dl.append(el("dd", "muted", why));
    return;
  }
  const conns = s.connections || {};
  const rows = [
    ["node", fmt(s.node)],
    ["connections", Object.entries(conns).map(([p, n]) => `${p} ${n}`).join(" · ")],
    ["events/s", fmt(s.eventsPerSecond)],
    ["deliveries/s", fmt(s.deliveriesPerSecond)],
    ["reader lag", s.readerLagSeconds == null ? "∅" : `${s.readerLagSeconds} s`],
    ["position", fmt(s.position)],
  ];
  for (const [k, v] of rows) dl.append(el("dt", "", k), el("dd", "", v));
}

async function toggleEmergency() {
  const want = !emergencyOn;
  const reason = $("#emergency-reason-input").value.trim() || (want ? "switched on from the dashboard" : "");
  const out = $("#emergency-result");
  try {
    const row = await adminFetch("POST", "/admin/emergency", { emergency: want, reason });
    out.textContent = `emergency ${row.emergency ? "on" : "off"}; the broadcast follows`;
    showEmergency(row);
  } catch (err) {
    out.textContent = err.status === 404 || err.status === 405 ? "POST /admin/emergency is not served by this node yet" : `failed: ${err.message}`;
  }
}

// ---- start ------------------------------------------------------------

// readParams takes the key and the admin token from the fragment only. A
// ?key= is never used: it reached the server's and proxies' logs already,
// and a page that accepted it would invite links that leak keys. It is
// removed from the address bar all the same, with the fragment.
function readParams() {
  const params = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  if (params.has("key") || params.has("admin") || query.has("key")) {
    query.delete("key");
    const q = query.toString();
    history.replaceState(null, "", location.pathname + (q ? `?${q}` : ""));
  }
  return { key: params.get("key"), token: params.get("admin") };
}

function useKey(key) {
  conn.key = key.trim();
  conn.fatal = "";
  conn.attempt = 0;
  conn.stopped = !conn.key;
  if (conn.key) localStorage.setItem("hub.key", conn.key);
  if (conn.ws) {
    const old = conn.ws;
    conn.ws = null;
    old.close(1000, "new key");
  }
  stopPing();
  if (conn.key) connect();
  else setState("idle", "no key");
}

function useAdmin(token) {
  admin.token = token.trim();
  if (admin.token) sessionStorage.setItem("hub.admin", admin.token);
  refreshAdmin();
}

function start() {
  const { key, token } = readParams();
  const k = key || localStorage.getItem("hub.key") || "";
  $("#api-key").value = k;
  $("#key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    useKey($("#api-key").value);
  });
  $("#disconnect").addEventListener("click", disconnect);
  $("#filters").addEventListener("click", (ev) => {
    const b = ev.target.closest("button");
    if (b) setFilter(b.dataset.channel);
  });
  $("#admin-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    useAdmin($("#admin-token").value);
  });
  $("#emergency-toggle").addEventListener("click", toggleEmergency);
  const t = token || sessionStorage.getItem("hub.admin") || "";
  $("#admin-token").value = t;
  if (k) useKey(k);
  if (t) useAdmin(t);
}

start();
