# One image for both roles: the command picks the API (default) or the worker.
# PyTorch's Linux wheels on PyPI are CUDA builds (CUDA runtime and cuDNN included),
# so a slim Python base gives a CUDA-enabled torch pinned exactly like the project
# (requirements/runtime.lock); the host provides only the NVIDIA driver, through the
# NVIDIA Container Toolkit.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
# A package mirror for pip: --build-arg PIP_INDEX_URL=... (also PIP_EXTRA_INDEX_URL,
# PIP_TRUSTED_HOST for a mirror over plain http). Build arguments stay in this stage.
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_TRUSTED_HOST=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt
# CA certificates to trust while building (certs/*.crt: a proxy that re-signs HTTPS). Only
# this stage sees them: the final image starts again from the base.
COPY certs/ /usr/local/share/ca-certificates/build/
RUN update-ca-certificates && python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from the lock alone: this layer survives code edits.
COPY requirements/runtime.lock ./
RUN pip install --require-hashes -r runtime.lock
COPY pyproject.toml README.md ./
COPY app ./app
COPY worker ./worker
COPY trainq ./trainq
RUN pip install --no-deps .

FROM python:${PYTHON_VERSION}-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TRAINQ_DATABASE_URL=sqlite:////var/lib/trainq/trainq.db \
    TRAINQ_ARTIFACTS_DIR=/var/lib/trainq/artifacts \
    TRAINQ_DATA_DIR=/data \
    TORCH_HOME=/var/lib/trainq/torch
# A C compiler: torch.compile (compile: true) builds its kernels with it, on GPUs too (Triton).
# Not pinned: bookworm's security updates replace the exact version, which would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 trainq \
    && mkdir -p /var/lib/trainq /data \
    && chown trainq:trainq /var/lib/trainq /data
COPY --from=build /opt/venv /opt/venv
# The GPU check, to run inside the image: python /opt/trainq/bench/gpu_check.py
COPY bench/gpu_check.py bench/live_service.py /opt/trainq/bench/
# Starts as root only to hand a bind-mounted folder Docker created as root to uid 1000,
# then runs the command as that user (deploy/entrypoint.sh).
COPY deploy/entrypoint.sh /usr/local/bin/trainq-entrypoint
WORKDIR /home/trainq
# All state (database, checkpoints, torch's weight cache) lives here.
VOLUME ["/var/lib/trainq"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["trainq-entrypoint"]
# --loop asyncio, as `make run`: see the Makefile.
CMD ["uvicorn", "app.main:app", "--loop", "asyncio", "--host", "0.0.0.0", "--port", "8000"]
