// The jobs table: searched, filtered and ordered as the address says, a page at a time ("Load
// more"), and refreshed every few seconds while it is on screen.
import { AuthRequired, json } from "./api.js";
import { compareHash } from "./compare.js";
import { age, bytes, h, percent, progressBar, shortId, statusBadge } from "./dom.js";
import { activeFilterChips, filtersHash, jobsPath, parseFilters, rememberView } from "./listfilters.js";

const REFRESH_MS = 3000;
const PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 500;
const SEARCH_DEBOUNCE_MS = 300;

// The jobs ticked for comparison, in the order they were ticked; kept across refreshes and visits.
const selected = [];

function selectBox(job, onChange) {
  return h("input", {
    type: "checkbox",
    "data-testid": "job-select",
    "aria-label": `Compare ${job.name ?? shortId(job.id)}`,
    checked: selected.includes(job.id),
    // A tick is not a click on the row, which opens the job.
    onclick: (event) => event.stopPropagation(),
    onchange: (event) => {
      const at = selected.indexOf(job.id);
      if (event.target.checked && at < 0) selected.push(job.id);
      if (!event.target.checked && at >= 0) selected.splice(at, 1);
      onChange();
    },
  });
}

function tagChips(job, onTag) {
  return job.tags.map((tag) =>
    h("button", {
      type: "button",
      class: "chip",
      "data-testid": "tag-chip",
      title: `Only jobs tagged ${tag}`,
      text: tag,
      onclick: (event) => {
        event.stopPropagation();
        onTag(tag);
      },
    }),
  );
}

function jobRow(job, onSelect, onTag) {
  const link = `#/jobs/${job.id}`;
  const total = job.hyperparameters.epochs;
  return h(
    "tr",
    {
      "data-testid": "job-row",
      "data-job-id": job.id,
      class: "clickable",
      onclick: () => {
        location.hash = link;
      },
    },
    h("td", { class: "select" }, selectBox(job, onSelect)),
    h("td", {}, h("a", { href: link, class: "mono", title: job.id, text: shortId(job.id) })),
    h("td", { class: "name", "data-testid": "job-name", text: job.name ?? "–" }),
    h("td", {}, statusBadge(job.status)),
    h("td", {}, progressBar(job.progress)),
    h("td", { class: "num", "data-testid": "job-epochs", text: `${job.current_epoch}/${total}` }),
    h("td", { class: "num", "data-testid": "job-best", text: percent(job.best_val_accuracy) }),
    h("td", { class: "tags", "data-testid": "job-tags" }, ...tagChips(job, onTag)),
    h("td", { class: "num", "data-testid": "job-disk", text: job.disk_bytes ? bytes(job.disk_bytes) : "–" }),
    h("td", { class: "age", title: job.created_at, text: age(job.created_at) }),
  );
}

export function showJobs(parts, signal) {
  const { table, notice, compareButton, search, status, sort, chips, loadMore } = parts;
  const body = table.querySelector("tbody");
  let filters = parseFilters(location.hash);
  let items = [];
  let nextCursor = null;
  // Bumped by each change of filters, so that an answer to an older view is dropped.
  let view = 0;
  let timer = null;
  let typing = null;
  signal.addEventListener("abort", () => {
    clearTimeout(timer);
    clearTimeout(typing);
  });

  function showSelection() {
    compareButton.disabled = selected.length < 2;
    compareButton.textContent = selected.length ? `Compare (${selected.length})` : "Compare";
  }
  compareButton.onclick = () => {
    location.hash = compareHash(selected);
  };
  showSelection();

  function showControls() {
    if (document.activeElement !== search) search.value = filters.name;
    status.value = filters.status;
    sort.value = filters.sort;
    chips.replaceChildren(...activeFilterChips(filters, setFilters));
  }

  function show() {
    const addTag = (tag) => {
      if (!filters.tags.includes(tag)) setFilters({ ...filters, tags: [...filters.tags, tag] });
    };
    body.replaceChildren(...items.map((job) => jobRow(job, showSelection, addTag)));
    loadMore.hidden = nextCursor === null;
    const filtered = filtersHash(filters) !== "#/";
    if (items.length > 0) notice.textContent = "";
    else notice.textContent = filtered ? "No job matches these filters." : "No jobs yet: submit one with the form.";
  }

  // One request at a time, so that a refresh and "Load more" never interleave their pages.
  let chain = Promise.resolve();
  function enqueue(step) {
    const asked = view;
    chain = chain.then(() => (asked === view && !signal.aborted ? step(asked) : null)).catch((error) => {
      // Without a key the prompt is up; the page starts over once one is given.
      if (signal.aborted || error instanceof AuthRequired || asked !== view) return;
      notice.textContent = `Could not load the jobs: ${error.message}`;
    });
  }

  // The first page again, as long as what is on screen, so a refresh keeps what "Load more" added.
  async function refresh(asked) {
    clearTimeout(timer);
    try {
      const limit = Math.min(MAX_PAGE_SIZE, Math.max(PAGE_SIZE, items.length));
      const page = await json(jobsPath(filters, limit), { signal });
      if (asked !== view || signal.aborted) return;
      items = page.items;
      nextCursor = page.next_cursor;
      show();
    } finally {
      if (asked === view && !signal.aborted) timer = setTimeout(() => enqueue(refresh), REFRESH_MS);
    }
  }

  async function more(asked) {
    if (nextCursor === null) return;
    const page = await json(jobsPath(filters, PAGE_SIZE, nextCursor), { signal });
    if (asked !== view || signal.aborted) return;
    const shown = new Set(items.map((job) => job.id));
    items = [...items, ...page.items.filter((job) => !shown.has(job.id))];
    nextCursor = page.next_cursor;
    show();
  }

  function setFilters(next) {
    filters = next;
    view += 1;
    items = [];
    nextCursor = null;
    clearTimeout(timer);
    // replaceState: the address follows the view without a hashchange, which would start the page over.
    history.replaceState(null, "", filtersHash(filters));
    rememberView(filtersHash(filters));
    showControls();
    enqueue(refresh);
  }

  search.addEventListener(
    "input",
    () => {
      clearTimeout(typing);
      typing = setTimeout(() => setFilters({ ...filters, name: search.value }), SEARCH_DEBOUNCE_MS);
    },
    { signal },
  );
  status.addEventListener("change", () => setFilters({ ...filters, status: status.value }), { signal });
  sort.addEventListener("change", () => setFilters({ ...filters, sort: sort.value }), { signal });
  loadMore.addEventListener("click", () => enqueue(more), { signal });

  search.value = filters.name;
  rememberView(filtersHash(filters));
  showControls();
  enqueue(refresh);
}
