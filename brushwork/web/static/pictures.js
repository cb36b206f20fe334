// Picking pictures: file buttons, drop zones and the server's sample pictures. Each file is
// checked when it is picked (a picture this browser reads, within the server's limits on
// bytes and pixels from /api/config) and a bad one is refused there, with the reason next
// to where it was picked, so that Start never sends what the server would refuse.

import { $, element, isVideo, picked, showError, showProblem } from "./common.js";

const MB = 1024 * 1024;
let limits = { max_upload_mb: Infinity, max_input_pixels: Infinity, max_styles: Infinity, max_video_mb: Infinity };
let changed = () => {};

// What the page does when the pictures change (check Start, paint in fast mode).
export function onPicked(callback) {
  changed = callback;
}

export function setLimits(serverLimits) {
  limits = serverLimits;
}

// A video's frame size as this browser reads it, or null where it cannot play the format
// (AVI, some MKV): the server checks those with PyAV, and its frame count, in any case.
function videoSize(file) {
  return new Promise((resolve) => {
    const video = element("video", { preload: "metadata", muted: true });
    const done = (size) => {
      URL.revokeObjectURL(video.src);
      resolve(size);
    };
    video.addEventListener("loadedmetadata", () => done({ width: video.videoWidth, height: video.videoHeight }));
    video.addEventListener("error", () => done(null));
    setTimeout(() => done(null), 5000);
    video.src = URL.createObjectURL(file);
  });
}

async function videoProblem(file) {
  if (file.size > limits.max_video_mb * MB) {
    return `${file.name} is ${(file.size / MB).toFixed(1)} MB, over the video limit of ${limits.max_video_mb} MB.`;
  }
  const size = await videoSize(file);
  if (size && size.width * size.height > limits.max_input_pixels) {
    return `${file.name} is ${size.width}×${size.height} pixels a frame, over the limit of ` +
      `${limits.max_input_pixels.toLocaleString("en")}.`;
  }
  return "";
}

// Why `file` cannot be used, or "" when it can: its bytes first, then whether it decodes,
// then its pixels. A content video is checked as a video.
export async function problem(file, role = "") {
  if (role === "content" && isVideo(file)) return videoProblem(file);
  if (file.size > limits.max_upload_mb * MB) {
    return `${file.name} is ${(file.size / MB).toFixed(1)} MB, over the limit of ${limits.max_upload_mb} MB.`;
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return `${file.name} is not a picture this page reads (PNG, JPEG, WebP, GIF or BMP).`;
  }
  const { width, height } = bitmap;
  bitmap.close();
  if (width * height > limits.max_input_pixels) {
    return `${file.name} is ${width}×${height} pixels, over the limit of ${limits.max_input_pixels.toLocaleString("en")}.`;
  }
  return "";
}

const url = (file) => URL.createObjectURL(file);

function regionPicker(file, index) {
  const input = element("input", { type: "file", accept: "image/*", className: "visually-hidden",
    id: `region-${index}` });
  input.setAttribute("aria-describedby", "style-problem");
  const has = picked.regions.has(file);
  const label = element("label", { className: "button", htmlFor: input.id,
    textContent: has ? "Region ✓" : "Region…",
    title: "optional: a grayscale picture, white over the part of this style image that counts" });
  input.setAttribute("aria-label", `${has ? "Change the" : "Choose a"} region of style ${index + 1} (optional)`);
  input.addEventListener("change", async () => {
    const [region] = input.files;
    if (!region) return;
    const why = await problem(region);
    showProblem("style-problem", why, $("#style-input"));
    if (!why) picked.regions.set(file, region);
    renderPicked("style");
  });
  return [label, input];
}

function styleItem(file, index) {
  const remove = element("button", { type: "button", textContent: "Remove" });
  remove.setAttribute("aria-label", `Remove style ${index + 1}, ${file.name}`);
  remove.addEventListener("click", () => {
    picked.styles.splice(index, 1);
    picked.regions.delete(file);
    renderPicked("style");
    $("#style-input").focus();
  });
  return element("li", {}, [element("img", { src: url(file), alt: `style ${index + 1}: ${file.name}` }), remove,
    ...regionPicker(file, index)]);
}

function contentThumb(file) {
  if (!isVideo(file)) return element("img", { src: url(file), alt: `content: ${file.name}` });
  const video = element("video", { src: url(file), muted: true, preload: "metadata" });
  video.setAttribute("aria-label", `content video: ${file.name}`);
  return video;
}

function renderPicked(role) {
  $("#content-thumbs").replaceChildren(...(picked.content ? [contentThumb(picked.content)] : []));
  $("#style-thumbs").replaceChildren(...picked.styles.map(styleItem));
  changed(role);
}

// Pictures set at once, already known to be good (a history job's own).
export function setPictures(content, styles, regions = []) {
  picked.content = content;
  picked.styles = styles;
  picked.regions = new Map(regions.map((region, i) => [styles[i], region]).filter(([, region]) => region));
  showProblem("content-problem", "", $("#content-input"));
  showProblem("style-problem", "", $("#style-input"));
  renderPicked("content");
}

async function take(role, files) {
  if (!files.length) return;
  const input = $(`#${role}-input`);
  const chosen = role === "content" ? files.slice(0, 1) : files;
  const reasons = await Promise.all(chosen.map((file) => problem(file, role)));
  const problems = reasons.filter(Boolean);
  let good = chosen.filter((_, i) => !reasons[i]);
  if (role === "style" && picked.styles.length + good.length > limits.max_styles) {
    problems.push(`At most ${limits.max_styles} style images.`);
    good = good.slice(0, Math.max(0, limits.max_styles - picked.styles.length));
  }
  showProblem(`${role}-problem`, problems.join(" "), input);
  if (role === "content" && good.length) picked.content = good[0];
  if (role === "style") picked.styles.push(...good);
  renderPicked(role);
}

export function dropZone(zone, input, role) {
  input.addEventListener("change", () => {
    take(role, [...input.files]);
    input.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    take(role, [...event.dataTransfer.files]);
  });
}

function sampleButton(sample) {
  const node = element("button", { type: "button" }, [element("img", { src: sample.url, alt: "" })]);
  node.setAttribute("aria-label", `Use the sample ${sample.role === "content" ? "photo" : "style"} ${sample.name}`);
  node.addEventListener("click", async () => {
    try {
      const response = await fetch(sample.url);
      if (!response.ok) throw new Error(`cannot load sample ${sample.name}`);
      const blob = await response.blob();
      take(sample.role, [new File([blob], sample.name, { type: blob.type })]);
    } catch (error) {
      showError(error.message);
    }
  });
  return node;
}

export function addSamples(samples) {
  for (const sample of samples) {
    $(sample.role === "content" ? "#content-samples" : "#style-samples").append(sampleButton(sample));
  }
}
