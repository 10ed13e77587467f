"""POST /jobs?dry_run=true looks at an imagefolder job's folder where the API sees the data folder."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from app.settings import Settings
from tests.support.images import make_image_folder


def _imagefolder(path: str) -> dict[str, Any]:
    return {"hyperparameters": {"dataset": "imagefolder", "dataset_path": path}}


def test_dry_run_accepts_a_good_image_folder(client: TestClient, settings: Settings) -> None:
    make_image_folder(settings.data_dir / "shapes", per_class=1, size=8)

    response = client.post("/jobs?dry_run=true", json=_imagefolder("shapes"))

    assert response.status_code == 200
    assert response.json()["hyperparameters"]["augment"] == "light"


def test_dry_run_refuses_a_folder_next_to_train_naming_it(client: TestClient, settings: Settings) -> None:
    make_image_folder(settings.data_dir / "shapes", splits=("train", "junk"), per_class=1, size=8)

    response = client.post("/jobs?dry_run=true", json=_imagefolder("shapes"))

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "hyperparameters", "dataset_path"]
    assert "also has junk/" in error["msg"]
    assert client.get("/jobs").json()["items"] == []


def test_dry_run_refuses_a_missing_folder(client: TestClient, settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True)

    response = client.post("/jobs?dry_run=true", json=_imagefolder("nowhere"))

    assert response.status_code == 422
    message = response.json()["detail"][0]["msg"]
    assert "dataset_path 'nowhere' does not exist: create TRAINQ_DATA_DIR/nowhere/" in message
    assert str(settings.data_dir) not in message


def test_a_real_submit_does_not_look_at_the_folder(client: TestClient, settings: Settings) -> None:
    # Workers may mount another disk at TRAINQ_DATA_DIR: what the API lacks is not the job's fault.
    make_image_folder(settings.data_dir / "shapes", splits=("train", "junk"), per_class=1, size=8)

    assert client.post("/jobs", json=_imagefolder("shapes")).status_code == 201


def test_dry_run_without_a_data_folder_on_the_api_checks_nothing(client: TestClient) -> None:
    assert client.post("/jobs?dry_run=true", json=_imagefolder("anything")).status_code == 200
