// The submit form: the server validates (POST /jobs?dry_run=true) and its 422 errors land next to
// their fields, so the page never re-implements the hyperparameter rules.
import { ApiError, AuthRequired, json, readJson, request } from "./api.js";
import { byTestId, h } from "./dom.js";

const CHECK_DELAY_MS = 400;

function valueOf(field) {
  const raw = field.value.trim();
  if (raw === "") return undefined;
  if (field.dataset.type === "int" || field.dataset.type === "float") {
    // Anything that is not a number goes as typed, so the server's message explains what is wrong.
    const number = Number(raw);
    return Number.isFinite(number) ? number : raw;
  }
  return raw;
}

function readForm(form) {
  const body = { hyperparameters: {} };
  for (const field of form.querySelectorAll("[name]")) {
    const value = valueOf(field);
    if (value === undefined) continue;
    if (field.dataset.scope === "job") body[field.name] = value;
    else body.hyperparameters[field.name] = value;
  }
  return body;
}

// ["body", "hyperparameters", "learning_rate"] -> "learning_rate"; ["body", "name"] -> "name".
export function fieldOf(loc) {
  if (loc[0] !== "body") return null;
  if (loc[1] === "hyperparameters") return loc.length >= 3 ? String(loc[2]) : null;
  return loc.length === 2 ? String(loc[1]) : null;
}

function cleanMessage(message) {
  return message.replace(/^Value error, /, "");
}

export function setupForm(form, { onSubmitted }) {
  const formErrors = byTestId("form-errors", form);
  const submit = form.querySelector("button[type=submit]");
  let checks = 0;

  function showErrors(detail) {
    for (const error of form.querySelectorAll(".field-error")) error.textContent = "";
    for (const field of form.querySelectorAll("[name]")) field.removeAttribute("aria-invalid");
    const general = [];
    for (const item of Array.isArray(detail) ? detail : []) {
      const name = fieldOf(item.loc);
      const field = name === null ? null : form.querySelector(`[name="${CSS.escape(name)}"]`);
      if (field === null) {
        general.push(cleanMessage(item.msg));
        continue;
      }
      field.setAttribute("aria-invalid", "true");
      const error = field.closest(".field").querySelector(".field-error");
      error.textContent = [error.textContent, cleanMessage(item.msg)].filter(Boolean).join("; ");
    }
    if (typeof detail === "string") general.push(detail);
    formErrors.replaceChildren(...general.map((message) => h("li", { text: message })));
  }

  // True when the server accepts the form as it is now; only the latest check may show its errors.
  async function check() {
    const mine = ++checks;
    const response = await request("/jobs?dry_run=true", { method: "POST", body: readForm(form) });
    const payload = await readJson(response);
    if (mine !== checks) return false;
    if (response.ok) showErrors([]);
    else showErrors(payload.detail ?? `the server answered ${response.status}`);
    return response.ok;
  }

  function guarded(action) {
    return async (...args) => {
      try {
        await action(...args);
      } catch (error) {
        if (!(error instanceof AuthRequired)) showErrors(error.message);
      }
    };
  }

  let timer = null;
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(guarded(check), CHECK_DELAY_MS);
  });
  form.addEventListener("change", () => {
    clearTimeout(timer);
    guarded(check)();
  });
  form.addEventListener(
    "submit",
    guarded(async (event) => {
      event.preventDefault();
      clearTimeout(timer);
      submit.disabled = true;
      try {
        if (!(await check())) return;
        const response = await request("/jobs", { method: "POST", body: readForm(form) });
        const payload = await readJson(response);
        if (!response.ok) throw new ApiError(response.status, payload.detail);
        onSubmitted(payload);
      } catch (error) {
        if (error instanceof ApiError && Array.isArray(error.detail)) showErrors(error.detail);
        else throw error;
      } finally {
        submit.disabled = false;
      }
    }),
  );
}

// The defaults come from the server (a dry run of an empty request), so the page cannot drift from them.
export async function loadDefaults(form) {
  const resolved = await json("/jobs?dry_run=true", { method: "POST", body: {} });
  for (const field of form.querySelectorAll("[name]")) {
    const value = field.dataset.scope === "job" ? resolved[field.name] : resolved.hyperparameters[field.name];
    if (value === null || value === undefined) continue;
    if (field.tagName === "SELECT") {
      field.querySelector('option[value=""]').textContent = `default (${value})`;
    } else {
      field.placeholder = String(value);
    }
  }
}
