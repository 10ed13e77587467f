# syntax=docker/dockerfile:1
# One image for both roles: the command picks the API (default) or the worker.
# PyTorch's Linux wheels on PyPI are CUDA builds (CUDA runtime and cuDNN included),
# so a slim Python base gives a CUDA-enabled torch pinned exactly like the project;
# the host provides only the NVIDIA driver, through the NVIDIA Container Toolkit.
ARG PYTHON_VERSION=3.11
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG TORCH_VERSION
ARG TORCHVISION_VERSION
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from pyproject.toml alone: this layer survives code edits.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" -r requirements.txt
COPY README.md ./
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
USER 1000:1000
WORKDIR /home/trainq
# All state (database, checkpoints, torch's weight cache) lives here.
VOLUME ["/var/lib/trainq"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"]
