"""Finding and describing jobs from the command line against the live API: `submit --tag`, `list`'s
filters and sorts, `edit` and `show`. Jobs ask for a label no worker has, so they stay queued."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.e2e.conftest import Service
from tests.support.cli import failed_with, trainq

# No worker carries it: the job waits, queued, for as long as the test needs it to.
NO_WORKER = ("--label", "nowhere", "--epochs", "1")


def unique(word: str) -> str:
    """A tag or name no other test's job has, on the session's shared service."""
    return f"{word}-{uuid.uuid4().hex[:8]}"


def submitted(live: Service, *args: str) -> str:
    result = trainq(live, "submit", *NO_WORKER, *args)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def listed_ids(live: Service, *args: str) -> list[str]:
    result = trainq(live, "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return [job["id"] for job in json.loads(result.stdout)]


def test_list_tag_finds_the_jobs_submitted_with_every_tag_given_and_no_others(live: Service) -> None:
    team, lr = unique("team"), unique("lr")
    both = submitted(live, "--tag", team, "--tag", lr)
    team_only = submitted(live, "--tag", team)
    untagged = submitted(live)
    assert live.job(both)["tags"] == [team, lr]

    assert set(listed_ids(live, "--tag", team)) == {both, team_only}
    assert listed_ids(live, "--tag", team, "--tag", lr) == [both]
    assert untagged not in listed_ids(live, "--tag", team)
    # --since is inclusive and --until exclusive, as the API's created_after and created_before.
    moment = live.job(team_only)["created_at"]
    assert listed_ids(live, "--tag", team, "--since", moment) == [team_only]
    assert listed_ids(live, "--tag", team, "--until", moment) == [both]
    table = trainq(live, "list", "--wide", "--tag", team)
    assert table.exit_code == 0, table.output
    header, *rows = table.stdout.splitlines()
    assert header.split()[6] == "TAGS"
    assert next(row for row in rows if row.startswith(both)).split()[6] == f"{team},{lr}"


def test_submit_takes_the_tags_of_a_job_file_and_of_an_earlier_job_and_adds_the_tag_flags(
    live: Service, tmp_path: Path
) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("tags: [from-file, shared]\nhyperparameters: {epochs: 1}\n")
    first = submitted(live, "-f", str(path), "--tag", "shared", "--tag", "flag")
    assert live.job(first)["tags"] == ["from-file", "shared", "flag"]
    again = submitted(live, "--from", first, "--tag", "more")
    assert live.job(again)["tags"] == ["from-file", "shared", "flag", "more"]


def test_list_name_finds_by_substring_and_sort_puts_the_best_accuracy_first(
    live: Service, finished_job: dict
) -> None:
    name = finished_job["name"]
    later = submitted(live, "--name", f"{name.upper()}-{unique('later')}")
    found = listed_ids(live, "--name", name)
    assert found.index(later) < found.index(finished_job["id"])  # newest first
    assert all(
        name in job["name"].lower()
        for job in json.loads(trainq(live, "list", "--json", "--name", name).stdout)
    )
    best_first = listed_ids(live, "--name", name, "--sort", "-best_val_accuracy")
    # A job without an epoch comes last, whichever way the accuracy is sorted.
    assert best_first.index(finished_job["id"]) < best_first.index(later)
    assert unique("nobody") not in listed_ids(live, "--name", unique("nobody"))


def test_edit_changes_a_queued_jobs_name_tags_notes_and_priority_and_show_shows_them(live: Service) -> None:
    job_id = submitted(live, "--name", "before", "--tag", "old")
    tag = unique("kept")
    edited = trainq(
        live,
        "edit",
        job_id[:12],
        "--name",
        "after",
        "--tag",
        tag,
        "--tag",
        "second",
        "--notes",
        "lr looks [too] high",
        "--priority",
        "7",
    )
    assert edited.exit_code == 0, edited.output
    assert edited.stdout == f"{job_id}\n"
    job = live.job(job_id)
    assert (job["name"], job["tags"], job["notes"], job["priority"]) == (
        "after",
        [tag, "second"],
        "lr looks [too] high",
        7,
    )

    shown = trainq(live, "show", job_id)
    assert shown.exit_code == 0, shown.output
    rows = dict(line.strip().split(maxsplit=1) for line in shown.stdout.splitlines() if len(line.split()) > 1)
    assert rows["tags"] == f"{tag}, second"
    assert rows["notes"] == "lr looks [too] high"

    cleared = trainq(live, "edit", job_id, "--clear-tags", "--json")
    assert cleared.exit_code == 0, cleared.output
    assert json.loads(cleared.stdout)["tags"] == []
    assert live.job(job_id)["name"] == "after"  # only what was given changed


def test_edit_priority_of_a_finished_job_exits_1_with_the_apis_conflict(
    live: Service, finished_job: dict
) -> None:
    result = trainq(live, "edit", finished_job["id"], "--priority", "5")
    failed_with(result, "priority can only change while a job is queued")
    assert live.job(finished_job["id"])["priority"] == finished_job["priority"]
