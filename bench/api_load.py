"""Target 4 of the performance issue: API throughput and latency under concurrent clients,
against a bare FastAPI app measured in the same run.

    python bench/api_load.py [--seconds 5] [--loop uvloop]

Starts uvicorn as `make run` does (one process, --loop asyncio unless --loop uvloop, access
log on but sent to /dev/null) on a temporary SQLite file holding a finished job with 100 metric
rows, written through app.queue (submit, claim, record_epoch, succeed); beside it, the
baseline: bench/bare_app.py on the same uvicorn with the same options, answering
GET /health and GET /jobs/{id} with the bytes the real API sent for them, from memory.
The load generator is wrk when it is installed (bench/wrk_load.py), else
bench/load_client.py (Python: it then takes much of the CPU it measures); each
scenario warms up for a second, then counts for --seconds. Each line also gives the
CPU time per request of the server and of the generator.

Phase "idle": the API alone. Phase "training": a worker started beside it trains a
digits job (1000 epochs, cancelled at the end). In each phase GET /health and
GET /jobs/{id} of the bare app, then of the API, at 64 and at 8 clients; then GET /jobs/{id}
with its ETag in If-None-Match (a poller's 304) at 64 clients; then POST /jobs.
Targets: GET /jobs/{id} at 64 clients >= 0.5x the bare app's req/s, p99 < 250 ms at 64
clients and < 50 ms at 8; GET /health >= 0.8x the bare app's; POST /jobs >= 200 req/s
(at 64 clients); no errors; and while training, the same within 20 %.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import wrk_load
from api_report import Result, report
from live_service import ROOT, api_server, cpu_seconds, percentile, service_env, start_worker, stop

METRIC_ROWS = 100
POST_BODY = {"hyperparameters": {"dataset": "digits", "epochs": 1}}
TRAINING_START_TIMEOUT_S = 120.0
Server = tuple[httpx.Client, subprocess.Popen[bytes]]


def load(
    api: Server,
    label: str,
    method: str,
    path: str,
    clients: int,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> Result:
    http, process = api
    body = POST_BODY if method == "POST" else None
    spec = {"base_url": str(http.base_url), "method": method, "path": path, "body": body}
    spec |= {"clients": clients, "seconds": seconds, "headers": headers or {}}
    generator = "wrk_load.py" if wrk_load.available() else "load_client.py"
    cpu_before = cpu_seconds(process.pid)
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / generator), json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    server_cpu_s = cpu_seconds(process.pid) - cpu_before
    measured = json.loads(out)
    answered = max(measured["answered"], 1)
    errors, latencies = measured["errors"], measured.get("latencies_ms", [])
    return Result(
        label=label,
        clients=clients,
        requests=measured["completed"],
        errors=measured.get("error_count", len(errors)),
        seconds=measured["seconds"],
        p50_ms=measured["p50_ms"] if "p50_ms" in measured else _percentile(latencies, 0.5),
        p99_ms=measured["p99_ms"] if "p99_ms" in measured else _percentile(latencies, 0.99),
        first_error=errors[0] if errors else None,
        server_cpu_ms=server_cpu_s * 1000 / answered,
        client_cpu_ms=measured["cpu_s"] * 1000 / answered,
    )


def _percentile(latencies: list[float], fraction: float) -> float:
    return percentile(latencies, fraction) if latencies else float("nan")


def prepare(database_url: str) -> tuple[str, str]:
    """A finished job with METRIC_ROWS epochs, then a long job left queued (the oldest queued,
    so the worker started for the training phase claims it before any job POSTed meanwhile)."""
    from app import queue
    from app.contract import EpochMetrics, RunResults, StopReason
    from app.db import make_engine
    from app.hyperparameters import Hyperparameters
    from app.migrations import upgrade
    from app.models import JobCreate
    from app.resources import Capabilities

    engine = make_engine(database_url)
    upgrade(engine)
    job, _ = queue.submit(engine, job_in=JobCreate(name=f"{METRIC_ROWS} epochs"))
    any_default_job = Capabilities(cuda_devices=0, cpu_devices=1)
    lease = queue.claim(engine, worker_id="bench", lease_seconds=3600, capabilities=any_default_job)
    assert lease is not None and lease.job_id == job.id
    for epoch in range(1, METRIC_ROWS + 1):
        metrics = {"epoch": epoch, "train_loss": 1 / epoch, "train_accuracy": 1 - 1 / (epoch + 1)}
        metrics |= {"val_loss": 1.1 / epoch, "val_accuracy": 1 - 1.1 / (epoch + 1), "learning_rate": 1e-3}
        metrics |= {"duration_seconds": 2.5, "samples_per_second": 4000.0 + epoch}
        row = EpochMetrics.model_validate(metrics)
        queue.record_epoch(engine, lease=lease, metrics=row, progress=epoch / METRIC_ROWS)
    queue.succeed(
        engine,
        lease=lease,
        runtime_seconds=250.0,
        results=RunResults(stop_reason=StopReason.completed, best_epoch=METRIC_ROWS),
    )
    background, _ = queue.submit(
        engine, job_in=JobCreate(name="background", hyperparameters=Hyperparameters(epochs=1000))
    )
    engine.dispose()
    return job.id, background.id


def wait_until_training(http: httpx.Client, job_id: str) -> None:
    deadline = time.monotonic() + TRAINING_START_TIMEOUT_S
    while (job := http.get(f"/jobs/{job_id}").json())["progress"] <= 0:
        if job["status"] not in {"queued", "running"} or time.monotonic() > deadline:
            raise SystemExit(f"the background job did not start training: {job['status']} {job['error']}")
        time.sleep(0.2)


def run_phase(api: Server, bare: Server, phase: str, job_id: str, seconds: float) -> dict[str, Result]:
    """Each GET scenario on the bare app, then at once on the API, so that both see the same load
    from the rest of the machine."""
    results: dict[str, Result] = {}
    for clients in (64, 8):
        for key, label, path in (
            ("health", "GET /health", "/health"),
            ("get", "GET /jobs/{id}", f"/jobs/{job_id}"),
        ):
            for server, name, prefix in ((bare, "bare app", "bare_"), (api, "API", "")):
                result = load(server, f"{label} ({name})", "GET", path, clients, seconds)
                results[f"{prefix}{key}{clients}"] = result
                print(result.line(phase), flush=True)
    # A poller that has the job already: its ETag back, answered 304 with no body.
    etag = {"If-None-Match": api[0].get(f"/jobs/{job_id}").headers["etag"]}
    label = "GET /jobs/{id} with If-None-Match (304)"
    results["poll64"] = result = load(api, label, "GET", f"/jobs/{job_id}", 64, seconds, etag)
    print(result.line(phase), flush=True)
    for clients in (64, 8):
        results[f"post{clients}"] = result = load(api, "POST /jobs", "POST", "/jobs", clients, seconds)
        print(result.line(phase), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window of each scenario")
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="uvicorn's event loop, for both apps (make run's: asyncio)",
    )
    args = parser.parse_args()
    generator = (
        "wrk" if wrk_load.available() else "Python (bench/load_client.py; install wrk to spare the CPU)"
    )
    print(f"load generator: {generator}; uvicorn --loop {args.loop}", flush=True)
    with tempfile.TemporaryDirectory(prefix="trainq-bench-") as tmp:
        env = service_env(Path(tmp))
        job_id, background_id = prepare(env["TRAINQ_DATABASE_URL"])
        with api_server(env, loop=args.loop) as api:
            http = api[0]
            bodies = Path(tmp) / "bare"
            bodies.mkdir()
            (bodies / "job.json").write_bytes(job := http.get(f"/jobs/{job_id}").content)
            (bodies / "health.json").write_bytes(http.get("/health").content)
            print(f"GET /jobs/{{id}} answers {len(job):,} bytes ({METRIC_ROWS} metric rows)", flush=True)
            bare_env = {**env, "BARE_APP_BODIES": str(bodies)}
            with api_server(bare_env, app="bench.bare_app:app", loop=args.loop) as bare:
                idle = run_phase(api, bare, "idle", job_id, args.seconds)
                worker = start_worker(env)
                try:
                    wait_until_training(http, background_id)
                    training = run_phase(api, bare, "training", job_id, args.seconds)
                    still = http.get(f"/jobs/{background_id}").json()["status"]
                    http.post(f"/jobs/{background_id}/cancel")
                finally:
                    stop(worker)
    print(f"the background job was {still} at the end of the training phase")
    report(idle, training)


if __name__ == "__main__":
    main()
