// Following a job live over its event stream: status, progress bar, loss plot, live
// preview, and the result; for a compare grid, the grid filling cell by cell.

import { $, FINISHED, api, clock, element, number, showError } from "./common.js";
import { drawPlot, sparkline } from "./plot.js";
let watching = null; // the job on screen: {id, source (EventSource), state, preview (version shown), grid}

// Tell the rest of the page (the history) that a job changed.
const announce = () => document.dispatchEvent(new CustomEvent("jobs-changed"));

export const watchedId = () => (watching ? watching.id : null);

export function stopWatching() {
  if (watching) watching.source.close();
  watching = null;
  for (const id of ["#result", "#preview", "#grid-section", "#cancel", "#plot-box", "#bar"]) $(id).hidden = true;
}

export function watch(id) {
  stopWatching();
  $("#fast-section").hidden = true;
  $("#bar").hidden = false;
  const source = new EventSource(`/api/jobs/${id}/events`);
  watching = { id, source, state: null, preview: 0, grid: null };
  source.addEventListener("state", (event) => {
    watching.state = JSON.parse(event.data);
    render();
    announce();
  });
  source.addEventListener("progress", (event) => {
    const progress = JSON.parse(event.data);
    Object.assign(watching.state, progress, { loss: progress.record[4] });
    watching.state.losses.push(progress.record);
    render();
  });
  source.addEventListener("frame", (event) => {
    Object.assign(watching.state, JSON.parse(event.data));
    render();
  });
  source.addEventListener("group", (event) => {
    watching.state.groups.push(JSON.parse(event.data));
    render();
  });
  source.addEventListener("cell", (event) => {
    watching.state.cells.push(JSON.parse(event.data));
    render();
  });
  for (const name of ["deleted", "closing"]) source.addEventListener(name, () => source.close());
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CONNECTING) $("#status").textContent = "Connection lost; reconnecting…";
  });
}

// A video's progress: the frame under way of all, its step, the time left for the whole video.
function describeVideo(state) {
  const frames = `${state.frames} frames`;
  switch (state.status) {
    case "running": {
      const at = `Frame ${Math.min(state.frame + 1, state.frames)} of ${state.frames}`;
      const step = state.kind === "video" && state.step ? ` · step ${state.step} / ${state.total_steps}` : "";
      return `${at}${step}` + (state.eta_seconds != null ? ` · about ${clock(state.eta_seconds)} left` : "");
    }
    case "done":
      return `Done: ${frames}, ${state.width}×${state.height}, in ${clock(state.finished - state.started)}.`;
    case "cancelled":
      return `Cancelled with ${state.frame} of ${frames} painted.`;
    default:
      return null;
  }
}

function describe(state) {
  if (state.video && describeVideo(state)) return describeVideo(state);
  const grid = state.kind === "compare" ? state.grid.cells.length : 0;
  switch (state.status) {
    case "queued":
      return state.position === 1 ? "Waiting: next in line." : `Waiting: number ${state.position} in line.`;
    case "running":
      if (!state.step) return grid ? `Grid: ${state.cells.length} of ${grid} cells done; starting a run…` : "Starting (loading the network)…";
      return (grid ? `Grid: ${state.cells.length} of ${grid} cells done · ` : "") +
        `Step ${state.step} / ${state.total_steps} · loss ${number(state.loss)} · about ${clock(state.eta_seconds)} left`;
    case "done":
      if (grid) return `Done: ${grid} cells in ${clock(state.finished - state.started)}.`;
      return `Done: ${state.width}×${state.height}, ${state.step} steps in ${clock(state.elapsed)}.` +
        (state.warning ? ` Note: ${state.warning}.` : "");
    case "cancelled":
      return grid ? `Cancelled with ${state.cells.length} of ${grid} cells done.` : `Cancelled at step ${state.step}.`;
    default:
      return `${state.status[0].toUpperCase()}${state.status.slice(1)}: ${state.error}`;
  }
}

function render() {
  const state = watching.state;
  const finished = FINISHED.includes(state.status);
  $("#status").textContent = describe(state);
  const phase = `${state.id} ${state.status} ${state.cells.length} ${state.frame || 0}`;
  if (phase !== watching.phase) { // said aloud at each change of status or finished cell, not at every step
    watching.phase = phase;
    $("#announce").textContent = describe(state);
  }
  // A grid's bar counts its cells (each cell has its own bar for its steps); a picture's, its steps.
  const grid = state.kind === "compare" ? state.grid.cells.length : 0;
  // A video's bar counts its frames; its plot is left out (each frame starts a curve of its own).
  $("#bar").max = grid || (state.video ? state.frames : state.total_steps) || 1;
  $("#bar").value = state.status === "done" ? $("#bar").max : grid ? state.cells.length : state.video ? state.frame : state.step;
  $("#bar").setAttribute("aria-label", grid ? "Cells done" : state.video ? "Frames done" : "Steps done");
  $("#cancel").hidden = finished;
  $("#plot-box").hidden = Boolean(state.video) || !drawPlot($("#plot"), state.losses, state.groups);
  if (state.preview_version && state.preview_version !== watching.preview) {
    watching.preview = state.preview_version;
    $("#preview").src = `/api/jobs/${state.id}/preview?v=${state.preview_version}`;
  }
  $("#preview").hidden = !watching.preview || state.status === "done"; // once done, the result shows it
  if (state.kind === "compare") renderGrid(state);
  if (finished) {
    watching.source.close();
    if (state.status === "done" && state.kind !== "compare") showResult(state);
    if (state.status === "failed") showError(state.error);
  }
}

function showResult(state) {
  const base = `/api/jobs/${state.id}`;
  $("#result-content").src = `${base}/content.png`;
  $("#result-styles").replaceChildren(
    ...state.inputs.styles.map((name, i) => element("img", { src: `${base}/style/${i}.png`, alt: name, title: name })),
  );
  $("#result-image").src = `${base}/result.png`;
  $("#result-image").hidden = Boolean(state.video);
  $("#result-video").hidden = $("#download-mp4").hidden = !state.video;
  if (state.video) {
    Object.assign($("#result-video"), { src: `${base}/result.mp4`, poster: `${base}/result.png` });
    $("#result-video").setAttribute("aria-label", `painted video of ${state.inputs.content}, ${state.frames} frames`);
    $("#download-mp4").href = `${base}/result.mp4`;
  } else {
    $("#result-video").removeAttribute("src");
  }
  $("#result-caption").textContent = `${state.video ? "video" : "result"}, ${state.width}×${state.height}`;
  $("#download-png").href = `${base}/result.png`;
  $("#download-png").textContent = state.video ? "Download first frame (PNG)" : "Download PNG";
  $("#download-jpg").hidden = Boolean(state.video);
  $("#download-jpg").href = `${base}/result.jpg`;
  $("#result").hidden = false;
}

// The grid's table, made once per job from its axes: rows are the first axis when there are two.
function buildGrid(grid) {
  const [rows, columns] = grid.axes.length === 2 ? grid.axes : [null, grid.axes[0]];
  const head = element("tr", {}, [element("th", { textContent: rows ? `${rows.key} ↓  ${columns.key} →` : columns.key }),
    ...columns.labels.map((text) => element("th", { textContent: text }))]);
  const body = (rows ? rows.labels : [""]).map((text, r) => element("tr", {}, [
    element("th", { textContent: text }),
    ...columns.labels.map((_, c) => {
      const cell = grid.cells.find((x) => x.coords.join() === (rows ? [r, c] : [c]).join());
      const bar = element("progress", { max: 1, value: 0 });
      bar.setAttribute("aria-label", `progress of ${cell.label}`);
      return element("td", { id: `cell-${cell.index}`, className: "pending", title: cell.label }, [
        element("span", { className: "placeholder", textContent: "waiting" }), bar, sparkline()]);
    })]));
  $("#grid").replaceChildren(head, ...body);
}

function fillCell(id, cell) {
  const td = $(`#cell-${cell.index}`);
  if (!td || td.className === "done") return;
  td.className = "done";
  td.replaceChildren(
    element("img", { src: `/api/jobs/${id}/cells/${cell.index}.png`, alt: td.title }),
    element("span", { className: "scores", textContent:
      `${number(cell.seconds)} s · content ${number(cell.content_distance)} · style ${number(cell.style_distance)}` }),
  );
}

// The cells of the run under way: each its own share of the run's steps and its curve so far.
function runningCells(state) {
  const group = state.groups[state.groups.length - 1];
  if (!group || state.status !== "running") return;
  const rows = state.losses.slice(group.first);
  for (const index of group.cells) {
    const td = $(`#cell-${index}`);
    if (!td || td.className === "done") continue;
    const steps = Number(state.grid.cells[index].steps) || state.total_steps || 1;
    const done = Math.min(rows.length, steps);
    td.querySelector(".placeholder").textContent = `step ${done} / ${steps}`;
    Object.assign(td.querySelector("progress"), { max: steps, value: done });
    drawPlot(td.querySelector("svg"), rows.slice(0, done), [], false);
  }
}

function renderGrid(state) {
  $("#grid-section").hidden = false;
  if (watching.grid !== state.id) {
    buildGrid(state.grid);
    watching.grid = state.id;
  }
  runningCells(state);
  for (const cell of state.cells) fillCell(state.id, cell);
  const base = `/api/jobs/${state.id}/reports`;
  const sheet = state.reports.find((name) => name.endsWith(".png"));
  $("#grid-downloads").hidden = !(state.status === "done" && sheet);
  if (sheet) {
    $("#download-sheet").href = `${base}/${sheet}`;
    $("#download-html").href = `${base}/index.html`;
    $("#download-csv").href = `${base}/results.csv`;
  }
}

export async function cancelWatched() {
  try {
    await api(`/api/jobs/${watching.id}/cancel`, { method: "POST" });
  } catch (error) {
    showError(error.message);
  }
}
