// The settings form and the compare grid's axes, both built from the server's table of
// settings (/api/config), so the page never keeps a copy of them. A history job's settings
// and axes can be put back into them.

import { $, element, showProblem } from "./common.js";

let settings = []; // the text settings, as /api/config describes them

function settingInput(setting) {
  const properties = { id: setting.field, name: setting.field, title: setting.help };
  if (setting.kind === "choice") {
    const choices = setting.choices.map((choice) =>
      element("option", { value: choice, textContent: choice, title: setting.choice_help[choice] || "" }));
    return element("select", properties, choices);
  }
  if (setting.kind === "text") return element("input", { ...properties, type: "text" });
  const input = element("input", { ...properties, type: "number", step: setting.kind === "int" ? "1" : "any",
    required: true });
  if (setting.bounds) [input.min, input.max] = setting.bounds;
  return input;
}

const label = (field) => {
  const name = field.replaceAll("_", " ");
  return name[0].toUpperCase() + name.slice(1);
};

// The form's fields; settings that are pictures (style regions) are asked for with each style.
export function fillSettings(config) {
  settings = config.settings.filter((setting) => setting.kind !== "files");
  $("#settings").replaceChildren(...settings.map((setting) => {
    const input = settingInput(setting);
    input.value = setting.default;
    return element("label", {}, [label(setting.field), input]);
  }));
  fillVary();
}

// A job's settings back in the form (those the form has).
export function setSettings(values) {
  for (const setting of settings) {
    if (setting.field in values && values[setting.field] != null) $(`#${setting.field}`).value = values[setting.field];
  }
}

// An example of values to vary, from the setting's own choices or default.
function example(setting) {
  if (setting.kind === "choice") return setting.choices.slice(0, 3).join(",");
  return [setting.default, setting.default * 2 || 1].join(",");
}

function fillVary() {
  for (const [index, select] of [["1", $("#vary-1-field")], ["2", $("#vary-2-field")]]) {
    const none = index === "2" ? [element("option", { value: "", textContent: "—" })] : [];
    select.replaceChildren(...none, ...settings.map((s) => element("option", { value: s.field, textContent: label(s.field) })));
    const values = $(`#vary-${index}-values`);
    const hint = () => {
      const setting = settings.find((s) => s.field === select.value);
      values.placeholder = setting ? `e.g. ${example(setting)}` : "";
      values.disabled = !setting;
    };
    select.addEventListener("change", hint);
    hint();
  }
  $("#vary-1-field").value = settings.some((s) => s.field === "style_weight") ? "style_weight" : settings[0].field;
  $("#vary-1-field").dispatchEvent(new Event("change"));
}

// A grid job's axes ("field=v1,v2") back in the vary rows.
export function setVary(specs) {
  ["1", "2"].forEach((i, n) => {
    const [field, values] = (specs[n] || "").split("=");
    $(`#vary-${i}-field`).value = field || (i === "2" ? "" : $(`#vary-${i}-field`).value);
    $(`#vary-${i}-field`).dispatchEvent(new Event("change"));
    $(`#vary-${i}-values`).value = values || "";
  });
}

// The grid's axes as the API takes them: "field=v1,v2" for each row with a setting and values.
export function varySpecs() {
  return ["1", "2"]
    .map((i) => [$(`#vary-${i}-field`).value, $(`#vary-${i}-values`).value.trim()])
    .filter(([field, values]) => field && values)
    .map(([field, values]) => `${field}=${values}`);
}

// What is wrong with the settings, or "" (the number fields' own limits; a grid needs an axis).
export function settingsProblem(compare) {
  const bad = [...$("#settings").elements].find((input) => !input.checkValidity());
  for (const input of $("#settings").elements) input.setAttribute("aria-invalid", String(!input.checkValidity()));
  const noAxis = compare && !varySpecs().length ? "Give values to vary, e.g. 1,5,20." : "";
  showProblem("vary-problem", noAxis, $("#vary-1-values"));
  if (bad) return `${label(bad.name)}: ${bad.validationMessage}`;
  return noAxis;
}
