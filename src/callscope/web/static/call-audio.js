// callscope dashboard, the call view's "Listen" part: a timeline strip (received audio,
// missing packets, transcript segments) above one player per track. Loaded before
// dashboard.js, whose helpers ($, token, refusal, SPEAKERS) it uses when called. Plain DOM; every
// value from the server is set as text.
"use strict";

// The audio comes from GET /v1/calls/{id}/audio with the token in the Authorization header,
// never in the URL (server and proxy logs would keep it). Where the browser has service
// workers (HTTPS, or localhost), audio-sw.js adds the header to the players' own requests, so
// they stream and seek with byte ranges; elsewhere each track is fetched whole into a Blob URL.

const BYTES_PER_SAMPLE = { mulaw: 1, pcm_s16le: 2 };
const TRACK_OF_SPEAKER = { caller: "inbound", agent: "outbound" };
let listening = { callId: null, key: null, urls: [], players: new Map() };

function lastSequence(track) { return Math.max(track.max_sequence ?? 0, track.final_sequence ?? 0); }

function packetSeconds(call, track) {
  const bytes = track.received ? track.bytes_received / track.received : 160;
  return bytes / (BYTES_PER_SAMPLE[call.audio.encoding] ?? 1) / call.audio.sample_rate;
}

function percent(fraction) { return `${Math.min(100, Math.max(0, fraction * 100)).toFixed(3)}%`; }

function element(tag, className) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  return made;
}

function renderListening(call) {
  const tracks = call.tracks.filter((t) => t.received > 0);
  const note = $("d-listen-note");
  if (call.audio_pruned_at || !tracks.length) {
    releasePlayers();
    $("d-timeline").replaceChildren();
    $("d-players").replaceChildren();
    note.textContent = call.audio_pruned_at
      ? "The audio was dropped by the retention policy." : "No audio stored yet.";
    return;
  }
  note.textContent = tracks.some((t) => t.missing_ranges_truncated)
    ? "More gaps than listed: the first 100 of each track are shown." : "";
  renderTimeline(call, tracks);
  const key = JSON.stringify([call.call_id, tracks.map((t) => [t.track, t.received, lastSequence(t)])]);
  const playing = [...listening.players.values()].some((audio) => !audio.paused);
  if (call.call_id !== listening.callId || (key !== listening.key && !playing)) {
    loadPlayers(call, tracks, key);
  }
}

function renderTimeline(call, tracks) {
  const segments = call.ai.transcript?.segments ?? [];
  $("d-timeline").replaceChildren(...tracks.map((track) => {
    const last = lastSequence(track) || 1;
    const seconds = last * packetSeconds(call, track);
    const row = element("div", "lane-row");
    row.dataset.track = track.track;
    row.dataset.seconds = String(seconds);
    row.appendChild(element("span", "lane-label")).textContent = SPEAKERS[track.track] ?? track.track;
    const stack = row.appendChild(element("div", "lane-stack"));
    const lane = stack.appendChild(element("div", "lane"));
    lane.title = `${track.received} packets received, ${track.missing} missing ` +
      `(${seconds.toFixed(1)} s)`;
    for (const range of track.missing_ranges) {
      const gap = lane.appendChild(element("div", "gap"));
      gap.style.left = percent((range.first - 1) / last);
      gap.style.width = percent((range.last - range.first + 1) / last);
      gap.dataset.first = String(range.first);
      gap.dataset.last = String(range.last);
      gap.title = range.first === range.last
        ? `packet ${range.first} missing` : `packets ${range.first}–${range.last} missing`;
    }
    lane.appendChild(element("div", "playhead")).hidden = true;
    const marks = stack.appendChild(element("div", "marks"));
    const own = segments.filter((s) => tracks.length < 2 || TRACK_OF_SPEAKER[s.speaker] === track.track);
    for (const segment of own) {
      const mark = marks.appendChild(element("button", `seg speaker-${segment.speaker}`));
      mark.type = "button";
      mark.style.left = percent(segment.start / seconds);
      mark.style.width = percent(Math.max(segment.end - segment.start, 0) / seconds);
      mark.dataset.start = String(segment.start);
      mark.title = `${segment.start.toFixed(1)} s: ${segment.text}`;
      mark.setAttribute("aria-label", `Play from ${segment.start.toFixed(1)} s: ${segment.text}`);
      mark.addEventListener("click", () => playFrom(segment));
    }
    return row;
  }));
}

function releasePlayers() {
  for (const audio of listening.players.values()) {
    audio.pause();
    audio.removeAttribute("src");  // stop streaming it
    audio.load();
  }
  for (const url of listening.urls) URL.revokeObjectURL(url);
  listening = { callId: null, key: null, urls: [], players: new Map() };
}

function loadPlayers(call, tracks, key) {
  releasePlayers();
  listening.callId = call.call_id;
  listening.key = key;
  const mine = listening;
  $("d-players").replaceChildren(...tracks.map((track) => {
    const figure = element("figure", "player");
    figure.dataset.track = track.track;
    figure.appendChild(element("figcaption")).textContent = SPEAKERS[track.track] ?? track.track;
    const audio = figure.appendChild(element("audio"));
    audio.controls = true;
    audio.preload = "auto";
    audio.dataset.track = track.track;
    audio.addEventListener("timeupdate", () => movePlayhead(track.track, audio));
    audio.addEventListener("play", () => {
      for (const other of mine.players.values()) if (other !== audio) other.pause();
    });
    const status = figure.appendChild(element("span", "player-status muted"));
    mine.players.set(track.track, audio);
    const path = audioPath(call.call_id, track.track);
    const failed = (message) => { status.textContent = `Could not load the audio: ${message}`; };
    audioStreams().then(async (streamed) => {
      if (listening !== mine) return;
      if (streamed) {
        audio.addEventListener("error", async () => {
          failed(await problemOf(path) ?? (audio.error?.message || "no answer"));
        });
        audio.src = path;
        return;
      }
      const url = await fetchAudio(path, mine);
      if (url) audio.src = url;
    }).catch((error) => failed(error.message));
    return figure;
  }));
}

// Why the audio route refused a player (its problem's detail), asked for one byte of it.
async function problemOf(path) {
  try {
    const headers = { Authorization: `Bearer ${token()}`, Range: "bytes=0-0" };
    const response = await fetch(path, { headers });
    return response.ok ? null : await refusal(response);
  } catch {
    return null;
  }
}

function audioPath(callId, track) {
  return `/v1/calls/${encodeURIComponent(callId)}/audio?track=${encodeURIComponent(track)}`;
}

// Whether audio-sw.js controls this page (registered once; false without service workers).
let streaming = null;
const CONTROL_WAIT_MS = 3000;

function audioStreams() {
  if (streaming) return streaming;
  if (!("serviceWorker" in navigator) || !window.isSecureContext) {
    streaming = Promise.resolve(false);
    return streaming;
  }
  navigator.serviceWorker.addEventListener("message", (message) => {
    const ours = message.source?.scriptURL?.endsWith("/dashboard/audio-sw.js");
    if (ours && message.data?.type === "token?" && message.ports[0]) {
      message.ports[0].postMessage(token());
    }
  });
  const controlled = () => navigator.serviceWorker.controller !== null;
  const registered = navigator.serviceWorker.register("/dashboard/audio-sw.js", { scope: "/dashboard" })
    .then(() => navigator.serviceWorker.ready)
    .then(() => controlled() || new Promise((resolve) => {
      navigator.serviceWorker.addEventListener("controllerchange", () => resolve(true), { once: true });
    }));
  // A browser that blocks service workers may never make one ready: then fetch whole.
  const late = new Promise((resolve) => { setTimeout(() => resolve(controlled()), CONTROL_WAIT_MS); });
  streaming = Promise.race([registered, late]).catch(() => false);
  return streaming;
}

async function fetchAudio(path, mine) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
  if (!response.ok) throw new Error(await refusal(response));
  const blob = await response.blob();
  if (listening !== mine) return null;  // another call (or a newer load) took the players
  const url = URL.createObjectURL(blob);
  mine.urls.push(url);
  return url;
}

function movePlayhead(track, audio) {
  const row = document.querySelector(`#d-timeline .lane-row[data-track="${track}"]`);
  if (!row) return;
  const head = row.querySelector(".playhead");
  head.hidden = false;
  head.style.left = percent(audio.currentTime / Number(row.dataset.seconds));
}

function playFrom(segment) {
  const audio = listening.players.get(TRACK_OF_SPEAKER[segment.speaker])
    ?? listening.players.values().next().value;
  if (!audio) return;
  const start = () => {
    audio.currentTime = segment.start;
    audio.play().catch((error) => { $("d-listen-note").textContent = error.message; });
  };
  if (audio.readyState >= HTMLMediaElement.HAVE_METADATA) start();
  else audio.addEventListener("loadedmetadata", start, { once: true });
}
