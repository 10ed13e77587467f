"""The client's file transfers: listing, downloading and deleting a job's checkpoints and exports."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from email.message import Message
from pathlib import Path
from typing import Any

from trainq.connection import Connection, job_path
from trainq.destination import check_target, make_folder, split_destination
from trainq.download import Download, fetch_checkpoint
from trainq.errors import NotFound, TrainqError

CHECKPOINT_REFS = ("latest", "best")

ProgressCallback = Callable[[int, int], None]


class Transfers(Connection):
    """What Client does with a job's files; every method is Client's."""

    # --- checkpoints --------------------------------------------------------------

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        return list(self._request("GET", f"{job_path(job_id)}/checkpoints").json())

    def delete_checkpoint(self, job_id: str, epoch: int) -> None:
        """Delete one checkpoint; Conflict for the best one or the one a running job resumes from."""
        self._request("DELETE", f"{job_path(job_id)}/checkpoints/{int(epoch)}")

    def checkpoint(self, job_id: str, ref: str | int = "best") -> dict[str, Any]:
        """The listed checkpoint that `ref` (latest, best or an epoch number) names right now."""
        listed = self.checkpoints(job_id)
        found: dict[str, Any] | None
        if ref == "latest":
            found = max(listed, key=lambda entry: int(entry["epoch"]), default=None)
        elif ref == "best":
            found = next((entry for entry in listed if entry["is_best"]), None)
        else:
            epoch = _epoch_number(ref)
            found = next((entry for entry in listed if entry["epoch"] == epoch), None)
        if found is None:
            raise NotFound(f"job {job_id} has no checkpoint {str(ref)!r}")
        return found

    def download_checkpoint(
        self,
        job_id: str,
        ref: str | int = "best",
        path: str | Path | None = None,
        *,
        progress: ProgressCallback | None = None,
        resume: bool = True,
        force: bool = False,
    ) -> Download:
        """Save a checkpoint, verified against its sha256, and return where it went.

        `path` is a file or a folder: None (the current folder), an existing folder or a path ending in '/'
        (created when missing) gets the server's file name. An existing file is replaced only with `force`;
        anything else that is not a regular file is refused. The bytes go to `<file>.part` first; with
        `resume`, an existing `.part` is continued with a Range request instead of starting over.
        `progress(done_bytes, total_bytes)` is called as bytes arrive.
        """
        return self._download(
            lambda: self.checkpoint(job_id, ref), job_id, path, progress=progress, resume=resume, force=force
        )

    # --- exports ------------------------------------------------------------------

    def export(self, job_id: str, which: str) -> dict[str, Any]:
        """The job's listed export named `which` ("model.onnx") or of format `which` ("onnx")."""
        listed = self._request("GET", job_path(job_id)).json().get("exports") or []
        found = next((entry for entry in listed if which in (entry["name"], entry["format"])), None)
        if found is None:
            names = ", ".join(f"{entry['format']} ({entry['name']})" for entry in listed) or "none yet"
            raise NotFound(f"job {job_id} has no export {which!r}; it has: {names}")
        return dict(found)

    def download_export(
        self,
        job_id: str,
        which: str,
        path: str | Path | None = None,
        *,
        progress: ProgressCallback | None = None,
        resume: bool = True,
        force: bool = False,
    ) -> Download:
        """Save an export (by name or format), verified against its sha256; `path` and the rest as
        download_checkpoint takes them."""
        return self._download(
            lambda: self.export(job_id, which), job_id, path, progress=progress, resume=resume, force=force
        )

    def _download(
        self,
        find: Callable[[], dict[str, Any]],
        job_id: str,
        path: str | Path | None,
        *,
        progress: ProgressCallback | None,
        resume: bool,
        force: bool,
    ) -> Download:
        folder, name = split_destination(path)
        if name is not None:
            # Before the file is looked up: a path that cannot be used is the first thing to hear about.
            check_target(folder / name, force=force)
        entry = find()
        if name is None:
            head = self._request("HEAD", entry["url"])
            name = _attachment_name(head.headers.get("content-disposition"), job_id, entry)
            make_folder(folder)
            check_target(folder / name, force=force)
        with self._http_errors_raised():
            return fetch_checkpoint(self._http, entry, folder / name, progress=progress, resume=resume)


def _epoch_number(ref: str | int) -> int:
    try:
        return int(ref)
    except ValueError:
        raise TrainqError(f"checkpoint must be 'latest', 'best' or an epoch number, not {ref!r}") from None


def _attachment_name(disposition: str | None, job_id: str, entry: Mapping[str, Any]) -> str:
    message = Message()
    message["content-disposition"] = disposition or ""
    # Only the last path component: a server must not be able to write outside the chosen folder.
    name = Path(message.get_filename() or "").name
    if name:
        return name
    return (
        f"{job_id}-epoch{entry['epoch']}.pt" if "epoch" in entry else f"{job_id}-{Path(entry['name']).name}"
    )
