// The instant preview: the arbitrary-style network paints the picked photo in the style of
// the picked paintings in about a second, a sketch of what a Paint job will make. Shown only
// where the server has the route (/api/config's features; it needs brushwork[arbitrary]).

import { $, isVideo, picked, say, showError } from "./common.js";
import { stopWatching } from "./watch.js";

let shown = null; // the object URL on screen, released when replaced
let offered = false; // whether the server has the route
let painted = []; // the pictures the last preview painted: a new photo or painting paints again

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

// `quiet`: started by itself when the pictures arrived; it leaves a followed job, the status
// line and the error line alone, so it never talks over what the user is doing.
async function preview(quiet = false) {
  if (!quiet) {
    showError("");
    stopWatching();
    say("Painting an instant preview…");
  }
  painted = [picked.content, ...picked.styles];
  $("#preview-button").disabled = true;
  try {
    const { blob, seconds } = await paint();
    if (shown) URL.revokeObjectURL(shown);
    shown = URL.createObjectURL(blob);
    Object.assign($("#fast-image"), { src: shown, alt: "instant preview by the arbitrary-style network" });
    $("#download-fast").href = shown;
    $("#fast-section").hidden = false;
    $("#fast-section").scrollIntoView({ block: "nearest" }); // in view; the focus stays on the button
    if (!quiet) say(`Instant preview in ${seconds.toFixed(1)} s (the arbitrary-style network; Start paints the real one).`);
  } catch (error) {
    if (!quiet) {
      showError(error.message);
      say("");
    }
  } finally {
    $("#preview-button").disabled = false;
  }
}

// Offer the button where the server has the route.
export function previewControls(features) {
  offered = Boolean(features && features.instant_preview);
  $("#preview-button").hidden = !offered;
  $("#preview-button").addEventListener("click", () => preview());
}

// Paint the preview by itself once a photo and its paintings are there (and again when one of
// them changes), so the sketch arrives within a second, while the user reads the settings or
// the optimization starts.
export function previewWhenReady(ready) {
  const pictures = [picked.content, ...picked.styles];
  const same = pictures.length === painted.length && pictures.every((picture, i) => picture === painted[i]);
  if (offered && ready && !isVideo(picked.content) && !same) preview(true);
}
