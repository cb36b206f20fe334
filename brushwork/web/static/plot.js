// Loss curves as SVG: one line per run (a compare grid runs one per group of cells), each
// on its own log scale, so that a new run does not draw a spike into the last one's curve.

import { number } from "./common.js";

const SVG = "http://www.w3.org/2000/svg";

function svgNode(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

// One polyline for `losses` (rows [step, content, style, tv, total]) from x0 to x1 of 300.
function line(losses, x0, x1, index) {
  const values = losses.map((record) => Math.log10(Math.max(record[4], 1e-12)));
  const low = Math.min(...values);
  const span = Math.max(...values) - low || 1;
  const x = (i) => x0 + ((x1 - x0) * i) / Math.max(values.length - 1, 1);
  const points = values.map((v, i) => `${x(i).toFixed(1)},${(18 + 86 * (1 - (v - low) / span)).toFixed(1)}`);
  return svgNode("polyline", { points: points.join(" "), class: `g${index % 4}` });
}

// Split the losses by run: `groups` are [{first}] (where each run's rows start), or none for one run.
export function runs(losses, groups) {
  const starts = groups && groups.length ? groups.map((group) => group.first) : [0];
  return starts.map((first, i) => losses.slice(first, starts[i + 1] ?? losses.length)).filter((rows) => rows.length);
}

// Draw the curves into `svg`; false when there is nothing to draw (fewer than two steps).
export function drawPlot(svg, losses, groups = [], labels = true) {
  svg.replaceChildren();
  const parts = runs(losses, groups).filter((rows) => rows.length > 1);
  if (!parts.length) return false;
  const total = parts.reduce((sum, rows) => sum + rows.length, 0);
  let x = 0;
  parts.forEach((rows, i) => {
    const width = (300 * rows.length) / total;
    svg.append(line(rows, x, x + width - (parts.length > 1 ? 4 : 0), i));
    x += width;
  });
  if (labels) {
    const last = parts[parts.length - 1];
    const title = parts.length > 1 ? `loss of ${parts.length} runs (log scale each)` :
      `loss ${number(last[0][4])} → ${number(last[last.length - 1][4])} (log scale)`;
    svg.append(svgNode("text", { x: 0, y: 11, "text-anchor": "start" }, title),
      svgNode("text", { x: 300, y: 118, "text-anchor": "end" },
        parts.length > 1 ? `${losses.length} steps in all` : `step ${losses.length}`));
  }
  return true;
}

export const sparkline = () => svgNode("svg", { viewBox: "0 0 300 120", class: "spark", "aria-hidden": "true",
  preserveAspectRatio: "none" });
