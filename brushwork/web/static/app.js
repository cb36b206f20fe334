"use strict";
// The brushwork page. It uses only the JSON API that /docs describes, nothing else.

const $ = (selector) => document.querySelector(selector);
const SVG = "http://www.w3.org/2000/svg";
const FINISHED = ["done", "failed", "cancelled", "interrupted"];

const picked = { content: null, styles: [] }; // File objects, uploads or fetched samples
let watching = null; // the job on screen: {id, source (EventSource), state, preview (version shown)}

async function api(path, options) {
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

function showError(message) {
  $("#error").textContent = message || "";
  $("#error").hidden = !message;
}

const number = (x) => (x == null ? "–" : Number(x).toPrecision(3));
const clock = (seconds) => `${Math.floor(seconds / 60)}:${String(Math.round(seconds % 60)).padStart(2, "0")}`;

function element(tag, properties = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, properties);
  node.append(...children);
  return node;
}

// --- picking pictures ----------------------------------------------------------------------

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

function renderPicked() {
  $("#content-thumbs").replaceChildren(...(picked.content ? [thumbnail(picked.content)] : []));
  $("#style-thumbs").replaceChildren(
    ...picked.styles.map((file, i) => thumbnail(file, () => { picked.styles.splice(i, 1); renderPicked(); })),
  );
  $("#start").disabled = !(picked.content && picked.styles.length);
}

function take(role, files) {
  if (!files.length) return;
  if (role === "content") picked.content = files[0];
  else picked.styles.push(...files);
  renderPicked();
}

function dropZone(zone, input, role) {
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

function sampleButton(sample, role) {
  const button = element("button", { type: "button", title: `use ${sample.name}` }, [
    element("img", { src: sample.url, alt: sample.name }),
  ]);
  button.addEventListener("click", async () => {
    try {
      const response = await fetch(sample.url);
      if (!response.ok) throw new Error(`cannot load sample ${sample.name}`);
      const blob = await response.blob();
      take(role, [new File([blob], sample.name, { type: blob.type })]);
    } catch (error) {
      showError(error.message);
    }
  });
  return button;
}

// --- settings and start ----------------------------------------------------------------------

// One input per setting the server lists (its table of settings decides which, with their
// limits and starting values), so the page never keeps a copy of them.
function settingInput(setting) {
  const properties = { id: setting.field, name: setting.field, title: setting.help };
  if (setting.kind === "choice") {
    const choices = setting.choices.map((choice) =>
      element("option", { value: choice, textContent: choice, title: setting.choice_help[choice] || "" }));
    return element("select", properties, choices);
  }
  if (setting.kind === "text") return element("input", { ...properties, type: "text" });
  const input = element("input", { ...properties, type: "number", step: setting.kind === "int" ? "1" : "any" });
  if (setting.bounds) [input.min, input.max] = setting.bounds;
  return input;
}

function fillSettings(config) {
  $("#settings").replaceChildren(...config.settings.map((setting) => {
    const input = settingInput(setting);
    input.value = setting.default;
    const name = setting.field.replaceAll("_", " ");
    return element("label", {}, [name[0].toUpperCase() + name.slice(1), input]);
  }));
  for (const sample of config.samples) {
    $(sample.role === "content" ? "#content-samples" : "#style-samples").append(sampleButton(sample, sample.role));
  }
}

async function start() {
  showError("");
  const form = new FormData($("#settings"));
  form.append("content", picked.content, picked.content.name);
  for (const style of picked.styles) form.append("styles", style, style.name);
  $("#start").disabled = true;
  try {
    const job = await api("/api/jobs", { method: "POST", body: form });
    watch(job.id);
  } catch (error) {
    showError(error.message);
  } finally {
    renderPicked();
  }
}

// --- following a job -------------------------------------------------------------------------

function watch(id) {
  if (watching) watching.source.close();
  const source = new EventSource(`/api/jobs/${id}/events`);
  watching = { id, source, state: null, preview: 0 };
  $("#result").hidden = true;
  $("#preview").hidden = true;
  source.addEventListener("state", (event) => {
    watching.state = JSON.parse(event.data);
    render();
    loadHistory();
  });
  source.addEventListener("progress", (event) => {
    const progress = JSON.parse(event.data);
    Object.assign(watching.state, progress, { loss: progress.record[4] });
    watching.state.losses.push(progress.record);
    render();
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CONNECTING) $("#status").textContent = "Connection lost; reconnecting…";
  });
}

function describe(state) {
  switch (state.status) {
    case "queued":
      return state.position === 1 ? "Waiting: next in line." : `Waiting: number ${state.position} in line.`;
    case "running":
      if (!state.step) return "Starting (loading the network)…";
      return `Step ${state.step} / ${state.total_steps} · loss ${number(state.loss)} · about ${clock(state.eta_seconds)} left`;
    case "done":
      return `Done: ${state.width}×${state.height}, ${state.step} steps in ${clock(state.elapsed)}.` +
        (state.warning ? ` Note: ${state.warning}.` : "");
    case "cancelled":
      return `Cancelled at step ${state.step}.`;
    default:
      return `${state.status[0].toUpperCase()}${state.status.slice(1)}: ${state.error}`;
  }
}

function render() {
  const state = watching.state;
  const finished = FINISHED.includes(state.status);
  $("#status").textContent = describe(state);
  $("#bar").max = state.total_steps || 1;
  $("#bar").value = state.status === "done" ? $("#bar").max : state.step;
  $("#cancel").hidden = finished;
  drawPlot(state.losses);
  if (state.preview_version && state.preview_version !== watching.preview) {
    watching.preview = state.preview_version;
    $("#preview").src = `/api/jobs/${state.id}/preview?v=${state.preview_version}`;
  }
  $("#preview").hidden = !watching.preview || state.status === "done"; // once done, the result shows it
  if (finished) {
    watching.source.close();
    if (state.status === "done") showResult(state);
    if (state.status === "failed") showError(state.error);
  }
}

function drawPlot(losses) {
  const plot = $("#plot");
  plot.replaceChildren();
  if (losses.length < 2) return;
  const values = losses.map((record) => Math.log10(Math.max(record[4], 1e-12)));
  const low = Math.min(...values);
  const span = Math.max(...values) - low || 1;
  const points = values.map((v, i) => `${(300 * i) / (values.length - 1)},${18 + 86 * (1 - (v - low) / span)}`);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points.join(" "));
  const label = (text, x, y, anchor) => {
    const node = document.createElementNS(SVG, "text");
    Object.entries({ x, y, "text-anchor": anchor }).forEach(([k, v]) => node.setAttribute(k, v));
    node.textContent = text;
    return node;
  };
  plot.append(
    line,
    label(`loss ${number(losses[0][4])} → ${number(losses[losses.length - 1][4])} (log scale)`, 0, 11, "start"),
    label(`step ${losses.length}`, 300, 118, "end"),
  );
}

function showResult(state) {
  const base = `/api/jobs/${state.id}`;
  $("#result-content").src = `${base}/content.png`;
  $("#result-styles").replaceChildren(
    ...state.inputs.styles.map((name, i) => element("img", { src: `${base}/style/${i}.png`, alt: name, title: name })),
  );
  $("#result-image").src = `${base}/result.png`;
  $("#result-caption").textContent = `result, ${state.width}×${state.height}`;
  $("#download-png").href = `${base}/result.png`;
  $("#download-jpg").href = `${base}/result.jpg`;
  $("#result").hidden = false;
}

async function cancel() {
  try {
    await api(`/api/jobs/${watching.id}/cancel`, { method: "POST" });
  } catch (error) {
    showError(error.message);
  }
}

// --- history ---------------------------------------------------------------------------------

function historyItem(job) {
  const when = new Date(job.created * 1000).toLocaleString();
  const picture = job.status === "done"
    ? element("img", { src: `/api/jobs/${job.id}/result.jpg`, alt: `result of ${job.inputs.content}` })
    : element("span", { className: "placeholder", textContent: job.status === "queued" ? `#${job.position}` : job.status });
  const caption = element("span", {
    textContent: `${job.inputs.content} × ${job.inputs.styles.join(", ")} · ${job.settings.size}px · ${job.status}`,
  });
  const button = element("button", { type: "button", title: when }, [picture, caption]);
  button.addEventListener("click", () => watch(job.id));
  return element("li", { className: job.status }, [button]);
}

async function loadHistory() {
  try {
    const { jobs } = await api("/api/jobs");
    $("#history").replaceChildren(...jobs.map(historyItem));
    return jobs;
  } catch (error) {
    showError(error.message);
    return [];
  }
}

async function init() {
  dropZone($("#content-drop"), $("#content-input"), "content");
  dropZone($("#style-drop"), $("#style-input"), "style");
  $("#start").addEventListener("click", start);
  $("#cancel").addEventListener("click", cancel);
  try {
    fillSettings(await api("/api/config"));
  } catch (error) {
    showError(`cannot reach the server: ${error.message}`);
    return;
  }
  const active = (await loadHistory()).find((job) => !FINISHED.includes(job.status));
  if (active) watch(active.id);
  document.body.dataset.ready = "true";
}

init();
