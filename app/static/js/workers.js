// The workers table, for the owner admin: GET /workers answers others 403, and then it stays hidden.
import { ApiError, AuthRequired, json } from "./api.js";
import { age, bytes, h, shortId } from "./dom.js";

const REFRESH_MS = 3000;

function devices(worker) {
  return [worker.cuda_devices ? `cuda:${worker.cuda_devices}` : null, `cpu:${worker.cpu_devices}`]
    .filter(Boolean)
    .join(" ");
}

function workerRow(worker) {
  const host = worker.workers_on_host > 1 ? ` (${worker.workers_on_host} on ${worker.host})` : "";
  const link = `#/jobs/${worker.job_id}`;
  const job = worker.job_id
    ? h("a", { href: link, class: "mono", title: worker.job_id, text: shortId(worker.job_id) })
    : "idle";
  return h(
    "tr",
    { "data-testid": "worker-row", "data-worker-id": worker.id },
    h("td", {
      class: "mono",
      "data-testid": "worker-id",
      title: `trainq ${worker.version}`,
      text: `${worker.id}${host}`,
    }),
    h("td", { "data-testid": "worker-devices", text: devices(worker) }),
    h("td", { class: "num", text: bytes(worker.memory_bytes) }),
    h("td", { "data-testid": "worker-labels", text: worker.labels.join(", ") || "–" }),
    h("td", { "data-testid": "worker-job" }, job),
    h("td", { class: "age", title: worker.last_heartbeat_at, text: age(worker.last_heartbeat_at) }),
  );
}

export function showWorkers(panel, signal) {
  const body = panel.querySelector("tbody");
  const notice = panel.querySelector(".notice");
  let timer = null;
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });

  async function refresh() {
    try {
      const workers = await json("/workers", { signal });
      if (signal.aborted) return;
      panel.hidden = false;
      body.replaceChildren(...workers.map(workerRow));
      notice.textContent = workers.length === 0 ? "No worker is running: start one with python -m worker." : "";
    } catch (error) {
      if (signal.aborted || error instanceof AuthRequired) return;
      if (error instanceof ApiError && error.status === 403) {
        panel.hidden = true; // not the admin: nothing to show, and nothing to ask again
        return;
      }
      notice.textContent = `Could not load the workers: ${error.message}`;
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  refresh();
}
