// The brushwork page: three modes over one set of pictures. Paint queues a stylization,
// Compare queues a grid of them (one job in the same line), Fast paints at once with a
// trained network or with the picked paintings ("your painting"). It uses only the JSON API
// that /docs describes, nothing else. The page reads top to bottom in the order of the
// steps, and every action has a key-reachable control.

import { $, FINISHED, api, isVideo, picked, showError } from "./common.js";
import { anyStyle, fastControls, loadModels, paintFast, paintFastVideo } from "./fast.js";
import { loadHistory } from "./history.js";
import { brushControls, maskParts, syncMask } from "./mask.js";
import { addSamples, dropZone, onPicked, setLimits } from "./pictures.js";
import { previewControls, previewWhenReady } from "./preview.js";
import { reopen } from "./reopen.js";
import { fillSettings, settingsProblem, varySpecs } from "./settings.js";
import { cancelWatched, stopWatching, watch } from "./watch.js";

const START = { stylize: "Start", compare: "Start grid", fast: "Paint" };
let mode = "stylize";

// What still stands between the user and Start, or "" when nothing does.
function missing() {
  if (!picked.content) return "Pick a content photo.";
  if (mode === "fast" && anyStyle()) return picked.styles.length ? "" : "Pick at least one style image for “Your painting”.";
  if (mode === "fast") return $("#model").value ? "" : "No fast-mode model is usable.";
  if (mode === "compare" && isVideo(picked.content)) return "A video is painted in Paint or Fast, not in a grid.";
  if (!picked.styles.length) return "Pick at least one style image.";
  return settingsProblem(mode === "compare");
}

function updateStart() {
  const why = missing();
  $("#start").disabled = Boolean(why);
  $("#preview-button").disabled = Boolean(why) || mode === "fast";
  $("#start-hint").textContent = why || `Ready: press ${START[mode]}.`;
  previewWhenReady(!why && mode === "stylize");
}

// The style box: every mode's but Fast's, where it shows only while "your painting" is chosen.
function showStylePick() {
  $("#style-pick").hidden = mode === "fast" && !anyStyle();
}

function setMode(next) {
  mode = next;
  document.body.dataset.mode = next;
  for (const node of document.querySelectorAll("#modes button")) node.setAttribute("aria-pressed", String(node.dataset.mode === next));
  showStylePick();
  $("#settings").hidden = next === "fast";
  $("#vary").hidden = next !== "compare";
  $("#fast-settings").hidden = next !== "fast";
  if (next === "fast") $("#bar").hidden = $("#plot-box").hidden = true; // a fast picture has no steps to follow
  $("#start").textContent = START[next];
  $("#run-title").textContent = { stylize: "3 · Painting", compare: "3 · Grid", fast: "3 · Result" }[next];
  updateStart();
}

// The form's style regions: none, or one per style (white, all of it, where none was picked).
async function regionParts() {
  if (!picked.styles.some((style) => picked.regions.has(style))) return [];
  const white = await new Promise((resolve) => {
    const canvas = Object.assign(document.createElement("canvas"), { width: 1, height: 1 });
    Object.assign(canvas.getContext("2d"), { fillStyle: "#fff" }).fillRect(0, 0, 1, 1);
    canvas.toBlob(resolve, "image/png");
  });
  return picked.styles.map((style) => ["style_regions", picked.regions.get(style) || white]);
}

async function start() {
  if (mode === "fast") return isVideo(picked.content) ? paintFastVideo() : paintFast();
  showError("");
  $("#start").disabled = true;
  const form = new FormData($("#settings"));
  form.append("content", picked.content, picked.content.name);
  for (const style of picked.styles) form.append("styles", style, style.name);
  if (mode === "compare") for (const spec of varySpecs()) form.append("vary", spec);
  try {
    const masks = isVideo(picked.content) ? [] : [...await maskParts(), ...await regionParts()]; // a video is painted whole
    for (const [field, blob] of masks) form.append(field, blob, `${field}.png`);
    const job = await api(mode === "compare" ? "/api/compare" : "/api/jobs", { method: "POST", body: form });
    watch(job.id);
    loadHistory();
  } catch (error) {
    showError(error.message);
  } finally {
    updateStart();
  }
}

// A history job: shown, and its settings, pictures and masks back in the form and the brush.
async function openJob({ job, edit }) {
  showError("");
  if (job.video) { // a video job is shown; its video is not put back into the form
    setMode(job.kind === "fast-video" ? "fast" : "stylize");
    watch(job.id);
    return;
  }
  if (job.kind !== mode) setMode(job.kind);
  try {
    await reopen(job);
  } catch (error) {
    showError(`cannot open the job: ${error.message}`);
  }
  if (edit) $(mode === "compare" ? "#vary-1-values" : "#settings [name]").focus();
  else watch(job.id);
  updateStart();
  document.body.dataset.opened = job.id; // the form holds that job now
}

function wire() {
  dropZone($("#content-drop"), $("#content-input"), "content");
  dropZone($("#style-drop"), $("#style-input"), "style");
  brushControls();
  onPicked((role) => {
    syncMask();
    updateStart();
    if (mode === "fast" && (role === "content" || anyStyle())) paintFast();
  });
  for (const node of document.querySelectorAll("#modes button")) {
    node.addEventListener("click", () => {
      if (node.dataset.mode === "fast") stopWatching();
      setMode(node.dataset.mode);
      if (mode === "fast" && picked.content) paintFast(); // the photo picked already: paint it at once
    });
  }
  fastControls(() => mode === "fast");
  $("#model").addEventListener("change", () => {
    showStylePick();
    updateStart();
  });
  for (const id of ["#settings", "#vary"]) $(id).addEventListener("input", updateStart);
  $("#vary").addEventListener("change", updateStart);
  $("#start").addEventListener("click", start);
  $("#cancel").addEventListener("click", cancelWatched);
  document.addEventListener("open-job", (event) => openJob(event.detail));
}

async function init() {
  wire();
  try {
    const config = await api("/api/config");
    setLimits(config.limits);
    previewControls(config.features);
    fillSettings(config);
    addSamples(config.samples);
    await loadModels(config.unavailable && config.unavailable.any_style);
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
