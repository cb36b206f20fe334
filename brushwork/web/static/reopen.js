// A history job back in the form: its settings and grid axes, its stored pictures (as
// files, so that Start sends them again) and its masks painted back into the brush.

import { fetchFile } from "./common.js";
import { loadMask, maskReady } from "./mask.js";
import { setPictures } from "./pictures.js";
import { setSettings, setVary } from "./settings.js";

const load = (job, path, name) => fetchFile(`/api/jobs/${job.id}/${path}`, name);

export async function reopen(job) {
  const { content, styles, mask, style_masks: masks, style_regions: regions } = job.inputs;
  setSettings(job.settings); // at once, before any picture comes: a change typed meanwhile stays
  setVary(job.vary);
  const [photo, ...pictures] = await Promise.all([load(job, "content.png", content),
    ...styles.map((name, i) => load(job, `style/${i}.png`, name))]);
  const parts = regions ? await Promise.all(styles.map((name, i) => load(job, `style/${i}/region.png`, `region of ${name}`))) : [];
  setPictures(photo, pictures, parts);
  await maskReady();
  // The brush paints one region per style: an overall mask is each style's region (a blend there).
  for (const [i] of styles.entries()) {
    if (masks) await loadMask(await load(job, `style/${i}/mask.png`, "mask"), i);
    else if (mask) await loadMask(await load(job, "mask.png", "mask"), i);
  }
}
