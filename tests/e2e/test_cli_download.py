"""`trainq download` (and Client.download_checkpoint) against a live service: where the file goes,
what it may replace, and that a download is verified and resumable."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from tests.e2e.conftest import Service
from tests.support.cli import failed_with, trainq
from tests.support.polling import wait_for
from trainq import Client, TrainqError


@pytest.fixture(scope="module")
def best(finished_job: dict) -> dict:
    return next(entry for entry in finished_job["checkpoints"] if entry["is_best"])


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_best_is_verified_against_its_sha256(
    live: Service, finished_job: dict, best: dict, tmp_path: Path
) -> None:
    result = trainq(live, "download", finished_job["id"], "best", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path == tmp_path / f"{finished_job['name']}-{finished_job['id'][:8]}-epoch{best['epoch']}-best.pt"
    assert sha256_of(path) == best["sha256"]
    assert f"sha256 {best['sha256']} verified" in result.stderr
    assert list(tmp_path.iterdir()) == [path]


def test_an_interrupted_download_resumes_with_a_range_request(
    live: Service, finished_job: dict, tmp_path: Path
) -> None:
    latest = max(finished_job["checkpoints"], key=lambda entry: entry["epoch"])
    content = live.http.get(latest["url"]).content
    kept = len(content) // 3
    (tmp_path / "model.pt.part").write_bytes(content[:kept])

    result = trainq(live, "download", finished_job["id"], "latest", "-o", str(tmp_path / "model.pt"))
    assert result.exit_code == 0, result.output
    assert (
        f"transferred {len(content) - kept} of {len(content)} bytes, resumed at byte {kept}" in result.stderr
    )
    assert (tmp_path / "model.pt").read_bytes() == content
    assert not (tmp_path / "model.pt.part").exists()
    access_log = live.state_dir / "api.log"
    partial = f'"GET {latest["url"]} HTTP/1.1" 206'
    wait_for(lambda: partial in access_log.read_text(), timeout_s=10, what="a 206 in the access log")


def test_a_download_that_does_not_match_its_sha256_fails_and_keeps_nothing(
    live: Service, finished_job: dict, tmp_path: Path
) -> None:
    (tmp_path / "model.pt.part").write_bytes(b"not the start of any checkpoint")
    result = trainq(live, "download", finished_job["id"], "best", "-o", str(tmp_path / "model.pt"))
    failed_with(result, "sha256 mismatch", "run the download again")
    assert list(tmp_path.iterdir()) == []


def test_a_path_ending_in_a_slash_is_a_folder_created_when_missing(
    live: Service, finished_job: dict, best: dict, tmp_path: Path
) -> None:
    name = f"{finished_job['name']}-{finished_job['id'][:8]}-epoch{best['epoch']}-best.pt"
    (tmp_path / "linked").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "linked")
    for output, folder in [
        (f"{tmp_path}/dir/", tmp_path / "dir"),
        (f"{tmp_path}/new/nested/", tmp_path / "new" / "nested"),
        (str(tmp_path / "link"), tmp_path / "link"),
    ]:
        result = trainq(live, "download", finished_job["id"], "-o", output)
        assert result.exit_code == 0, result.output
        assert result.stdout == f"{folder / name}\n"
        assert sha256_of(folder / name) == best["sha256"]
    assert (tmp_path / "linked" / name).is_file()


def test_an_existing_file_is_replaced_only_with_force(
    live: Service, finished_job: dict, best: dict, tmp_path: Path
) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"an older model")
    refused = trainq(live, "download", finished_job["id"], "-o", str(target))
    failed_with(refused, f"{target} already exists; pass --force")
    assert list(tmp_path.iterdir()) == [target]
    assert target.read_bytes() == b"an older model"

    replaced = trainq(live, "download", finished_job["id"], "-o", str(target), "--force")
    assert replaced.exit_code == 0, replaced.output
    assert sha256_of(target) == best["sha256"]


def test_without_o_the_server_file_name_here_is_replaced_only_with_force(
    live: Service, finished_job: dict, best: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = trainq(live, "download", finished_job["id"])
    assert first.exit_code == 0, first.output
    path = Path(first.stdout.strip())
    assert path.parent == tmp_path
    failed_with(trainq(live, "download", finished_job["id"]), f"{path} already exists; pass --force")
    again = trainq(live, "download", finished_job["id"], "--force")
    assert (again.exit_code, again.stdout) == (0, first.stdout), again.output
    assert sha256_of(path) == best["sha256"]


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_a_pipe_or_a_link_to_one_is_never_replaced(
    live: Service, finished_job: dict, tmp_path: Path, force: list[str]
) -> None:
    pipe, link = tmp_path / "pipe", tmp_path / "link"
    os.mkfifo(pipe)
    link.symlink_to(pipe)
    for target, kind in [(pipe, "a named pipe"), (link, "a link to a named pipe")]:
        result = trainq(live, "download", finished_job["id"], "-o", str(target), *force)
        failed_with(result, f"cannot save to {target}: it is {kind}; choose another path")
    assert stat.S_ISFIFO(pipe.lstat().st_mode)
    assert link.is_symlink()
    assert sorted(tmp_path.iterdir()) == [link, pipe]


def test_a_part_file_that_links_elsewhere_is_never_written_through(
    live: Service, finished_job: dict, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere.pt"
    elsewhere.write_bytes(b"someone else's file")
    (tmp_path / "model.pt.part").symlink_to(elsewhere)
    result = trainq(live, "download", finished_job["id"], "-o", str(tmp_path / "model.pt"), "--force")
    failed_with(result, "model.pt.part is a link to a regular file; remove it or choose another path")
    assert elsewhere.read_bytes() == b"someone else's file"


def test_the_client_refuses_an_existing_file_before_a_byte_is_downloaded(
    live: Service, finished_job: dict, best: dict, tmp_path: Path
) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"an older model")
    seen: list[tuple[int, int]] = []
    with Client(str(live.http.base_url)) as client:
        with pytest.raises(TrainqError, match="already exists; pass --force"):
            client.download_checkpoint(
                finished_job["id"], "best", target, progress=lambda *at: seen.append(at)
            )
        assert seen == []
        result = client.download_checkpoint(finished_job["id"], "best", target, force=True)
    assert result.path == target
    assert sha256_of(target) == result.sha256 == best["sha256"]
