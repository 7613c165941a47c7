// callscope dashboard, the call view's transcript and sentiment trends: a line per segment,
// labelled with its speaker, and a sparkline per speaker. Loaded before dashboard.js, whose
// helpers ($, SPEAKER_LABELS) and call-audio.js's playFrom it uses when called. Plain DOM;
// every value from the server is set as text.
"use strict";

// Each speaker's trend, one sparkline per speaker (the caller's first).
function renderTrends(sentiment) {
  const box = $("d-trend");
  const drawn = (sentiment?.speakers ?? []).map((s) => {
    const line = sparkline(s.trend, s.label, SPEAKER_LABELS[s.speaker] ?? s.speaker);
    if (!line) return null;
    const row = document.createElement("div");
    row.className = "trend-row";
    row.dataset.speaker = s.speaker;
    row.appendChild(document.createElement("span")).textContent =
      SPEAKER_LABELS[s.speaker] ?? s.speaker;
    row.appendChild(line);
    return row;
  }).filter(Boolean);
  if (drawn.length) box.replaceChildren(...drawn); else box.textContent = "–";
}

// The transcript, a line per segment in time order, labelled with its speaker; redacted spans
// (their markers, as stored) highlighted, low-confidence segments flagged.
function renderTranscript(transcript) {
  const box = $("d-transcript");
  if (!transcript) { box.textContent = "Not transcribed yet."; return; }
  if (!transcript.segments.length) { box.textContent = transcript.text; return; }
  box.replaceChildren(...transcript.segments.map(transcriptLine));
}

function transcriptLine(segment) {
  const line = document.createElement("div");
  line.className = `segment speaker-${segment.speaker}`;
  line.dataset.speaker = segment.speaker;
  const who = line.appendChild(document.createElement("b"));
  who.textContent = `${SPEAKER_LABELS[segment.speaker] ?? segment.speaker}: `;
  appendRedacted(line, segment.text, segment.redactions ?? []);
  line.title = `Play from ${segment.start.toFixed(1)} s`;
  if (segment.low_confidence) {
    line.classList.add("low-confidence");
    const sure = segment.confidence === null ? "" : ` (${segment.confidence.toFixed(2)})`;
    line.title += ` · low confidence${sure}: the words may be wrong, listen to the audio`;
  }
  line.addEventListener("click", () => playFrom(segment));
  return line;
}

function appendRedacted(line, text, redactions) {
  let at = 0;
  for (const span of [...redactions].sort((a, b) => a.start - b.start)) {
    if (span.start < at || span.end > text.length) continue;  // not where it says: plain text
    line.appendChild(document.createTextNode(text.slice(at, span.start)));
    const mark = line.appendChild(document.createElement("mark"));
    mark.className = "redaction";
    mark.dataset.kind = span.kind;
    mark.title = `${span.kind} redacted before storage`;
    mark.textContent = text.slice(span.start, span.end);
    at = span.end;
  }
  line.appendChild(document.createTextNode(text.slice(at)));
}
