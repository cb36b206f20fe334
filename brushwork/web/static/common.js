// What every part of the page shares: the JSON API, errors, formatting, making elements,
// and the pictures picked so far. The page uses only the API that /docs describes.

export const $ = (selector) => document.querySelector(selector);
export const FINISHED = ["done", "failed", "cancelled", "interrupted"];
export const RETRYABLE = ["interrupted", "failed", "cancelled"];

export const picked = { content: null, styles: [] }; // File objects, uploads or fetched samples

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

export function showError(message) {
  $("#error").textContent = message || "";
  $("#error").hidden = !message;
}

export const number = (x) => (x == null ? "–" : Number(x).toPrecision(3));
export const clock = (seconds) => `${Math.floor(seconds / 60)}:${String(Math.round(seconds % 60)).padStart(2, "0")}`;

export function element(tag, properties = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, properties);
  node.append(...children);
  return node;
}

export function button(text, title, onClick) {
  const node = element("button", { type: "button", textContent: text, title });
  node.addEventListener("click", onClick);
  return node;
}
