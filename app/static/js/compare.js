// Jobs compared (#compare=<id>,<id>...): their validation curves overlaid, one colour per job, and
// their summaries and hyperparameters in one table, the differing rows highlighted and first.
import { AuthRequired, json } from "./api.js";
import { LineChart, formatPercent } from "./charts.js";
import { duration, h, percent, shortId, statusBadge } from "./dom.js";
import { backToJobs } from "./listfilters.js";

const REFRESH_MS = 5000;
const ACTIVE = new Set(["queued", "running"]);
// One colour class per job (dashboard.css has as many); more jobs than that reuse them.
const PALETTE_SIZE = 8;

export function compareHash(ids) {
  return `#compare=${ids.map(encodeURIComponent).join(",")}`;
}

function seriesOf(jobs, metric) {
  return jobs.map((job, index) => ({
    key: `${metric}:${job.id}`,
    label: job.name ?? shortId(job.id),
    className: `series-job-${index % PALETTE_SIZE}`,
  }));
}

// One row per epoch, holding every job's value of each metric under "<metric>:<job id>".
function mergedRows(jobs) {
  const byEpoch = new Map();
  for (const job of jobs) {
    for (const row of job.metrics) {
      const merged = byEpoch.get(row.epoch) ?? { epoch: row.epoch };
      merged[`val_accuracy:${job.id}`] = row.val_accuracy;
      merged[`val_loss:${job.id}`] = row.val_loss;
      byEpoch.set(row.epoch, merged);
    }
  }
  return [...byEpoch.values()].sort((a, b) => a.epoch - b.epoch);
}

function bestAccuracy(job) {
  if (job.best_val_accuracy !== undefined && job.best_val_accuracy !== null) return job.best_val_accuracy;
  const values = job.metrics.map((row) => row.val_accuracy);
  return values.length ? Math.max(...values) : null;
}

function valueText(value) {
  if (value === null || value === undefined) return "–";
  if (Array.isArray(value)) return value.join(", ");
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

// [label, read(job) -> comparable value, show(value) -> text]
const SUMMARY = [
  ["status", (job) => job.status, null],
  ["best val accuracy", bestAccuracy, percent],
  ["best epoch", (job) => job.best_epoch ?? null, valueText],
  ["stop reason", (job) => job.stop_reason ?? null, valueText],
  ["duration", (job) => job.duration_seconds ?? job.runtime_seconds ?? null, durationText],
];

function durationText(seconds) {
  return seconds === null ? "–" : duration(seconds);
}

function differs(values) {
  const first = JSON.stringify(values[0]);
  return values.some((value) => JSON.stringify(value) !== first);
}

function tableRow(label, values, show, kind) {
  const changed = differs(values);
  return h(
    "tr",
    {
      "data-testid": "compare-row",
      "data-field": label,
      "data-differs": String(changed),
      class: changed ? `differs ${kind}` : kind,
    },
    h("th", { scope: "row", text: label }),
    ...values.map((value) => h("td", {}, show ? h("span", { text: show(value) }) : statusBadge(value))),
  );
}

function comparisonTable(jobs) {
  const head = h(
    "thead",
    {},
    h(
      "tr",
      {},
      h("th", { text: "" }),
      ...jobs.map((job, index) =>
        h(
          "th",
          { class: `job-head series-job-${index % PALETTE_SIZE}` },
          h("i"),
          h("a", { href: `#/jobs/${job.id}`, title: job.id, text: job.name ?? shortId(job.id) }),
        ),
      ),
    ),
  );
  const summary = SUMMARY.map(([label, read, show]) => tableRow(label, jobs.map(read), show, "summary-row"));
  const names = [...new Set(jobs.flatMap((job) => Object.keys(job.hyperparameters)))].sort();
  const rows = names.map((name) =>
    tableRow(name, jobs.map((job) => job.hyperparameters[name] ?? null), valueText, "hyperparameter-row"),
  );
  // The differing hyperparameters first: they are what the comparison is for.
  const differing = rows.filter((row) => row.dataset.differs === "true");
  const same = rows.filter((row) => row.dataset.differs !== "true");
  const body = h("tbody", {}, ...summary, ...differing, ...same);
  return h("table", { class: "comparison", "data-testid": "compare-table" }, head, body);
}

export function showComparison(container, ids, signal) {
  const charts = [];
  let timer = null;
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });

  async function refresh() {
    let jobs;
    try {
      jobs = await Promise.all(ids.map((id) => json(`/jobs/${encodeURIComponent(id)}`, { signal })));
    } catch (error) {
      if (signal.aborted || error instanceof AuthRequired) return;
      container.replaceChildren(
        back(),
        h("p", {
          class: "notice",
          "data-testid": "compare-notice",
          text: `Could not load the jobs: ${error.message}`,
        }),
      );
      return;
    }
    if (signal.aborted) return;
    if (charts.length === 0) {
      charts.push(
        new LineChart({
          title: "Validation accuracy",
          testId: "compare-accuracy-chart",
          format: formatPercent,
          yMin: 0,
          yMax: 1,
          series: seriesOf(jobs, "val_accuracy"),
        }),
        new LineChart({
          title: "Validation loss",
          testId: "compare-loss-chart",
          series: seriesOf(jobs, "val_loss"),
        }),
      );
    }
    const rows = mergedRows(jobs);
    const epochs = Math.max(...jobs.map((job) => job.hyperparameters.epochs ?? 1));
    for (const chart of charts) chart.update(rows, epochs);
    container.replaceChildren(
      h(
        "header",
        { class: "job-header" },
        back(),
        h("h2", { "data-testid": "compare-title", text: `Comparing ${jobs.length} jobs` }),
      ),
      h("section", { class: "charts compare-charts" }, ...charts.map((chart) => chart.element)),
      h("section", { class: "panel" }, comparisonTable(jobs)),
    );
    // Curves of jobs still training keep growing; finished ones do not change.
    if (jobs.some((job) => ACTIVE.has(job.status))) timer = setTimeout(refresh, REFRESH_MS);
  }

  container.replaceChildren(h("p", { class: "notice", text: "Loading…" }));
  refresh();
}

function back() {
  return backToJobs();
}
