// Fast mode: a trained network paints the picked photo while the page waits (about a
// second), again whenever the model, strength, colours or size change. A video is a job in
// the line instead, started with the Paint button and followed frame by frame.

import { $, api, element, isVideo, picked, say, showError } from "./common.js";
import { loadHistory } from "./history.js";
import { stopWatching, watch } from "./watch.js";

let painting = false; // one request at a time; a change meanwhile asks for one more
let again = false;
let shown = null; // the object URL on screen, released when replaced

export async function loadModels() {
  const response = await fetch("/api/models");
  if (!response.ok) throw new Error(`cannot list the models: ${response.status}`);
  const { models, size } = await response.json();
  $("#model").replaceChildren(...models.map((model) => element("option", {
    value: model.name, disabled: Boolean(model.error), title: model.error || `trained on ${model.style}`,
    textContent: model.error ? `${model.name} (unusable)` : `${model.name} · ${model.source}`,
  })));
  Object.assign($("#fast-size"), { value: size.default, min: size.bounds[0], max: size.bounds[1] });
  return models.some((model) => !model.error);
}

function form() {
  const body = new FormData();
  body.append("photo", picked.content, picked.content.name);
  body.append("model", $("#model").value);
  body.append("strength", $("#strength").value);
  body.append("preserve_color", $("#fast-color").checked ? "true" : "false");
  body.append("size", $("#fast-size").value);
  return body;
}

async function request() {
  const started = performance.now();
  const response = await fetch("/api/fast", { method: "POST", body: form() });
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  }
  const blob = await response.blob();
  return { blob, seconds: (performance.now() - started) / 1000 };
}

// A video through the chosen network, as a job whose frames the page follows.
export async function paintFastVideo() {
  showError("");
  const body = form();
  body.set("video", picked.content, picked.content.name);
  body.delete("photo");
  try {
    const job = await api("/api/fast/video", { method: "POST", body });
    watch(job.id);
    loadHistory();
  } catch (error) {
    showError(error.message);
  }
}

export async function paintFast() {
  if (!picked.content || !$("#model").value || isVideo(picked.content)) return; // a video waits for the button
  if (painting) {
    again = true;
    return;
  }
  painting = true;
  showError("");
  stopWatching();
  say(`Painting with ${$("#model").value}…`);
  try {
    const { blob, seconds } = await request();
    if (shown) URL.revokeObjectURL(shown);
    shown = URL.createObjectURL(blob);
    Object.assign($("#fast-image"), { src: shown, alt: `painted by ${$("#model").value}` });
    $("#download-fast").href = shown;
    $("#fast-section").hidden = false;
    say(`Painted with ${$("#model").value} in ${seconds.toFixed(1)} s.`);
  } catch (error) {
    showError(error.message);
    say("");
  } finally {
    painting = false;
  }
  if (again) {
    again = false;
    paintFast();
  }
}

export function fastControls(active) {
  for (const id of ["#model", "#strength", "#fast-color", "#fast-size"]) {
    $(id).addEventListener("change", () => active() && paintFast());
  }
  $("#strength").addEventListener("input", () => { $("#strength-shown").value = $("#strength").value; });
}
