// The brushwork page: three modes over one set of pictures. Paint queues a stylization,
// Compare queues a grid of them (one job in the same line), Fast paints with a trained
// network at once. It uses only the JSON API that /docs describes, nothing else.

import { $, FINISHED, api, picked, showError } from "./common.js";
import { fastControls, loadModels, paintFast } from "./fast.js";
import { loadHistory } from "./history.js";
import { brushControls, maskParts, syncMask } from "./mask.js";
import { addSamples, dropZone, onPicked } from "./pictures.js";
import { fillSettings, varySpecs } from "./settings.js";
import { cancelWatched, stopWatching, watch } from "./watch.js";

const START = { stylize: "Start", compare: "Start grid", fast: "Paint" };
let mode = "stylize";

function updateStart() {
  const ready = mode === "fast" ? picked.content && $("#model").value : picked.content && picked.styles.length;
  $("#start").disabled = !ready;
}

function setMode(next) {
  mode = next;
  document.body.dataset.mode = next;
  for (const node of document.querySelectorAll("#modes button")) node.classList.toggle("active", node.dataset.mode === next);
  $("#style-pick").hidden = next === "fast";
  $("#settings").hidden = next === "fast";
  $("#vary").hidden = next !== "compare";
  $("#fast-settings").hidden = next !== "fast";
  $("#bar").hidden = next === "fast"; // a fast picture has no steps to follow
  $("#plot").hidden = next === "fast";
  $("#start").textContent = START[next];
  $("#run-title").textContent = { stylize: "3 · Painting", compare: "3 · Grid", fast: "3 · Result" }[next];
  updateStart();
}

async function start() {
  if (mode === "fast") return paintFast();
  showError("");
  $("#start").disabled = true;
  const form = new FormData($("#settings"));
  form.append("content", picked.content, picked.content.name);
  for (const style of picked.styles) form.append("styles", style, style.name);
  if (mode === "compare") for (const spec of varySpecs()) form.append("vary", spec);
  try {
    for (const [field, blob] of await maskParts()) form.append(field, blob, `${field}.png`);
    const job = await api(mode === "compare" ? "/api/compare" : "/api/jobs", { method: "POST", body: form });
    watch(job.id);
    loadHistory();
  } catch (error) {
    showError(error.message);
  } finally {
    updateStart();
  }
}

async function init() {
  dropZone($("#content-drop"), $("#content-input"), "content");
  dropZone($("#style-drop"), $("#style-input"), "style");
  brushControls();
  onPicked((role) => {
    syncMask();
    updateStart();
    if (mode === "fast" && role === "content") paintFast();
  });
  for (const node of document.querySelectorAll("#modes button")) {
    node.addEventListener("click", () => {
      if (node.dataset.mode === "fast") stopWatching();
      setMode(node.dataset.mode);
    });
  }
  fastControls(() => mode === "fast");
  $("#start").addEventListener("click", start);
  $("#cancel").addEventListener("click", cancelWatched);
  try {
    const config = await api("/api/config");
    fillSettings(config);
    addSamples(config.samples);
    await loadModels();
  } catch (error) {
    showError(`cannot reach the server: ${error.message}`);
    return;
  }
  setMode("stylize");
  const active = (await loadHistory()).find((job) => !FINISHED.includes(job.status));
  if (active) watch(active.id);
  document.body.dataset.ready = "true";
}

init();
