// Fast mode: a trained network, or the arbitrary-style network with the paintings picked in
// the style box ("your painting", where the server has brushwork[arbitrary]), paints the
// picked photo while the page waits (about a second), again whenever the choice, strength,
// colours, size or paintings change. A video is a job in the line instead, started with the
// Paint button and followed frame by frame.

import { $, api, element, isVideo, picked, say, showError } from "./common.js";
import { loadHistory } from "./history.js";
import { stopWatching, watch } from "./watch.js";

let painting = false; // one request at a time; a change meanwhile asks for one more
let again = false;
let shown = null; // the object URL on screen, released when replaced

// The choice that paints with the picked paintings rather than a trained model; `unavailable`:
// why the server cannot (it lacks the extra), shown as the disabled choice's title.
function anyStyleChoice(unavailable) {
  const option = element("option", { id: "model-any", value: "", disabled: Boolean(unavailable),
    textContent: unavailable ? "Your painting (any style): not installed" : "Your painting (any style)",
    title: unavailable || "the arbitrary-style network paints with the style images you pick (several blend)" });
  return element("optgroup", { label: "Any painting" }, [option]);
}

export async function loadModels(unavailable) {
  const response = await fetch("/api/models");
  if (!response.ok) throw new Error(`cannot list the models: ${response.status}`);
  const { models, size } = await response.json();
  const trained = element("optgroup", { label: "Trained models" }, models.map((model) => element("option", {
    value: model.name, disabled: Boolean(model.error), title: model.error || `trained on ${model.style}`,
    textContent: model.error ? `${model.name} (unusable)` : `${model.name} · ${model.source}`,
  })));
  $("#model").replaceChildren(trained, anyStyleChoice(unavailable));
  Object.assign($("#fast-size"), { value: size.default, min: size.bounds[0], max: size.bounds[1] });
  return models.some((model) => !model.error);
}

// Whether "your painting" is chosen: the picked paintings paint, through /api/fast/style.
export const anyStyle = () => Boolean($("#model-any") && $("#model-any").selected);

// What paints, in the status line: the model's name, or the paintings' names.
const painter = () => (anyStyle() ? picked.styles.map((style) => style.name).join(" + ") : $("#model").value);

function form() {
  const body = new FormData();
  body.append("photo", picked.content, picked.content.name);
  if (anyStyle()) for (const style of picked.styles) body.append("style", style, style.name);
  else body.append("model", $("#model").value);
  body.append("strength", $("#strength").value);
  body.append("preserve_color", $("#fast-color").checked ? "true" : "false");
  body.append("size", $("#fast-size").value);
  return body;
}

async function request() {
  const started = performance.now();
  const response = await fetch(anyStyle() ? "/api/fast/style" : "/api/fast", { method: "POST", body: form() });
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
  if (!picked.content || isVideo(picked.content)) return; // a video waits for the button
  if (anyStyle() ? !picked.styles.length : !$("#model").value) return;
  if (painting) {
    again = true;
    return;
  }
  painting = true;
  showError("");
  stopWatching();
  const name = painter();
  say(`Painting with ${name}…`);
  try {
    const { blob, seconds } = await request();
    if (shown) URL.revokeObjectURL(shown);
    shown = URL.createObjectURL(blob);
    Object.assign($("#fast-image"), { src: shown, alt: `painted with ${name}` });
    $("#download-fast").href = shown;
    $("#fast-section").hidden = false;
    say(`Painted with ${name} in ${seconds.toFixed(1)} s.`);
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
