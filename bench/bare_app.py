"""The baseline of bench/api_load.py: a bare FastAPI app on the same uvicorn, answering GET /health
and GET /jobs/{job_id} with the bytes the real API sent for them, from memory.

    BARE_APP_BODIES=<folder with health.json and job.json> python -m uvicorn bench.bare_app:app
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Response

_BODIES = Path(os.environ.get("BARE_APP_BODIES", "."))
HEALTH = (_BODIES / "health.json").read_bytes()
JOB = (_BODIES / "job.json").read_bytes()

app = FastAPI()


@app.get("/health")
async def health() -> Response:
    return Response(HEALTH, media_type="application/json")


@app.get("/jobs/{job_id}")
async def job(job_id: str) -> Response:
    return Response(JOB, media_type="application/json")
