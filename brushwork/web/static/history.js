// The server's history: every job, newest first. Opening one shows it and puts its
// settings, pictures and mask back into the form and the brush; Re-run repeats it exactly
// (the job's own settings and stored pictures); Edit and run opens it with the focus on the
// settings, for a new job from there; Retry and Delete do what they say.

import { FINISHED, RETRYABLE, api, button, element, showError } from "./common.js";
import { stopWatching, watch, watchedId } from "./watch.js";

async function act(action) {
  showError("");
  try {
    await action();
  } catch (error) {
    showError(error.message);
  }
  loadHistory();
}

// Ask the page to open `job` (app.js puts it back into the form; `edit`: focus the settings).
const open = (job, edit) => document.dispatchEvent(new CustomEvent("open-job", { detail: { job, edit } }));

function actions(job) {
  const items = [];
  const name = `${job.kind === "compare" ? "grid" : "job"} of ${job.inputs.content}`;
  const labelled = (node, text) => {
    node.setAttribute("aria-label", `${text} the ${name}`);
    return node;
  };
  if (RETRYABLE.includes(job.status)) {
    items.push(labelled(button("Retry", "run it again as it was asked for", () => act(async () => {
      await api(`/api/jobs/${job.id}/retry`, { method: "POST" });
      watch(job.id);
    })), "Retry"));
  }
  if (job.video && job.status === "done") {
    const link = element("a", { className: "button", href: `/api/jobs/${job.id}/result.mp4`, textContent: "MP4",
      download: `brushwork-${job.id.slice(0, 8)}.mp4` });
    items.push(labelled(link, "Download the MP4 video of"));
  }
  if (FINISHED.includes(job.status) && job.kind !== "fast-video") {
    items.push(labelled(button("Re-run", "a new job exactly like this one: its settings, pictures and mask",
      () => act(async () => {
        const fresh = await api(`/api/jobs/${job.id}/rerun`, { method: "POST" });
        watch(fresh.id);
      })), "Re-run"));
  }
  if (!job.video) items.push(labelled(button("Edit and run", "its settings and pictures back in the form, to change and start",
    () => open(job, true)), "Edit and run"));
  if (job.status !== "running") {
    items.push(labelled(button("Delete", "delete the job and its files", () => act(async () => {
      await api(`/api/jobs/${job.id}`, { method: "DELETE" });
      if (watchedId() === job.id) stopWatching();
    })), "Delete"));
  }
  return element("div", { className: "actions" }, items);
}

// The masks the job was asked with, small over its picture: the overall one, else each style's region.
function masks(job) {
  const { mask, style_masks: regions, styles } = job.inputs;
  const names = mask ? ["mask.png"] : regions ? styles.map((_, i) => `style/${i}/mask.png`) : [];
  return element("span", { className: "masks" }, names.map((name) => element("img", {
    src: `/api/jobs/${job.id}/${name}`, alt: "", title: "mask: white where the style went" })));
}

function historyItem(job) {
  const when = new Date(job.created * 1000).toLocaleString();
  const grid = job.kind === "compare";
  const sheet = grid && job.reports.find((name) => name.endsWith(".png"));
  const picture = job.status === "done"
    ? element("img", { src: grid ? `/api/jobs/${job.id}/reports/${sheet}` : `/api/jobs/${job.id}/result.jpg`, alt: "" })
    : element("span", { className: "placeholder", textContent: job.status === "queued" ? `#${job.position}` : job.status });
  const what = grid ? `grid ${job.vary.join(" · ")}`
    : job.kind === "fast-video" ? `video, ${job.frames} frames, fast ${job.settings.model || "your painting"}, ${job.settings.size}px`
      : `${job.video ? `video, ${job.frames} frames, ` : ""}${job.settings.size}px, ${job.settings.steps} steps`;
  const styles = job.inputs.styles.length ? ` × ${job.inputs.styles.join(", ")}` : "";
  const text = `${job.inputs.content}${styles} · ${what} · ${job.status}`;
  // Named by what it shows, behind a hidden "Open": a label of its own would leave out the
  // placeholder's words (a job's status or queue place) and no longer match what is seen.
  const card = element("button", { type: "button", title: when, className: "open" },
    [element("span", { className: "visually-hidden", textContent: "Open " }), picture, masks(job),
      element("span", { textContent: text })]);
  card.addEventListener("click", () => open(job, false));
  return element("li", { className: job.status, id: `job-${job.id}` }, [card, actions(job)]);
}

export async function loadHistory() {
  try {
    const { jobs } = await api("/api/jobs");
    document.querySelector("#history").replaceChildren(...jobs.map(historyItem));
    return jobs;
  } catch (error) {
    showError(error.message);
    return [];
  }
}

document.addEventListener("jobs-changed", loadHistory);
