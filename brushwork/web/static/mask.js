// The brush: paint on the photo where the style goes (one colour per style when there are
// several), or load a mask picture; a blank painting means the style goes everywhere. The
// painting is one canvas per style whose alpha is that style's region, at most WORK_SIDE px
// (a brush on a full-size canvas of a 12 MP photo lags), and it is sent with the job as
// grayscale PNGs at the photo's resolution (white: style, black: the photo). Without a
// pointer, the buttons do it: Paint all, Invert, Clear, or a mask file.

import { $, element, picked, showProblem } from "./common.js";
import { problem } from "./pictures.js";

const FEATHER = 0.06; // the soft edge of the brush: its blur, as a fraction of its width
const STAGE_HEIGHT = 360; // px on screen: the most the photo takes of the page's height
const WORK_SIDE = 1024; // the painting's longest side: finer than the stage on any screen
let layers = []; // one canvas per style
let owners = []; // the style File each canvas paints for, in the same order
let active = 0; // the style being painted
let last = null; // the previous point of the stroke under way
let photo = null; // the File on the stage
let loaded = Promise.resolve(); // settles once the photo on the stage has its painting
let settle = () => {};

const colour = (index) => `hsl(${(index * 137 + 210) % 360} 100% 50%)`; // blue first: rare in photos
const pen = (layer) => layer.getContext("2d", { willReadFrequently: true });

function newLayer() {
  const { naturalWidth: width, naturalHeight: height } = $("#mask-photo");
  const scale = Math.min(1, WORK_SIDE / Math.max(width, height));
  return element("canvas", { width: Math.round(width * scale), height: Math.round(height * scale) });
}

function renderTools() {
  $("#mask-stage").replaceChildren($("#mask-photo"), ...layers);
  $("#mask-styles").hidden = layers.length < 2;
  $("#mask-styles").replaceChildren(...layers.map((_, i) => {
    const swatch = element("button", { type: "button", textContent: `style ${i + 1}`, title: "paint its region" });
    swatch.style.borderColor = colour(i);
    swatch.setAttribute("aria-pressed", String(i === active));
    swatch.addEventListener("click", () => {
      active = i;
      renderTools();
      $("#mask-styles").children[i].focus();
    });
    return swatch;
  }));
}

// The share of the photo each style paints, said aloud (the painting is not visible to all).
function report() {
  const shares = layers.map((layer) => {
    const rgba = pen(layer).getImageData(0, 0, layer.width, layer.height).data;
    let painted = 0;
    for (let i = 3; i < rgba.length; i += 4) painted += rgba[i];
    return Math.round((100 * painted) / 255 / (layer.width * layer.height));
  });
  $("#mask-state").textContent = shares.every((share) => share === 0)
    ? "Nothing painted: the style goes everywhere."
    : shares.map((share, i) => `${layers.length > 1 ? `Style ${i + 1}` : "The style"} covers ${share}%`).join(", ") +
      " of the photo.";
}

// Resolves when the photo now picked is on the stage with its painting (for a history job's masks).
export const maskReady = () => loaded;

// A new photo starts a blank painting; a change of styles keeps the regions painted so far.
export function syncMask() {
  if (picked.content !== photo) {
    photo = picked.content;
    layers = [];
    owners = [];
    loaded = new Promise((resolve) => { settle = resolve; });
    $("#mask-editor").hidden = true; // until the photo loads: a file the browser cannot show gets no brush
    $("#mask-photo").src = URL.createObjectURL(photo);
    return;
  }
  const styles = picked.styles.length ? picked.styles : [null]; // null: painted before a style is picked
  if (!$("#mask-photo").naturalWidth || styles.every((file, i) => owners[i] === file) && layers.length === styles.length) return;
  // Each painting belongs to its style: removing a style drops its own region, not the last one.
  const kept = new Map(owners.map((file, i) => [file, layers[i]]));
  layers = styles.map((file, i) => kept.get(file) || (owners[i] === null ? layers[i] : null) || newLayer());
  owners = styles.slice();
  active = Math.min(active, layers.length - 1);
  renderTools();
}

function point(event) {
  const box = $("#mask-stage").getBoundingClientRect();
  const scale = layers[0].width / box.width;
  return [(event.clientX - box.left) * scale, (event.clientY - box.top) * scale, scale];
}

// Paint the active style's region along a segment (taking it from the others), or erase all.
function stroke(from, to) {
  const width = $("#brush-size").value * to[2];
  const erasing = $("#brush-erase").checked;
  layers.forEach((layer, i) => {
    const context = pen(layer);
    Object.assign(context, {
      globalCompositeOperation: !erasing && i === active ? "source-over" : "destination-out",
      strokeStyle: colour(i), lineWidth: width, lineCap: "round", filter: `blur(${width * FEATHER}px)`,
    });
    context.beginPath();
    context.moveTo(from[0], from[1]);
    context.lineTo(to[0], to[1]);
    context.stroke();
  });
}

function invert() {
  const layer = layers[active];
  const context = pen(layer);
  Object.assign(context, { globalCompositeOperation: "xor", fillStyle: colour(active), filter: "none" });
  context.fillRect(0, 0, layer.width, layer.height);
}

// The whole photo to the active style (taken from the others).
function paintAll() {
  layers.forEach((layer, i) => {
    const context = pen(layer);
    context.clearRect(0, 0, layer.width, layer.height);
    if (i !== active) return;
    Object.assign(context, { globalCompositeOperation: "source-over", fillStyle: colour(i), filter: "none" });
    context.fillRect(0, 0, layer.width, layer.height);
  });
}

// A mask picture (any size; stretched to the photo's) becomes the region of style `index`.
export async function loadMask(file, index = active) {
  const layer = layers[index];
  const { width, height } = layer;
  const scratch = pen(element("canvas", { width, height }));
  scratch.drawImage(await createImageBitmap(file), 0, 0, width, height);
  const gray = scratch.getImageData(0, 0, width, height).data;
  const context = pen(layer);
  Object.assign(context, { globalCompositeOperation: "copy", fillStyle: colour(index), filter: "none" });
  context.fillRect(0, 0, width, height);
  const painted = context.getImageData(0, 0, width, height);
  for (let i = 0; i < gray.length; i += 4) {
    painted.data[i + 3] = 0.299 * gray[i] + 0.587 * gray[i + 1] + 0.114 * gray[i + 2]; // luminance, as the engine reads it
  }
  context.putImageData(painted, 0, 0);
  report();
}

// A layer's alpha at the photo's size (smoothly enlarged).
function alphaOf(layer, width, height) {
  const context = pen(element("canvas", { width, height }));
  context.drawImage(layer, 0, 0, width, height);
  const rgba = context.getImageData(0, 0, width, height).data;
  const alpha = new Uint8ClampedArray(rgba.length / 4);
  for (let i = 0; i < alpha.length; i++) alpha[i] = rgba[4 * i + 3];
  return alpha;
}

function png(values, width, height) {
  const canvas = element("canvas", { width, height });
  const pixels = new ImageData(width, height);
  for (let i = 0; i < values.length; i++) pixels.data.fill(values[i], 4 * i, 4 * i + 3);
  for (let i = 3; i < pixels.data.length; i += 4) pixels.data[i] = 255;
  pen(canvas).putImageData(pixels, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// The form's mask parts: none for a blank painting; else the one style's `mask`, or with
// several styles their `style_masks`, one per style in order (what no region covers is kept).
export async function maskParts() {
  const { naturalWidth: width, naturalHeight: height } = $("#mask-photo");
  const alphas = layers.map((layer) => alphaOf(layer, width, height));
  if (!alphas.some((alpha) => alpha.some((v) => v > 0))) return [];
  const field = alphas.length > 1 ? "style_masks" : "mask";
  return Promise.all(alphas.map(async (alpha) => [field, await png(alpha, width, height)]));
}

export function brushControls() {
  const stage = $("#mask-stage");
  $("#mask-photo").addEventListener("load", () => {
    const { naturalWidth: width, naturalHeight: height } = $("#mask-photo");
    stage.style.width = `min(100%, ${(STAGE_HEIGHT * width) / height}px)`; // the whole photo in view
    $("#mask-editor").hidden = false;
    layers = [];
    owners = [];
    syncMask();
    report();
    settle();
  });
  stage.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    last = point(event);
    stroke(last, last);
  });
  stage.addEventListener("pointermove", (event) => {
    if (!last) return;
    const next = point(event);
    stroke(last, next);
    last = next;
  });
  for (const type of ["pointerup", "pointerleave", "pointercancel"]) {
    stage.addEventListener(type, () => {
      if (last) report();
      last = null;
    });
  }
  const action = (id, run) => $(id).addEventListener("click", () => { run(); report(); });
  action("#mask-clear", () => layers.forEach((layer) => pen(layer).clearRect(0, 0, layer.width, layer.height)));
  action("#mask-invert", invert);
  action("#mask-all", paintAll);
  $("#mask-input").addEventListener("change", async () => {
    const [file] = $("#mask-input").files;
    $("#mask-input").value = "";
    if (!file) return;
    const why = await problem(file);
    showProblem("mask-problem", why, $("#mask-input"));
    if (!why) await loadMask(file);
  });
}
