// The jobs table: newest first, refreshed every few seconds while it is on screen.
import { AuthRequired, json } from "./api.js";
import { age, h, progressBar, shortId, statusBadge } from "./dom.js";

const REFRESH_MS = 3000;
const PAGE_SIZE = 50;

function jobRow(job) {
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
    h("td", {}, h("a", { href: link, class: "mono", title: job.id, text: shortId(job.id) })),
    h("td", { class: "name", "data-testid": "job-name", text: job.name ?? "–" }),
    h("td", {}, statusBadge(job.status)),
    h("td", {}, progressBar(job.progress)),
    h("td", { class: "num", "data-testid": "job-epochs", text: `${job.current_epoch}/${total}` }),
    h("td", { class: "age", title: job.created_at, text: age(job.created_at) }),
  );
}

export function showJobs(table, notice, signal) {
  const body = table.querySelector("tbody");
  let timer = null;
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });

  async function refresh() {
    try {
      const page = await json(`/jobs?limit=${PAGE_SIZE}`, { signal });
      if (signal.aborted) return;
      body.replaceChildren(...page.items.map(jobRow));
      notice.textContent = page.items.length === 0 ? "No jobs yet: submit one with the form." : "";
    } catch (error) {
      // Without a key the prompt is up; the page starts over once one is given.
      if (signal.aborted || error instanceof AuthRequired) return;
      notice.textContent = `Could not load the jobs: ${error.message}`;
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  refresh();
}
