// callscope supervisor dashboard: one WebSocket (/ws/supervisor) plus the read API for details.
// Plain DOM, no framework and no build step. Every value from the server is set with
// textContent, never as HTML.
"use strict";

const TOKEN_KEY = "callscope.supervisorToken";
const STATES = ["IN_PROGRESS", "COMPLETED", "PROCESSING_AI", "ARCHIVED", "FAILED"];
const STATE_LABELS = {
  IN_PROGRESS: "In progress", COMPLETED: "Completed", PROCESSING_AI: "Processing AI",
  ARCHIVED: "Archived", FAILED: "Failed",
};
const REFUSED = { 4401: "That token is not valid.", 4403: "That is not a supervisor token." };

const calls = new Map();       // call_id → call summary (CallSummary in /asyncapi.json)
const rows = new Map();        // call_id → <tr>
const degraded = new Map();    // worker → when its latest ai.provider (not closed) came
// As the server's DEGRADED_FRESH_S: a degraded worker says so again every few seconds, and one
// that crashed never says it closed.
const DEGRADED_FRESH_MS = 60000;
let lastEventId = null;        // resume point for ?since=
let socket = null;
let retryDelay = 500;
let selected = null;
let renderQueued = false;
let detailsTimer = null;

const $ = (id) => document.getElementById(id);

function token() { return localStorage.getItem(TOKEN_KEY); }

function setConnection(status, text) {
  const pill = $("connection");
  pill.dataset.status = status;
  pill.textContent = text;
}

function showSignIn(message) {
  $("sign-in").hidden = false;
  $("main").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in-error").textContent = message || "";
  $("token").focus();
}

function connect() {
  const params = new URLSearchParams({ token: token() });
  if (lastEventId !== null) params.set("since", String(lastEventId));
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/supervisor?${params}`);
  setConnection("reconnecting", lastEventId === null ? "Connecting…" : "Reconnecting…");
  socket.onmessage = (message) => handle(JSON.parse(message.data));
  socket.onclose = (event) => {
    socket = null;
    if (event.code in REFUSED) {
      localStorage.removeItem(TOKEN_KEY);
      setConnection("refused", "Signed out");
      showSignIn(REFUSED[event.code]);
      return;
    }
    setConnection("reconnecting", "Reconnecting…");
    setTimeout(connect, retryDelay * (0.5 + Math.random() / 2));  // jitter: not all at once
    retryDelay = Math.min(retryDelay * 2, 10000);
  };
}

function handle(message) {
  switch (message.type) {
    case "snapshot":
      calls.clear();
      degraded.clear();  // the server follows it with each worker still degraded
      for (const call of message.calls) calls.set(call.call_id, call);
      $("truncated").hidden = !message.truncated;
      lastEventId = message.last_event_id;
      live();
      break;
    case "live":  // after a replay; the degraded workers follow it, as after a snapshot
      degraded.clear();
      lastEventId = message.last_event_id;
      live();
      break;
    case "ping":
      return;
    case "ai.provider":
      if (message.data.degraded) {
        degraded.set(message.data.worker, { data: message.data, at: Date.now() });
      } else degraded.delete(message.data.worker);
      break;
    case "call.progress":
      for (const entry of message.data.calls) {
        const call = calls.get(entry.call_id);
        if (call) {  // unknown calls arrive with their snapshot
          call.packets = entry.packets;
          call.tracks = entry.tracks;
        }
      }
      break;
    default:
      apply(message);
      if (message.event_id !== null) lastEventId = Math.max(lastEventId ?? 0, message.event_id);
      if (message.call_id === selected) refreshDetailsSoon();
  }
  scheduleRender();
}

function live() {
  retryDelay = 500;
  setConnection("live", "Live");
}

function blankCall(id, at) {
  return {
    call_id: id, state: "IN_PROGRESS", created_at: at, updated_at: at,
    packets: { received: 0, missing: 0, late: 0, duplicates: 0 }, tracks: [],
    ai: { attempts_used: 0, last_error: null, sentiment: null },
  };
}

function apply(event) {
  const call = calls.get(event.call_id) ?? blankCall(event.call_id, event.time);
  calls.set(event.call_id, call);
  const data = event.data;
  switch (event.type) {
    case "call.state_changed":
      call.state = data.to;
      if (data.reason === "redrive") call.ai.attempts_used = 0;  // a fresh budget
      call.updated_at = event.time;
      break;
    case "call.ai_attempt":
      call.ai.attempts_used = Math.max(call.ai.attempts_used, data.attempt);
      if (data.outcome && data.outcome !== "ok") call.ai.last_error = data.error;
      break;
    case "call.archived":
      call.ai.sentiment = data.sentiment;
      call.ai.last_error = null;
      break;
    case "call.failed":
      call.ai.last_error = data.last_error;
      break;
  }
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

function render() {
  const ordered = [...calls.values()].sort(
    (a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1
      : a.call_id < b.call_id ? 1 : -1));
  const body = $("calls");
  ordered.forEach((call, index) => {
    let row = rows.get(call.call_id);
    if (!row) {
      row = newRow(call.call_id);
      rows.set(call.call_id, row);
    }
    fillRow(row, call);
    if (body.children[index] !== row) body.insertBefore(row, body.children[index] || null);
  });
  for (const [id, row] of rows) {
    if (!calls.has(id)) { row.remove(); rows.delete(id); }
  }
  $("empty").hidden = calls.size > 0;
  renderTotals();
  renderProviderHealth();
}

function renderProviderHealth() {
  for (const [worker, { at }] of degraded) {
    if (Date.now() - at > DEGRADED_FRESH_MS) degraded.delete(worker);
  }
  const notice = $("ai-degraded");
  notice.hidden = degraded.size === 0;
  if (degraded.size === 0) return;
  const worst = Math.max(...[...degraded.values()].map(({ data }) => data.failure_rate));
  const workers = degraded.size === 1 ? "1 worker" : `${degraded.size} workers`;
  notice.textContent = `AI provider degraded: ${workers} held back its calls `
    + `(${Math.round(worst * 100)} % of recent provider calls failed). `
    + "Finished calls wait and are processed once it recovers.";
}

function newRow(id) {
  const row = document.createElement("tr");
  row.dataset.callId = id;
  for (let i = 0; i < 9; i++) row.appendChild(document.createElement("td"));
  row.cells[1].appendChild(document.createElement("span")).className = "badge";
  for (const i of [2, 3, 4, 5, 6]) row.cells[i].className = "num";
  row.addEventListener("click", () => select(id));
  return row;
}

function fillRow(row, call) {
  const cells = row.cells;
  cells[0].textContent = call.call_id;
  cells[0].title = call.call_id;
  const badge = cells[1].firstChild;
  badge.className = `badge state-${call.state}`;
  badge.textContent = STATE_LABELS[call.state] ?? call.state;
  row.dataset.state = call.state;
  cells[2].textContent = call.packets.received;
  cells[2].title = perTrack(call.tracks, "received");
  cells[3].textContent = call.packets.missing;
  cells[3].title = perTrack(call.tracks, "missing");
  cells[3].classList.toggle("warn", call.packets.missing > 0);
  cells[4].textContent = call.packets.late;
  cells[5].textContent = call.packets.duplicates;
  cells[6].textContent = call.ai.attempts_used || "–";
  cells[6].title = call.ai.last_error ?? "";
  fillSentiment(cells[7], call.ai.sentiment);
  cells[8].textContent = clock(call.updated_at);
  row.classList.toggle("selected", call.call_id === selected);
}

// The headline sentiment as text, then its trend when known (snapshots and the read API carry
// it); redrawn only when it changes.
function fillSentiment(cell, sentiment) {
  const text = sentiment ? `${sentiment.label} ${sentiment.score.toFixed(2)}` : "–";
  const trend = JSON.stringify(sentiment?.trend ?? []);
  if (cell.dataset.text === text && cell.dataset.trend === trend) return;
  cell.dataset.text = text;
  cell.dataset.trend = trend;
  cell.className = sentiment ? `sentiment-${sentiment.label}` : "";
  cell.replaceChildren(document.createTextNode(text));
  const line = sentiment && sparkline(sentiment.trend, sentiment.label, null);
  if (line) cell.appendChild(line);
}

const SPEAKERS = { inbound: "Caller", outbound: "Agent" };
const SPEAKER_LABELS = { caller: "Caller", agent: "Agent" };

function perTrack(tracks, count) {
  return (tracks ?? []).map((t) => `${SPEAKERS[t.track] ?? t.track}: ${t[count]}`).join(" · ");
}

function renderTotals() {
  const counts = Object.fromEntries(STATES.map((state) => [state, 0]));
  for (const call of calls.values()) counts[call.state] = (counts[call.state] ?? 0) + 1;
  const list = $("totals");
  list.replaceChildren(...STATES.map((state) => {
    const item = document.createElement("li");
    const dot = item.appendChild(document.createElement("span"));
    dot.className = `dot state-${state}`;
    item.appendChild(document.createElement("b")).textContent = counts[state];
    item.appendChild(document.createTextNode(STATE_LABELS[state]));
    return item;
  }));
}

function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : "";
}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
  if (!response.ok) throw new Error(await refusal(response));
  return response.json();
}

// What a refused request's problem+json says (its first field error, else its detail).
async function refusal(response) {
  const problem = await response.json().catch(() => null);
  return problem?.errors?.[0]?.msg ?? problem?.detail ?? `${response.status} ${response.statusText}`;
}

function select(id) {
  if (id !== selected) releasePlayers();
  selected = id;
  for (const [callId, row] of rows) row.classList.toggle("selected", callId === id);
  refreshDetails();
}

function refreshDetailsSoon() {
  clearTimeout(detailsTimer);
  detailsTimer = setTimeout(refreshDetails, 300);
}

async function refreshDetails() {
  const id = selected;
  if (id === null) return;
  try {
    const [call, events] = await Promise.all([
      api(`/v1/calls/${encodeURIComponent(id)}`),
      api(`/v1/calls/${encodeURIComponent(id)}/events?limit=1000`),
    ]);
    if (id === selected) renderDetails(call, events.items);
  } catch (error) {
    $("d-error").textContent = `Could not load the call: ${error.message}`;
  }
}

function renderDetails(call, history) {
  $("details-hint").hidden = true;
  $("details-body").hidden = false;
  $("d-call").textContent = call.call_id;
  const state = $("d-state");
  state.className = `badge state-${call.state}`;
  state.textContent = STATE_LABELS[call.state] ?? call.state;
  const sentiment = call.ai.sentiment;
  const sentimentCell = $("d-sentiment");
  sentimentCell.textContent = sentiment ? `${sentiment.label} (${sentiment.score.toFixed(2)})` +
    (sentiment.speakers.length > 1
      ? ` · ${sentiment.speakers.map((s) => `${s.speaker} ${s.label}`).join(", ")}` : "") : "–";
  sentimentCell.className = sentiment ? `sentiment-${sentiment.label}` : "";
  renderTrends(sentiment);
  $("d-packets").replaceChildren(...call.tracks.map((t) => {
    const line = document.createElement("div");
    line.textContent = `${SPEAKERS[t.track] ?? t.track}: ${t.received} received · ` +
      `${t.missing} missing · ${t.late} late · ${t.duplicates} duplicate`;
    return line;
  }));
  $("d-error").textContent = call.ai.last_error ?? "–";
  renderListening(call);
  renderTranscript(call.ai.transcript);
  $("d-attempts").replaceChildren(...call.ai.attempts.map((a) => {
    const item = document.createElement("li");
    item.className = `outcome-${a.outcome ?? "running"}`;
    const took = a.duration_s === null ? "" : ` in ${a.duration_s.toFixed(1)} s`;
    const side = call.tracks.length > 1 ? ` (${SPEAKERS[a.track] ?? a.track})` : "";
    item.textContent =
      `${a.step}${side}: ${a.outcome ?? "running"}${took}${a.error ? ` — ${a.error}` : ""}`;
    return item;
  }));
  $("d-history").replaceChildren(...history.map((event) => {
    const item = document.createElement("li");
    item.textContent = `${clock(event.created_at)} ${event.type} ${historyDetail(event)}`;
    return item;
  }));
}

function historyDetail(event) {
  const data = event.data;
  if (event.to_state) return `${event.from_state ?? "∅"} → ${event.to_state}`;
  if (event.type === "call.ai_attempt") return `${data.step} #${data.attempt}: ${data.outcome}`;
  if (event.type === "call.failed") return data.last_error ?? "";
  if (event.type === "call.dtmf") return `key ${data.digit}`;
  if (event.type === "call.mark") return data.name;
  return "";
}

function start() {
  $("main").hidden = false;
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  renderTotals();
  connect();
  audioStreams();  // call-audio.js: ready before the first call is opened
  setInterval(renderProviderHealth, DEGRADED_FRESH_MS / 6);
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(TOKEN_KEY, $("token").value.trim());
    start();
  });
  $("sign-out").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    if (socket) { socket.onclose = null; socket.close(); }
    location.reload();
  });
  if (token()) start(); else showSignIn();
});
