// The instant preview: the arbitrary-style network paints the picked photo in the style of
// the picked paintings in about a second, a sketch of what a Paint job will make. Shown only
// where the server has the route (/api/config's features; it needs brushwork[arbitrary]).

import { $, picked, say, showError } from "./common.js";
import { stopWatching } from "./watch.js";

let shown = null; // the object URL on screen, released when replaced

async function paint() {
  const body = new FormData();
  body.append("photo", picked.content, picked.content.name);
  for (const style of picked.styles) body.append("style", style, style.name);
  body.append("size", Math.min(Number($("#size").value) || 512, 1024));
  body.append("preserve_color", $("#preserve_color").value === "none" ? "false" : "true");
  const started = performance.now();
  const response = await fetch("/api/fast/style", { method: "POST", body });
  if (!response.ok) {
    const answer = await response.json().catch(() => null);
    throw new Error((answer && answer.error) || `${response.status} ${response.statusText}`);
  }
  return { blob: await response.blob(), seconds: (performance.now() - started) / 1000 };
}

async function preview() {
  showError("");
  stopWatching();
  say("Painting an instant preview…");
  $("#preview-button").disabled = true;
  try {
    const { blob, seconds } = await paint();
    if (shown) URL.revokeObjectURL(shown);
    shown = URL.createObjectURL(blob);
    Object.assign($("#fast-image"), { src: shown, alt: "instant preview by the arbitrary-style network" });
    $("#download-fast").href = shown;
    $("#fast-section").hidden = false;
    $("#fast-section").scrollIntoView({ block: "nearest" }); // in view; the focus stays on the button
    say(`Instant preview in ${seconds.toFixed(1)} s (the arbitrary-style network; Start paints the real one).`);
  } catch (error) {
    showError(error.message);
    say("");
  } finally {
    $("#preview-button").disabled = false;
  }
}

// Offer the button where the server has the route.
export function previewControls(features) {
  $("#preview-button").hidden = !(features && features.instant_preview);
  $("#preview-button").addEventListener("click", preview);
}
