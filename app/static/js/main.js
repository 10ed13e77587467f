// Routing between the jobs page (#/) and a job's page (#/jobs/<id>), and the API key prompt.
import { forgetKey, getKey, onKeyNeeded, setKey } from "./api.js";
import { byTestId } from "./dom.js";
import { loadDefaults, setupForm } from "./form.js";
import { showJob } from "./job.js";
import { showJobs } from "./jobs.js";

const JOB_ROUTE = /^#\/jobs\/([0-9A-Za-z_-]+)$/;

const jobsPage = byTestId("jobs-page");
const jobPage = byTestId("job-page");
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
  jobsPage.hidden = match !== null;
  jobPage.hidden = match === null;
  if (match) {
    document.title = `Job ${match[1].slice(0, 8)} · trainq`;
    showJob(jobPage, match[1], current.signal);
  } else {
    document.title = "trainq";
    jobPage.replaceChildren();
    showJobs(byTestId("jobs-table"), byTestId("jobs-notice"), current.signal);
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

setupForm(form, {
  onSubmitted: (job) => {
    location.hash = `#/jobs/${job.id}`;
  },
});
window.addEventListener("hashchange", route);
route();
