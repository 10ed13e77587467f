// A sweep's page (#/sweeps/<id>): its jobs ranked best first as GET /sweeps/{id} gives them, each
// linked to its page, and a link comparing them all.
import { AuthRequired, json } from "./api.js";
import { compareHash } from "./compare.js";
import { h, percent, shortId, statusBadge } from "./dom.js";
import { backToJobs } from "./listfilters.js";

const REFRESH_MS = 5000;
const ACTIVE = new Set(["queued", "running"]);

function valueText(value) {
  if (value === null || value === undefined) return "–";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function sweepTable(sweep) {
  const head = h(
    "tr",
    {},
    ...["#", "Job", "Status", "Best val accuracy", "Epoch", ...sweep.varied].map((text) => h("th", { text })),
  );
  const rows = sweep.jobs.map((job, index) =>
    h(
      "tr",
      { "data-testid": "sweep-row", "data-job-id": job.id },
      h("td", { class: "num", text: String(index + 1) }),
      h("td", { class: "name" }, h("a", { href: `#/jobs/${job.id}`, title: job.id, text: job.name ?? shortId(job.id) })),
      h("td", {}, statusBadge(job.status)),
      h("td", { class: "num", "data-testid": "sweep-best", text: percent(job.best_val_accuracy) }),
      h("td", { class: "num", text: String(job.current_epoch) }),
      ...sweep.varied.map((name) => h("td", { class: "num", text: valueText(job.parameters[name]) })),
    ),
  );
  return h("table", { "data-testid": "sweep-table" }, h("thead", {}, head), h("tbody", {}, ...rows));
}

export function showSweep(container, sweepId, signal) {
  let timer = null;
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  const back = backToJobs();

  async function refresh() {
    let sweep;
    try {
      sweep = await json(`/sweeps/${encodeURIComponent(sweepId)}`, { signal });
    } catch (error) {
      if (signal.aborted || error instanceof AuthRequired) return;
      container.replaceChildren(back, h("p", { class: "notice", "data-testid": "sweep-notice", text: error.message }));
      return;
    }
    if (signal.aborted) return;
    const counts = Object.entries(sweep.counts)
      .filter(([, count]) => count > 0)
      .map(([status, count]) => `${count} ${status}`)
      .join(", ");
    container.replaceChildren(
      h(
        "header",
        { class: "job-header" },
        back,
        h("h2", { "data-testid": "sweep-title", text: sweep.name ?? `Sweep ${shortId(sweep.id)}` }),
        h("span", { class: "notice", text: `${sweep.method}, ${sweep.jobs.length} jobs: ${counts}` }),
        h("a", {
          href: compareHash(sweep.jobs.map((job) => job.id)),
          class: "compare-all",
          "data-testid": "sweep-compare",
          text: "Compare all",
        }),
      ),
      h("section", { class: "panel" }, sweepTable(sweep)),
    );
    // Rankings move while jobs train; an ended sweep does not change.
    if (sweep.jobs.some((job) => ACTIVE.has(job.status))) timer = setTimeout(refresh, REFRESH_MS);
  }

  container.replaceChildren(h("p", { class: "notice", text: "Loading…" }));
  refresh();
}
