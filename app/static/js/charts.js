// Per-epoch line charts drawn as SVG: a few hundred lines of library would buy nothing more here.
import { h } from "./dom.js";

// The SVG namespace is an identifier, not a location: nothing is fetched from it.
const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 480;
const HEIGHT = 220;
const MARGIN = { top: 10, right: 14, bottom: 30, left: 52 };
const MAX_MARKED_POINTS = 60;

function svg(tag, attributes = {}, text = null) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== null) element.textContent = text;
  return element;
}

function niceStep(span, count) {
  const raw = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const ratio = raw / magnitude;
  return magnitude * (ratio <= 1 ? 1 : ratio <= 2 ? 2 : ratio <= 5 ? 5 : 10);
}

function ticks(low, high, count) {
  const step = niceStep(high - low, count);
  const values = [];
  for (let value = Math.ceil(low / step) * step; value <= high + step * 1e-9; value += step) {
    values.push(Number(value.toPrecision(12)));
  }
  return values;
}

export function formatNumber(value) {
  const size = Math.abs(value);
  if (size !== 0 && (size < 0.01 || size >= 10_000)) return value.toExponential(1);
  return String(Number(value.toPrecision(3)));
}

export function formatPercent(value) {
  return `${Number((value * 100).toPrecision(3))}%`;
}

function yDomain(values, { yMin, yMax }) {
  let low = Math.min(...values);
  let high = Math.max(...values);
  const pad = high > low ? (high - low) * 0.08 : Math.abs(high) * 0.1 || 1;
  low = yMin === undefined ? low - pad : Math.max(yMin, low - pad);
  high = yMax === undefined ? high + pad : Math.min(yMax, high + pad);
  return high > low ? [low, high] : [low - 1, high + 1];
}

// series: [{key, label, className}]; rows: metric rows ordered by epoch. A series is drawn through
// the rows that have a number for its key, so series of different lengths (jobs compared) share a
// chart. The root element's data-points attribute counts the epochs drawn, for the tests and anyone
// scripting the page.
export class LineChart {
  constructor({ title, testId, series, format = formatNumber, yMin, yMax }) {
    this.series = series;
    this.format = format;
    this.bounds = { yMin, yMax };
    this.plot = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": title });
    const legend = h(
      "span",
      { class: "legend" },
      ...series.map((s) => h("span", { class: `legend-item ${s.className}` }, h("i"), s.label)),
    );
    this.element = h(
      "figure",
      { class: "chart", "data-testid": testId, "data-points": "0" },
      h("figcaption", {}, h("span", { class: "chart-title", text: title }), legend),
      this.plot,
    );
    this.update([], 1);
  }

  update(rows, totalEpochs) {
    this.element.dataset.points = String(rows.length);
    this.plot.replaceChildren();
    const right = WIDTH - MARGIN.right;
    const bottom = HEIGHT - MARGIN.bottom;
    const values = rows.flatMap((row) => this.series.map((s) => row[s.key])).filter(Number.isFinite);
    if (values.length === 0) {
      this.plot.append(
        svg("text", { x: WIDTH / 2, y: HEIGHT / 2, class: "chart-empty" }, "waiting for the first epoch"),
      );
      return;
    }
    const lastEpoch = Math.max(totalEpochs, rows[rows.length - 1].epoch, 2);
    const [low, high] = yDomain(values, this.bounds);
    const x = (epoch) => MARGIN.left + ((epoch - 1) / (lastEpoch - 1)) * (right - MARGIN.left);
    const y = (value) => bottom - ((value - low) / (high - low)) * (bottom - MARGIN.top);

    for (const value of ticks(low, high, 4)) {
      this.plot.append(
        svg("line", { x1: MARGIN.left, x2: right, y1: y(value), y2: y(value), class: "grid" }),
        svg("text", { x: MARGIN.left - 6, y: y(value) + 4, class: "tick tick-y" }, this.format(value)),
      );
    }
    const epochStep = Math.max(1, Math.round(niceStep(lastEpoch - 1, 6)));
    for (let epoch = 1; epoch <= lastEpoch; epoch += epochStep) {
      this.plot.append(svg("text", { x: x(epoch), y: bottom + 16, class: "tick tick-x" }, String(epoch)));
    }
    this.plot.append(
      svg("line", { x1: MARGIN.left, x2: right, y1: bottom, y2: bottom, class: "axis" }),
      svg("text", { x: right, y: HEIGHT - 2, class: "axis-label" }, "epoch"),
    );
    for (const s of this.series) {
      const drawn = rows.filter((row) => Number.isFinite(row[s.key]));
      const points = drawn.map((row) => `${x(row.epoch).toFixed(1)},${y(row[s.key]).toFixed(1)}`);
      this.plot.append(svg("polyline", { points: points.join(" "), class: `line ${s.className}` }));
      if (drawn.length > MAX_MARKED_POINTS) continue;
      for (const row of drawn) {
        const dot = svg("circle", { cx: x(row.epoch), cy: y(row[s.key]), r: 3, class: `dot ${s.className}` });
        dot.append(svg("title", {}, `${s.label}, epoch ${row.epoch}: ${this.format(row[s.key])}`));
        this.plot.append(dot);
      }
    }
  }
}
