// callscope dashboard: the service worker that lets the call view's players stream.
//
// An <audio src> cannot send an Authorization header, and a token in the URL would end up in
// access logs. This worker sits between the page and GET /v1/calls/{id}/audio: it asks the
// page that made the request for its supervisor token (kept nowhere else) and fetches the
// audio with it in the header, passing the player's Range header through. So the player
// streams the WAV and seeks with byte ranges (206) instead of downloading it whole first.
// Every other request passes untouched.
"use strict";

const AUDIO_PATH = /^\/v1\/calls\/[^/]+\/audio$/;
const ASK_TIMEOUT_MS = 2000;

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin
      || !AUDIO_PATH.test(url.pathname)) return;
  event.respondWith(withToken(event.request, event.clientId));
});

async function withToken(request, clientId) {
  const headers = new Headers();
  const range = request.headers.get("Range");
  if (range) headers.set("Range", range);
  const token = await askPage(clientId);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  return fetch(request.url, { headers, credentials: "omit", cache: "no-store" });
}

// The page answers {type: "token?"} on the port it is given (dashboard.js); no answer within
// ASK_TIMEOUT_MS, or no page, means no token: the API then answers 401.
async function askPage(clientId) {
  const client = clientId ? await self.clients.get(clientId) : null;
  if (!client) return null;
  const channel = new MessageChannel();
  const answer = new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ASK_TIMEOUT_MS);
    channel.port1.onmessage = (message) => { clearTimeout(timer); resolve(message.data); };
  });
  client.postMessage({ type: "token?" }, [channel.port2]);
  try {
    return await answer;
  } finally {
    channel.port1.close();
  }
}
