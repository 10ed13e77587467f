"""A real nginx (Debian's nginx-light) in front of a real API, configured by deploy/nginx.conf."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.polling import wait_for
from tests.support.processes import HEALTH_PATH, REPO_ROOT, free_port

SITE_CONF = REPO_ROOT / "deploy" / "nginx.conf"
NGINX = "/usr/sbin/nginx"


def site_config(*, api_port: int, port: int, artifacts_dir: Path) -> str:
    """deploy/nginx.conf as shipped, with only its address, port and folder made this test's."""
    site = SITE_CONF.read_text()
    for shipped, local in {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{api_port};",
        "listen 8080;": f"listen 127.0.0.1:{port};",
        "alias /var/lib/trainq/artifacts/;": f"alias {artifacts_dir.resolve()}/;",
    }.items():
        assert site.count(shipped) == 1, f"deploy/nginx.conf no longer has {shipped!r}: update {__file__}"
        site = site.replace(shipped, local)
    return site


@contextmanager
def nginx_in_front(api_base_url: str, artifacts_dir: Path, work_dir: Path) -> Iterator[str]:
    """Runs nginx with deploy/nginx.conf before the API at `api_base_url`; yields nginx's base URL."""
    assert shutil.which(NGINX), "the nginx tests run Debian's nginx: apt-get install nginx-light"
    work_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = site_config(api_port=int(api_base_url.rsplit(":", 1)[1]), port=port, artifacts_dir=artifacts_dir)
    temp_paths = "\n".join(
        f"{kind}_temp_path {work_dir / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # One process as the test's own user: a root master would serve files as nobody, who cannot
    # read the test's private temporary folders.
    config = work_dir / "nginx.conf"
    config.write_text(
        f"daemon off;\nmaster_process off;\npid {work_dir / 'nginx.pid'};\nerror_log {work_dir / 'error.log'};\n"
        f"events {{}}\nhttp {{\naccess_log off;\n{temp_paths}\n{site}\n}}\n"
    )
    log = (work_dir / "stderr.log").open("wb")
    process = subprocess.Popen([NGINX, "-p", str(work_dir), "-c", str(config)], stdout=log, stderr=log)
    base_url = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {(work_dir / 'stderr.log').read_text()}")
        try:
            return httpx.get(f"{base_url}{HEALTH_PATH}", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answering, timeout_s=30, what="nginx to pass /health to the API")
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
