// callscope dashboard: the search box. GET /v1/calls with `q` (words of the transcripts) and
// `sentiment` (the caller's label); the matching calls are listed above the live table with
// their sentiment trend, a page at a time ("More" follows `next_cursor`). Clicking one opens
// it in the call view. Loaded after call-audio.js and before dashboard.js, whose helpers
// (element; $, api, select, clock, STATE_LABELS) it uses when called. Plain DOM; every value
// from the server is set as text.
"use strict";

const SEARCH_PAGE = 20;
let searching = null;  // the search shown: { params, cursor, count }

function startSearch() {
  const q = $("search-q").value.trim();
  const sentiment = $("search-sentiment").value;
  if (!q && !sentiment) { clearSearch(); return; }
  const params = new URLSearchParams({ limit: String(SEARCH_PAGE) });
  if (q) params.set("q", q);
  if (sentiment) params.set("sentiment", sentiment);
  searching = { params, cursor: null, count: 0 };
  $("search-list").replaceChildren();
  $("search-results").hidden = false;
  loadResults(searching);
}

async function loadResults(mine) {
  const params = new URLSearchParams(mine.params);
  if (mine.cursor) params.set("cursor", mine.cursor);
  $("search-more").hidden = true;
  $("search-status").textContent = "Searching…";
  let page;
  try {
    page = await api(`/v1/calls?${params}`);
  } catch (error) {
    if (searching === mine) $("search-status").textContent = `Search failed: ${error.message}`;
    return;
  }
  if (searching !== mine) return;  // cleared, or another search started meanwhile
  mine.cursor = page.next_cursor;
  mine.count += page.items.length;
  $("search-list").append(...page.items.map(resultItem));
  const plural = mine.count === 1 ? "call matches" : "calls match";
  $("search-status").textContent = mine.count === 0 ? "No call matches."
    : `${mine.count}${page.next_cursor ? "+" : ""} ${plural}.`;
  $("search-more").hidden = !page.next_cursor;
}

function resultItem(call) {
  const item = element("li", "result");
  item.dataset.callId = call.call_id;
  const open = item.appendChild(element("button"));
  open.type = "button";
  open.addEventListener("click", () => select(call.call_id));
  open.appendChild(element("span", "result-id")).textContent = call.call_id;
  open.appendChild(element("span", `badge state-${call.state}`)).textContent =
    STATE_LABELS[call.state] ?? call.state;
  const sentiment = call.ai.sentiment;
  const score = open.appendChild(element("span", "result-sentiment"));
  if (sentiment) score.classList.add(`sentiment-${sentiment.label}`);
  score.textContent = sentiment ? `${sentiment.label} ${sentiment.score.toFixed(2)}` : "not scored";
  const line = sentiment && sparkline(sentiment.trend, sentiment.label, null);
  open.appendChild(line || element("span"));  // keeps the columns in place
  open.appendChild(element("span", "result-time muted")).textContent = clock(call.created_at);
  return item;
}

function clearSearch() {
  searching = null;
  $("search-q").value = "";
  $("search-sentiment").value = "";
  $("search-list").replaceChildren();
  $("search-status").textContent = "";
  $("search-results").hidden = true;
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    startSearch();
  });
  $("search-clear").addEventListener("click", clearSearch);
  $("search-more").addEventListener("click", () => { if (searching) loadResults(searching); });
});
