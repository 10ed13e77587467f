// Building elements and formatting values. Text always goes in through textContent, never
// parsed as markup: job names, logs and error messages are user input.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "text") element.textContent = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

export function byTestId(id, root = document) {
  return root.querySelector(`[data-testid="${id}"]`);
}

export function statusBadge(status) {
  return h("span", { class: `badge badge-${status}`, "data-testid": "status-badge", text: status });
}

export function progressBar(fraction, testId = "progress") {
  const bar = h("div", { class: "progress-fill" });
  const outer = h("div", { class: "progress", role: "progressbar", "data-testid": testId }, bar);
  setProgress(outer, fraction);
  return outer;
}

export function setProgress(progress, fraction) {
  const percent = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
  progress.setAttribute("aria-valuenow", String(percent));
  progress.title = `${percent}%`;
  // CSSOM, not a style attribute, so the page's Content-Security-Policy allows it.
  progress.firstChild.style.width = `${percent}%`;
}

// The API writes UTC timestamps; SQLite gives them back without a zone, which Date would read as local.
export function parseTime(text) {
  if (!text) return null;
  return new Date(/(Z|[+-]\d\d:?\d\d)$/.test(text) ? text : `${text}Z`);
}

export function age(text, now = Date.now()) {
  const time = parseTime(text);
  if (time === null) return "";
  const seconds = Math.max(0, Math.round((now - time.getTime()) / 1000));
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

export function percent(value) {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)}%`;
}

export function bytes(size) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = size;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function duration(seconds) {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function shortId(id) {
  return id.slice(0, 8);
}
