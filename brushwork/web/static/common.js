// What every part of the page shares: the JSON API, errors, formatting, making elements,
// and the pictures picked so far. The page uses only the API that /docs describes.

export const $ = (selector) => document.querySelector(selector);
export const FINISHED = ["done", "failed", "cancelled", "interrupted"];
export const RETRYABLE = ["interrupted", "failed", "cancelled"];

// File objects (uploads, fetched samples or a history job's stored pictures); `regions` maps
// a style File to the picture of which part of it counts (style regions, optional).
export const picked = { content: null, styles: [], regions: new Map() };

// Whether a picked file is a video: the server, like this page, goes by its name's suffix.
export const isVideo = (file) => Boolean(file) && /\.(mp4|mkv|mov|avi|webm|m4v)$/i.test(file.name);

// The answer as JSON, or an Error carrying the server's {"error": message}.
export async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: fall back on the HTTP status below
  }
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

// A stored picture of the server's as a File, as if it had been picked.
export async function fetchFile(url, name) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot load ${name}: ${response.status}`);
  const blob = await response.blob();
  return new File([blob], name, { type: blob.type });
}

// A status line, shown and said aloud (the step-by-step progress is only shown).
export function say(text) {
  $("#status").textContent = text;
  $("#announce").textContent = text;
}

export function showError(message) {
  $("#error").textContent = message || "";
  $("#error").hidden = !message;
}

// A problem with one input, shown next to it (and tied to it for screen readers).
export function showProblem(id, message, input) {
  $(`#${id}`).textContent = message || "";
  $(`#${id}`).hidden = !message;
  if (input) input.setAttribute("aria-invalid", message ? "true" : "false");
}

export const number = (x) => (x == null ? "–" : Number(x).toPrecision(3));
export const clock = (seconds) => `${Math.floor(seconds / 60)}:${String(Math.round(seconds % 60)).padStart(2, "0")}`;

export function element(tag, properties = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, properties);
  node.append(...children);
  return node;
}

export function button(text, description, onClick) {
  const node = element("button", { type: "button", textContent: text, title: description });
  node.addEventListener("click", onClick);
  return node;
}
