// One job's page: first painted from GET /jobs/{id}, then kept live by its event stream.
import { ApiError, AuthRequired, json, readJson, request } from "./api.js";
import { age, bytes, duration, h, percent, progressBar, setProgress, statusBadge } from "./dom.js";
import { followEvents } from "./events.js";
import { deleteCheckpoint, jobActions } from "./jobedit.js";
import { backToJobs } from "./listfilters.js";
import { checkpointHead, checkpointRow, field, hyperparameterList, jobCharts } from "./panels.js";
import { datasetText, queueText, resourcesText, resultPanels, stopText } from "./results.js";

const LOG_TAIL_LINES = 200;
const MAX_LOG_LINES = 2000;
const ACTIVE = new Set(["queued", "running"]);
// The queue moves as other jobs start or leave, which this job's stream does not tell.
const QUEUE_REFRESH_MS = 5000;

export async function showJob(container, jobId, signal) {
  let job;
  try {
    job = await json(`/jobs/${encodeURIComponent(jobId)}`, { signal });
  } catch (error) {
    if (error instanceof AuthRequired || signal.aborted) return;
    container.replaceChildren(h("p", { class: "notice", "data-testid": "job-missing", text: error.message }));
    return;
  }
  const metrics = new Map(job.metrics.map((row) => [row.epoch, row]));
  const charts = jobCharts();
  const status = h("span", { "data-testid": "job-status" });
  const cancel = h("button", {
    type: "button",
    class: "danger",
    "data-testid": "cancel-job",
    text: "Cancel",
  });
  const progress = progressBar(job.progress, "job-progress");
  const summary = h("dl", { class: "summary" });
  const problem = h("div", { class: "error-box", "data-testid": "job-error", hidden: true });
  const waiting = h("div", { class: "waiting-box", "data-testid": "job-waiting", hidden: true });
  const results = h("section", { class: "results", "data-testid": "job-results" });
  const streamState = h("span", { class: "stream-state", "data-testid": "stream-state" });
  // data-state (connecting, live, reconnecting, ended, failed) says where the stream is, for scripts.
  function showStream(state, message) {
    streamState.dataset.state = state;
    streamState.textContent = message;
  }
  const checkpoints = h("tbody");
  const log = h("pre", { class: "log", "data-testid": "job-log" });
  const hyperparameters = hyperparameterList(job.hyperparameters);
  const { actionError, edit, remove, showActionError, sweepLink } = jobActions(job, {
    signal,
    onSaved: () => refresh(),
  });

  container.replaceChildren(
    h(
      "header",
      { class: "job-header" },
      backToJobs(),
      h("h2", { "data-testid": "job-title", text: job.name ?? "Unnamed job" }),
      h("code", { class: "mono", text: job.id }),
      status,
      streamState,
      sweepLink,
      cancel,
      remove,
    ),
    actionError,
    h("div", { class: "progress-row" }, progress),
    summary,
    waiting,
    problem,
    h("section", { class: "charts" }, ...charts.map((chart) => chart.element)),
    results,
    h(
      "section",
      { class: "columns" },
      h(
        "div",
        { class: "stack" },
        h(
          "div",
          { class: "panel" },
          h("h3", { text: "Checkpoints" }),
          h("table", { class: "checkpoints", "data-testid": "checkpoints" }, checkpointHead(), checkpoints),
        ),
        h("div", { class: "panel" }, h("h3", { text: "Log" }), log),
      ),
      h(
        "div",
        { class: "stack" },
        edit.element,
        h("div", { class: "panel" }, h("h3", { text: "Hyperparameters" }), hyperparameters),
      ),
    ),
  );

  function showError(message) {
    problem.hidden = false;
    problem.replaceChildren(h("strong", { text: "Error" }), " ", h("span", { text: message }));
  }

  function render() {
    const rows = [...metrics.values()].sort((a, b) => a.epoch - b.epoch);
    for (const chart of charts) chart.update(rows, job.hyperparameters.epochs);
    status.replaceChildren(statusBadge(job.status));
    cancel.hidden = !ACTIVE.has(job.status);
    setProgress(progress, job.progress);
    const best = rows.reduce((top, row) => (top && top.val_accuracy >= row.val_accuracy ? top : row), null);
    const bestText = best ? `${percent(best.val_accuracy)} (epoch ${best.epoch})` : "–";
    summary.replaceChildren(
      ...field("Epoch", `${job.current_epoch} / ${job.hyperparameters.epochs}`, "job-epochs"),
      ...field("Progress", percent(job.progress), "job-progress-text"),
      ...field("Best val accuracy", bestText, "best-val-accuracy"),
      ...field("Runtime", duration(job.runtime_seconds), "job-runtime"),
      ...field("Attempts", `${job.attempts} of ${job.max_attempts}`, "job-attempts"),
      ...field("Priority", String(job.priority ?? 0), "job-priority"),
      ...field("Queue", queueText(job), "job-queue"),
      ...field("Disk", bytes(job.disk_bytes ?? 0), "job-disk"),
      ...field("Device", [job.device, job.precision].filter(Boolean).join(", ") || "–", "job-device"),
      ...field("Needs", resourcesText(job), "job-resources"),
      ...field("Stopped", stopText(job), "job-stop-reason"),
      ...field("Dataset", datasetText(job), "job-dataset"),
      ...field("Created", age(job.created_at), "job-created"),
    );
    // Only GET /jobs/{id} says why a job waits; once it runs, the reason is stale.
    waiting.hidden = !(job.status === "queued" && job.waiting_reason);
    waiting.textContent = waiting.hidden ? "" : `Waiting: ${job.waiting_reason}`;
    problem.hidden = job.error === null;
    if (job.error !== null) {
      problem.replaceChildren(
        h("strong", { "data-testid": "job-error-reason", text: job.error.reason }),
        " ",
        h("span", { "data-testid": "job-error-message", text: job.error.message }),
      );
    }
    edit.update(job);
    results.replaceChildren(...resultPanels(job, (error) => showError(error.message)));
    const removeCheckpoint = (checkpoint) => {
      if (!window.confirm(`Delete the checkpoint of epoch ${checkpoint.epoch}?`)) return;
      deleteCheckpoint(checkpoint, signal).then(refresh, showActionError);
    };
    checkpoints.replaceChildren(
      ...job.checkpoints.map((checkpoint) =>
        checkpointRow(checkpoint, (error) => showError(error.message), removeCheckpoint),
      ),
    );
    if (job.checkpoints.length === 0) {
      checkpoints.append(h("tr", {}, h("td", { colspan: 5, class: "notice", text: "No checkpoint yet." })));
    }
  }

  function appendLog(lines) {
    const kept = `${log.textContent}${lines.map((line) => `${line}\n`).join("")}`.split("\n");
    log.textContent = kept.slice(-MAX_LOG_LINES - 1).join("\n");
    log.scrollTop = log.scrollHeight;
  }

  function report(error) {
    if (!(error instanceof AuthRequired) && !signal.aborted) showError(error.message);
  }

  // Events come in bursts (a replay is one): one render per burst, not one per event.
  let renderQueued = false;
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    queueMicrotask(() => {
      renderQueued = false;
      render();
    });
  }

  // Re-read for what events do not carry: the current checkpoint list, runtime, the end time. The
  // curves take their rows from the stream, one epoch at a time, unless the stream is down.
  let live = false;
  async function reload() {
    const fresh = await json(`/jobs/${encodeURIComponent(jobId)}`, { signal });
    if (!live) for (const row of fresh.metrics) metrics.set(row.epoch, row);
    job = fresh;
    scheduleRender();
  }

  // At most one reload in flight, and one more after it when asked meanwhile.
  let reloading = null;
  let reloadAgain = false;
  function refresh() {
    if (reloading !== null) {
      reloadAgain = true;
      return;
    }
    reloading = reload()
      .catch(report)
      .finally(() => {
        reloading = null;
        if (reloadAgain) {
          reloadAgain = false;
          refresh();
        }
      });
  }

  cancel.addEventListener("click", () => {
    cancel.disabled = true;
    json(`/jobs/${encodeURIComponent(jobId)}/cancel`, { method: "POST", signal })
      .then(refresh, report)
      .finally(() => {
        cancel.disabled = false;
      });
  });

  const handlers = {
    status: (data) => {
      Object.assign(job, { status: data.status, attempts: data.attempt, error: data.error });
    },
    epoch: (data) => {
      metrics.set(data.epoch, data);
      job.current_epoch = Math.max(job.current_epoch, data.epoch);
    },
    progress: (data) => {
      Object.assign(job, { current_epoch: data.epoch, progress: data.progress });
    },
    checkpoint: refresh,
    log: (data) => appendLog(data.lines),
    end: (data) => {
      job.status = data.status;
      refresh();
    },
  };

  render();
  const queueTimer = setInterval(() => {
    if (job.status === "queued") refresh();
  }, QUEUE_REFRESH_MS);
  signal.addEventListener("abort", () => clearInterval(queueTimer));
  let startAfter = null;
  try {
    const response = await request(`/jobs/${encodeURIComponent(jobId)}/logs?tail=${LOG_TAIL_LINES}`, { signal });
    if (!response.ok) throw new ApiError(response.status, (await readJson(response)).detail);
    // The stream replays every event, then the log lines after this tail: none missed, none twice.
    const offset = response.headers.get("Trainq-Log-Offset");
    if (offset !== null) startAfter = `0.${offset}`;
    appendLog((await response.text()).split("\n").filter(Boolean));
  } catch (error) {
    if (error instanceof AuthRequired || signal.aborted) return;
    if (!(error instanceof ApiError && error.status === 404)) showError(error.message);
  }
  showStream("connecting", "connecting…");
  await followEvents(jobId, signal, {
    startAfter,
    onConnect: () => {
      live = true;
      showStream("live", "live");
    },
    onEvent: (type, data) => {
      handlers[type]?.(data);
      scheduleRender();
      if (type === "end") showStream("ended", "");
    },
    onError: (message, status) => {
      live = false;
      showStream(status === 0 ? "reconnecting" : "failed", message);
      // While the stream is down the page still shows where the job stands.
      if (status === 0) refresh();
    },
  });
}
