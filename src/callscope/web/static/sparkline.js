// callscope dashboard: a sentiment trend as a small inline SVG line (one point per transcript
// segment, -1 at the bottom, +1 at the top, a dotted zero line). Built with DOM calls only;
// the scores are numbers, the label goes into an attribute.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const SPARK_WIDTH = 96;
const SPARK_HEIGHT = 22;
const SPARK_PAD = 2;

function svgElement(tag, attributes) {
  const made = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, String(value));
  return made;
}

function sparkY(score) {
  const clamped = Math.min(1, Math.max(-1, Number(score) || 0));
  return SPARK_PAD + ((1 - clamped) / 2) * (SPARK_HEIGHT - 2 * SPARK_PAD);
}

// An <svg class="sparkline"> for `trend` (scores), or null when there is nothing to draw.
// `who` names the speaker in the accessible label.
function sparkline(trend, label, who) {
  if (!Array.isArray(trend) || trend.length === 0) return null;
  const svg = svgElement("svg", {
    class: `sparkline sentiment-${label}`,
    width: SPARK_WIDTH, height: SPARK_HEIGHT,
    viewBox: `0 0 ${SPARK_WIDTH} ${SPARK_HEIGHT}`,
    role: "img",
    "aria-label": `${who ? `${who}'s ` : ""}sentiment trend: ` +
      trend.map((s) => Number(s).toFixed(2)).join(", "),
    "data-points": trend.length,
  });
  svg.appendChild(svgElement("line", {
    class: "zero", x1: 0, x2: SPARK_WIDTH, y1: sparkY(0), y2: sparkY(0),
  }));
  const step = trend.length > 1 ? (SPARK_WIDTH - 2 * SPARK_PAD) / (trend.length - 1) : 0;
  const points = trend.map((score, i) => [
    trend.length > 1 ? SPARK_PAD + i * step : SPARK_WIDTH / 2, sparkY(score)]);
  if (points.length > 1) {
    svg.appendChild(svgElement("polyline", {
      class: "trend", points: points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "),
    }));
  }
  const [lastX, lastY] = points[points.length - 1];
  svg.appendChild(svgElement("circle", { class: "last", cx: lastX, cy: lastY, r: 2 }));
  return svg;
}
