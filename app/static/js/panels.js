// The parts of a job's page that hold no state: its charts, summary fields and tables.
import { download } from "./api.js";
import { LineChart, formatPercent } from "./charts.js";
import { bytes, h } from "./dom.js";

export function field(label, value, testId) {
  return [h("dt", { text: label }), h("dd", { "data-testid": testId, text: value })];
}

// `onDelete(checkpoint)`: the row's delete action, offered on every checkpoint but the best.
export function checkpointRow(checkpoint, onError, onDelete) {
  const save = h("button", {
    type: "button",
    class: "link",
    "data-testid": "checkpoint-download",
    text: "download",
    onclick: () => download(checkpoint.url).catch((error) => onError(error)),
  });
  return h(
    "tr",
    { "data-testid": "checkpoint-row", "data-epoch": checkpoint.epoch },
    h("td", { class: "num", text: String(checkpoint.epoch) }),
    h("td", {}, checkpoint.is_best ? h("span", { class: "tag", text: "best" }) : null),
    h("td", { class: "num", text: bytes(checkpoint.size_bytes) }),
    h("td", {}, h("code", { class: "sha", "data-testid": "checkpoint-sha256", text: checkpoint.sha256 })),
    h(
      "td",
      { class: "actions" },
      save,
      checkpoint.is_best
        ? null
        : h("button", {
            type: "button",
            class: "link danger-link",
            "data-testid": "checkpoint-delete",
            text: "delete",
            onclick: () => onDelete(checkpoint),
          }),
    ),
  );
}

export function jobCharts() {
  return [
    new LineChart({
      title: "Loss",
      testId: "loss-chart",
      series: [
        { key: "train_loss", label: "train", className: "series-train" },
        { key: "val_loss", label: "validation", className: "series-val" },
      ],
    }),
    new LineChart({
      title: "Accuracy",
      testId: "accuracy-chart",
      format: formatPercent,
      yMin: 0,
      yMax: 1,
      series: [
        { key: "train_accuracy", label: "train", className: "series-train" },
        { key: "val_accuracy", label: "validation", className: "series-val" },
      ],
    }),
    new LineChart({
      title: "Learning rate",
      testId: "lr-chart",
      series: [{ key: "learning_rate", label: "learning rate", className: "series-lr" }],
    }),
  ];
}

export function checkpointHead() {
  return h(
    "thead",
    {},
    h("tr", {}, ...["Epoch", "", "Size", "sha256", ""].map((title) => h("th", { text: title }))),
  );
}

function hyperparameterText(value) {
  if (value === null) return "–";
  if (Array.isArray(value)) return value.join(", ");
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

export function hyperparameterList(hyperparameters) {
  return h(
    "dl",
    { class: "hyperparameters", "data-testid": "hyperparameters" },
    ...Object.entries(hyperparameters).flatMap(([name, value]) =>
      field(name, hyperparameterText(value), `hp-${name}`),
    ),
  );
}
