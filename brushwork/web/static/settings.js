// The settings form and the compare grid's axes, both built from the server's table of
// settings (/api/config), so the page never keeps a copy of them.

import { $, element } from "./common.js";

let settings = []; // as /api/config describes them

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

const label = (field) => {
  const name = field.replaceAll("_", " ");
  return name[0].toUpperCase() + name.slice(1);
};

export function fillSettings(config) {
  settings = config.settings;
  $("#settings").replaceChildren(...settings.map((setting) => {
    const input = settingInput(setting);
    input.value = setting.default;
    return element("label", {}, [label(setting.field), input]);
  }));
  fillVary();
}

// An example of values to vary, from the setting's own choices or default.
function example(setting) {
  if (setting.kind === "choice") return setting.choices.slice(0, 3).join(",");
  return [setting.default, setting.default * 2].join(",");
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

// The grid's axes as the API takes them: "field=v1,v2" for each row with a setting and values.
export function varySpecs() {
  return ["1", "2"]
    .map((i) => [$(`#vary-${i}-field`).value, $(`#vary-${i}-values`).value.trim()])
    .filter(([field, values]) => field && values)
    .map(([field, values]) => `${field}=${values}`);
}
