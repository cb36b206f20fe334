// Picking pictures: drop zones, file pickers and the server's sample pictures.

import { $, element, picked, showError } from "./common.js";

let changed = () => {};

// What the page does when the pictures change (enable Start, paint in fast mode).
export function onPicked(callback) {
  changed = callback;
}

function thumbnail(file, remove) {
  const img = element("img", { src: URL.createObjectURL(file), alt: file.name, title: file.name });
  if (remove) {
    img.title += " (click to remove)";
    img.addEventListener("click", (event) => {
      event.preventDefault(); // do not open the file picker of the surrounding label
      remove();
    });
  }
  return img;
}

function renderPicked(role) {
  $("#content-thumbs").replaceChildren(...(picked.content ? [thumbnail(picked.content)] : []));
  $("#style-thumbs").replaceChildren(
    ...picked.styles.map((file, i) => thumbnail(file, () => { picked.styles.splice(i, 1); renderPicked("style"); })),
  );
  changed(role);
}

function take(role, files) {
  if (!files.length) return;
  if (role === "content") picked.content = files[0];
  else picked.styles.push(...files);
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
  const button = element("button", { type: "button", title: `use ${sample.name}` }, [
    element("img", { src: sample.url, alt: sample.name }),
  ]);
  button.addEventListener("click", async () => {
    try {
      const response = await fetch(sample.url);
      if (!response.ok) throw new Error(`cannot load sample ${sample.name}`);
      const blob = await response.blob();
      take(sample.role, [new File([blob], sample.name, { type: blob.type })]);
    } catch (error) {
      showError(error.message);
    }
  });
  return button;
}

export function addSamples(samples) {
  for (const sample of samples) {
    $(sample.role === "content" ? "#content-samples" : "#style-samples").append(sampleButton(sample));
  }
}
