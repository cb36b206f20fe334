// The server's history: every job, newest first, to open again, retry, re-run with the
// form's current settings, or delete with its files.

import { $, FINISHED, RETRYABLE, api, button, element, showError } from "./common.js";
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

function actions(job) {
  const items = [];
  if (RETRYABLE.includes(job.status)) {
    items.push(button("Retry", "run it again as it was asked for", () => act(async () => {
      await api(`/api/jobs/${job.id}/retry`, { method: "POST" });
      watch(job.id);
    })));
  }
  if (FINISHED.includes(job.status)) {
    items.push(button("Re-run", "a new job on the same pictures with the settings above", () => act(async () => {
      const fresh = await api(`/api/jobs/${job.id}/rerun`, { method: "POST", body: new FormData($("#settings")) });
      watch(fresh.id);
    })));
  }
  if (job.status !== "running") {
    items.push(button("Delete", "delete the job and its files", () => act(async () => {
      await api(`/api/jobs/${job.id}`, { method: "DELETE" });
      if (watchedId() === job.id) stopWatching();
    })));
  }
  return element("div", { className: "actions" }, items);
}

// The masks the job was asked with, small over its picture: the overall one, else each style's region.
function masks(job) {
  const { mask, style_masks: regions, styles } = job.inputs;
  const names = mask ? ["mask.png"] : regions ? styles.map((_, i) => `style/${i}/mask.png`) : [];
  return element("span", { className: "masks" }, names.map((name) => element("img", {
    src: `/api/jobs/${job.id}/${name}`, alt: "mask", title: "mask: white where the style went" })));
}

function historyItem(job) {
  const when = new Date(job.created * 1000).toLocaleString();
  const grid = job.kind === "compare";
  const sheet = grid && job.reports.find((name) => name.endsWith(".png"));
  const picture = job.status === "done"
    ? element("img", { src: grid ? `/api/jobs/${job.id}/reports/${sheet}` : `/api/jobs/${job.id}/result.jpg`,
      alt: `result of ${job.inputs.content}` })
    : element("span", { className: "placeholder", textContent: job.status === "queued" ? `#${job.position}` : job.status });
  const what = grid ? `grid ${job.vary.join(" · ")}` : `${job.settings.size}px`;
  const caption = element("span", {
    textContent: `${job.inputs.content} × ${job.inputs.styles.join(", ")} · ${what} · ${job.status}`,
  });
  const open = element("button", { type: "button", title: when, className: "open" }, [picture, masks(job), caption]);
  open.addEventListener("click", () => watch(job.id));
  return element("li", { className: job.status, id: `job-${job.id}` }, [open, actions(job)]);
}

export async function loadHistory() {
  try {
    const { jobs } = await api("/api/jobs");
    $("#history").replaceChildren(...jobs.map(historyItem));
    return jobs;
  } catch (error) {
    showError(error.message);
    return [];
  }
}

document.addEventListener("jobs-changed", loadHistory);
