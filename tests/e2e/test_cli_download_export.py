"""`trainq download ID --export FORMAT|NAME` against a live API: the exported file, verified."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image
from sqlmodel import Session

from app.contract import EvalTransform, ExportFile
from app.db import make_engine
from app.models import Job
from tests.e2e.conftest import Service
from tests.support.cli import failed_with, trainq
from tests.support.models import BRIGHTNESS_CLASSES, BRIGHTNESS_SIZE, brightness_mlp
from worker.training.export import export_model


def _job_with_a_safetensors_export(service: Service) -> tuple[str, ExportFile]:
    """A job whose row lists a real model.safetensors in its first attempt's folder."""
    response = service.http.post("/jobs", json={"name": "exported"})
    response.raise_for_status()
    job_id = response.json()["id"]
    sizes = {"num_classes": 2, "in_channels": 1, "image_size": BRIGHTNESS_SIZE}
    (info,) = export_model(
        brightness_mlp(),
        class_names=BRIGHTNESS_CLASSES,
        eval_transform=EvalTransform(
            image_size=BRIGHTNESS_SIZE, resize_size=BRIGHTNESS_SIZE, channels=1, mean=None, std=None
        ),
        model_name="mlp",
        model_args=sizes,
        formats=["safetensors"],
        out_dir=Path(service.env["TRAINQ_ARTIFACTS_DIR"]) / job_id / "attempt-1",
    )
    listed = ExportFile(
        name=info.name,
        format=info.format,
        file_name=f"attempt-1/{info.name}",
        size_bytes=info.size_bytes,
        sha256=info.sha256,
    )
    engine = make_engine(service.env["TRAINQ_DATABASE_URL"])
    with Session(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.exports = [listed.model_dump()]
        session.add(job)
        session.commit()
    engine.dispose()
    return job_id, listed


def test_download_export_by_format_or_name_is_verified_and_predicts(service: Service, tmp_path: Path) -> None:
    job_id, listed = _job_with_a_safetensors_export(service)

    by_format = trainq(service, "download", job_id, "--export", "safetensors", "-o", f"{tmp_path}/out/")
    assert by_format.exit_code == 0, by_format.output
    path = Path(by_format.stdout.strip())
    assert path == tmp_path / "out" / f"exported-{job_id[:8]}-model.safetensors"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == listed.sha256
    assert f"sha256 {listed.sha256} verified" in by_format.stderr

    target = tmp_path / "mine.safetensors"
    by_name = trainq(service, "download", job_id, "--export", "model.safetensors", "-o", str(target))
    assert by_name.exit_code == 0, by_name.output
    assert Path(by_name.stdout.strip()) == target
    assert target.read_bytes() == path.read_bytes()

    from worker import predict

    images = [Image.new("L", (6, 6), 255), Image.new("L", (6, 6), 0)]
    assert [p.class_name for p in predict(target, images)] == ["bright", "dark"]


def test_download_of_an_export_the_job_lacks_names_what_it_has(service: Service, tmp_path: Path) -> None:
    job_id, _ = _job_with_a_safetensors_export(service)
    result = trainq(service, "download", job_id, "--export", "onnx", "-o", f"{tmp_path}/out/")
    failed_with(result, "no export 'onnx'", "safetensors (model.safetensors)")
    assert not (tmp_path / "out").exists()
