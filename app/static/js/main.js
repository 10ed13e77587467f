// Routing between the jobs page (#/, its filters after a ?), a job's page (#/jobs/<id>), jobs
// compared (#compare=<id>,<id>...) and a sweep's page (#/sweeps/<id>), and the API key prompt.
import { forgetKey, getKey, onKeyNeeded, setKey } from "./api.js";
import { showComparison } from "./compare.js";
import { byTestId } from "./dom.js";
import { loadDefaults, setupForm } from "./form.js";
import { showJob } from "./job.js";
import { showJobs } from "./jobs.js";
import { fillChoices } from "./listfilters.js";
import { showSweep } from "./sweep.js";
import { showWorkers } from "./workers.js";

const JOB_ROUTE = /^#\/jobs\/([0-9A-Za-z_-]+)$/;
const COMPARE_ROUTE = /^#\/?compare[=/]([0-9A-Za-z_,-]+)$/;
const SWEEP_ROUTE = /^#\/sweeps\/([0-9A-Za-z_-]+)$/;

const jobsPage = byTestId("jobs-page");
const jobPage = byTestId("job-page");
const comparePage = byTestId("compare-page");
const sweepPage = byTestId("sweep-page");
const form = byTestId("submit-form");
const keyDialog = byTestId("key-prompt");
const keyForm = byTestId("key-form");
const keyInput = byTestId("key-input");
const keyMessage = byTestId("key-message");
const forgetButton = byTestId("forget-key");

let current = null;

function route() {
  current?.abort();
  current = new AbortController();
  forgetButton.hidden = getKey() === null;
  const match = JOB_ROUTE.exec(location.hash);
  const compared = COMPARE_ROUTE.exec(location.hash);
  const sweep = SWEEP_ROUTE.exec(location.hash);
  jobsPage.hidden = match !== null || compared !== null || sweep !== null;
  jobPage.hidden = match === null;
  comparePage.hidden = compared === null;
  sweepPage.hidden = sweep === null;
  // Each page builds itself afresh; what another page left is cleared.
  for (const [page, shown] of [[jobPage, match], [comparePage, compared], [sweepPage, sweep]]) {
    if (shown === null) page.replaceChildren();
  }
  if (sweep) {
    document.title = `Sweep ${sweep[1].slice(0, 8)} · trainq`;
    showSweep(sweepPage, sweep[1], current.signal);
  } else if (compared) {
    const ids = [...new Set(compared[1].split(",").filter((id) => id !== ""))];
    document.title = `Compare ${ids.length} jobs · trainq`;
    showComparison(comparePage, ids, current.signal);
  } else if (match) {
    document.title = `Job ${match[1].slice(0, 8)} · trainq`;
    showJob(jobPage, match[1], current.signal);
  } else {
    document.title = "trainq";
    showJobs(
      {
        table: byTestId("jobs-table"),
        notice: byTestId("jobs-notice"),
        compareButton: byTestId("compare-selected"),
        search: byTestId("jobs-search"),
        status: byTestId("jobs-status"),
        sort: byTestId("jobs-sort"),
        chips: byTestId("active-filters"),
        loadMore: byTestId("load-more"),
      },
      current.signal,
    );
    showWorkers(byTestId("workers-panel"), current.signal);
    loadDefaults(form).catch(() => {});
  }
}

onKeyNeeded((detail) => {
  // A key the server refused is of no further use.
  forgetKey();
  forgetButton.hidden = true;
  keyMessage.textContent = detail;
  if (!keyDialog.open) {
    current?.abort();
    keyDialog.showModal();
  }
});

// Without a key there is nothing to show, so Escape does not dismiss the prompt.
keyDialog.addEventListener("cancel", (event) => event.preventDefault());
keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (key === "") return;
  setKey(key);
  keyInput.value = "";
  keyDialog.close();
  route();
});

forgetButton.addEventListener("click", () => {
  forgetKey();
  route();
});

fillChoices(byTestId("jobs-status"), byTestId("jobs-sort"));
setupForm(form, {
  onSubmitted: (job) => {
    location.hash = `#/jobs/${job.id}`;
  },
});
window.addEventListener("hashchange", route);
route();
