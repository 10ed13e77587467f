// The jobs list's filters and order, kept in the address (#/?name=...&tag=...&status=...&sort=...)
// so that a view can be bookmarked, shared and reloaded; and the chips that show the active ones.
import { h } from "./dom.js";

export const DEFAULT_SORT = "-created_at";
// GET /jobs's sort values, as the selector offers them.
export const SORTS = [
  ["-created_at", "Newest"],
  ["created_at", "Oldest"],
  ["-best_val_accuracy", "Best accuracy"],
  ["name", "Name"],
  ["-duration", "Longest"],
  ["duration", "Shortest"],
];
export const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];

// The list's view as last shown in this tab, which the pages' "All jobs" links go back to.
let lastView = "#/";

export function rememberView(hash) {
  lastView = hash;
}

export function listHref() {
  return lastView;
}

export function backToJobs() {
  return h("a", { href: lastView, class: "back", "data-testid": "back-to-jobs", text: "← All jobs" });
}

// The status and order selectors' options, once.
export function fillChoices(statusSelect, sortSelect) {
  statusSelect.replaceChildren(
    h("option", { value: "", text: "Any status" }),
    ...STATUSES.map((status) => h("option", { value: status, text: status })),
  );
  sortSelect.replaceChildren(...SORTS.map(([value, label]) => h("option", { value, text: label })));
}

export function emptyFilters() {
  return { name: "", tags: [], status: "", sort: DEFAULT_SORT };
}

// The filters a jobs-page address carries; unknown values are dropped, not sent to the API.
export function parseFilters(hash) {
  const filters = emptyFilters();
  const at = hash.indexOf("?");
  if (at < 0) return filters;
  const params = new URLSearchParams(hash.slice(at + 1));
  filters.name = params.get("name") ?? "";
  filters.tags = [...new Set(params.getAll("tag").filter((tag) => tag !== ""))];
  const status = params.get("status") ?? "";
  filters.status = STATUSES.includes(status) ? status : "";
  const sort = params.get("sort") ?? DEFAULT_SORT;
  filters.sort = SORTS.some(([value]) => value === sort) ? sort : DEFAULT_SORT;
  return filters;
}

function params(filters) {
  const query = new URLSearchParams();
  if (filters.name.trim() !== "") query.set("name", filters.name.trim());
  for (const tag of filters.tags) query.append("tag", tag);
  if (filters.status) query.set("status", filters.status);
  if (filters.sort !== DEFAULT_SORT) query.set("sort", filters.sort);
  return query;
}

export function filtersHash(filters) {
  const query = params(filters).toString();
  return query ? `#/?${query}` : "#/";
}

// GET /jobs's query for one page of this view.
export function jobsPath(filters, limit, cursor = null) {
  const query = params(filters);
  query.set("sort", filters.sort);
  query.set("limit", String(limit));
  if (cursor !== null) query.set("cursor", cursor);
  return `/jobs?${query}`;
}

// One removable chip per active filter; `onRemove(filters)` gets the filters without it.
export function activeFilterChips(filters, onRemove) {
  const chips = [];
  const chip = (label, without) =>
    h(
      "button",
      {
        type: "button",
        class: "chip removable",
        "data-testid": "active-filter",
        title: "Remove this filter",
        onclick: () => onRemove({ ...filters, ...without }),
      },
      h("span", { class: "chip-label", text: label }),
      h("span", { class: "chip-x", "aria-hidden": "true", text: "×" }),
    );
  if (filters.name.trim() !== "") chips.push(chip(`name: ${filters.name.trim()}`, { name: "" }));
  for (const tag of filters.tags) {
    chips.push(chip(`tag: ${tag}`, { tags: filters.tags.filter((other) => other !== tag) }));
  }
  if (filters.status) chips.push(chip(`status: ${filters.status}`, { status: "" }));
  return chips;
}
