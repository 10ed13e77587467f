// How a finished job did: its best epoch on the test and validation splits (per class, and the
// confusion matrix with true classes in rows), and the files exported from it.
import { download } from "./api.js";
import { bytes, h, percent } from "./dom.js";

const FIGURE = (value) => value.toFixed(3);

function perClassTable(metrics) {
  const head = h("tr", {}, ...["Class", "Precision", "Recall", "F1", "Support"].map((text) => h("th", { text })));
  const rows = metrics.per_class.map((row) =>
    h(
      "tr",
      { "data-testid": "class-row" },
      h("td", { text: row.class }),
      h("td", { class: "num", text: FIGURE(row.precision) }),
      h("td", { class: "num", text: FIGURE(row.recall) }),
      h("td", { class: "num", text: FIGURE(row.f1) }),
      h("td", { class: "num", text: String(row.support) }),
    ),
  );
  return h("table", { class: "per-class", "data-testid": "per-class" }, h("thead", {}, head), h("tbody", {}, ...rows));
}

function confusionTable(metrics) {
  const names = metrics.per_class.map((row) => row.class);
  const largest = Math.max(1, ...metrics.confusion_matrix.flat());
  const head = h(
    "tr",
    {},
    h("th", { text: "true \\ predicted" }),
    ...names.map((name) => h("th", { text: name })),
  );
  const rows = metrics.confusion_matrix.map((counts, i) =>
    h(
      "tr",
      { "data-testid": "confusion-row" },
      h("th", { text: names[i] }),
      ...counts.map((count, j) => {
        const cell = h("td", { class: i === j ? "num hit" : "num", "data-testid": "confusion-cell", text: String(count) });
        // Shaded by count, so that where a model confuses classes stands out at a glance; set
        // through the CSSOM, which the page's Content-Security-Policy allows, unlike style="".
        cell.style.setProperty("--share", String(count / largest));
        return cell;
      }),
    ),
  );
  return h("table", { class: "confusion", "data-testid": "confusion-matrix" }, h("thead", {}, head), h("tbody", {}, ...rows));
}

function evaluationPanel(title, metrics, testId) {
  return h(
    "div",
    { class: "panel evaluation", "data-testid": testId },
    h("h3", { text: `${title}: epoch ${metrics.epoch}, accuracy ${percent(metrics.accuracy)}, loss ${FIGURE(metrics.loss)}` }),
    perClassTable(metrics),
    confusionTable(metrics),
  );
}

function exportsPanel(exports, onError) {
  const rows = exports.map((file) =>
    h(
      "tr",
      { "data-testid": "export-row", "data-format": file.format },
      h("td", { text: file.name }),
      h("td", { class: "num", text: bytes(file.size_bytes) }),
      h("td", {}, h("code", { class: "sha", text: file.sha256 })),
      h(
        "td",
        {},
        h("button", {
          type: "button",
          class: "link",
          "data-testid": "export-download",
          text: "download",
          onclick: () => download(file.url).catch(onError),
        }),
      ),
    ),
  );
  return h("div", { class: "panel" }, h("h3", { text: "Exports" }), h("table", { "data-testid": "exports" }, h("tbody", {}, ...rows)));
}

export function resultPanels(job, onError) {
  const panels = [];
  if (job.test_metrics) panels.push(evaluationPanel("Test split", job.test_metrics, "test-results"));
  if (job.val_metrics) panels.push(evaluationPanel("Validation split", job.val_metrics, "val-results"));
  if (job.exports.length) panels.push(exportsPanel(job.exports, onError));
  return panels;
}

// "early_stopping (best epoch 4)": why training ended, for the summary.
export function stopText(job) {
  if (!job.stop_reason) return "–";
  const reason = job.stop_reason.replace("_", " ");
  return job.stop_reason === "early_stopping" && job.best_epoch ? `${reason} (best epoch ${job.best_epoch})` : reason;
}

// "3 classes, 36 train / 12 val / 12 test (split_folders)": what the job trains on, once it started.
export function datasetText(job) {
  const info = job.dataset_info;
  if (!info) return "–";
  const text = `${info.classes.length} classes, ${info.train_samples} train / ${info.val_samples} val / ${info.test_samples} test (${info.layout})`;
  return info.skipped_count ? `${text}, ${info.skipped_count} unreadable images skipped` : text;
}

export function resourcesText(job) {
  const { devices, labels } = job.resources;
  const kind = job.hyperparameters.device === "auto" ? "" : ` ${job.hyperparameters.device}`;
  const count = `${devices}${kind} device${devices === 1 ? "" : "s"}`;
  return labels.length ? `${count}, ${labels.join(", ")}` : count;
}

function ordinal(n) {
  const suffix = n % 100 >= 10 && n % 100 <= 20 ? "th" : { 1: "st", 2: "nd", 3: "rd" }[n % 10] ?? "th";
  return `${n}${suffix}`;
}

// "3rd (2 running ahead)": GET /jobs/{id}'s queue_position (1 = next) and running_ahead.
export function queueText(job) {
  if (job.status !== "queued" || job.queue_position == null) return "–";
  return `${ordinal(job.queue_position)} (${job.running_ahead} running ahead)`;
}
