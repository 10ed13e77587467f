"""The dashboard with many jobs, in a real browser against a live API: finding jobs in the list
(search, tags, status, order, pages), editing and deleting a job from its page, a sweep's page."""

from __future__ import annotations

import re

from playwright.sync_api import Dialog, Page, expect

from app.db import make_engine
from app.models import JobStatus
from tests.e2e.conftest import Service
from tests.e2e.jobs import TINY_JOB
from tests.support.browser import watch_for_problems
from tests.support.job_rows import insert_job

expect.set_options(timeout=20_000)
PAGE_SIZE = 50  # the list's page, as app/static/js/jobs.js asks for it


def submit(service: Service, name: str, tags: list[str], **extra: object) -> str:
    body = {"name": name, "tags": tags, "hyperparameters": {"dataset": "digits", "epochs": 1}, **extra}
    response = service.http.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def names_shown(page: Page) -> list[str]:
    return page.get_by_test_id("job-name").all_text_contents()


def test_the_jobs_list_is_searched_filtered_by_tag_sorted_and_paged_and_keeps_its_view_in_the_address(
    service: Service, page: Page
) -> None:
    problems = watch_for_problems(page)
    for number in range(PAGE_SIZE + 3):
        submit(service, f"bulk-{number:02d}", ["bulk"])
    wide = submit(service, "resnet-wide", ["vision", "keep"])
    submit(service, "resnet-narrow", ["vision"])
    # Ended jobs with known accuracies, written as the worker would leave them, oldest first.
    engine = make_engine(service.env["TRAINQ_DATABASE_URL"])
    for accuracy in (0.5, 0.9, 0.7):
        insert_job(engine, name=f"acc-{accuracy}", status=JobStatus.succeeded, best_val_accuracy=accuracy)
    engine.dispose()
    total = PAGE_SIZE + 3 + 2 + 3

    page.goto(str(service.http.base_url))
    rows = page.get_by_test_id("job-row")
    expect(rows).to_have_count(PAGE_SIZE)
    page.get_by_test_id("load-more").click()
    expect(rows).to_have_count(total)
    expect(page.get_by_test_id("load-more")).to_be_hidden()
    expect(page.locator('[data-testid="job-row"] [data-testid="job-best"]').first).to_have_text("70.0%")

    page.get_by_test_id("jobs-search").fill("RESNET")
    expect(rows).to_have_count(2)
    expect(page).to_have_url(re.compile(r"#/\?name=RESNET$"))
    row = page.locator(f'[data-testid="job-row"][data-job-id="{wide}"]')
    row.get_by_test_id("tag-chip").filter(has_text="keep").click()
    expect(page).to_have_url(re.compile(r"#/\?name=RESNET&tag=keep$"))
    expect(rows).to_have_count(1)
    expect(rows.get_by_test_id("job-name")).to_have_text("resnet-wide")
    filters = page.get_by_test_id("active-filter")
    filter_labels = page.locator('[data-testid="active-filter"] .chip-label')
    expect(filter_labels).to_have_text(["name: RESNET", "tag: keep"])

    # The address is the view: reloaded, it shows the same jobs and filters.
    page.reload()
    expect(rows).to_have_count(1)
    expect(page.get_by_test_id("jobs-search")).to_have_value("RESNET")
    expect(filter_labels).to_have_text(["name: RESNET", "tag: keep"])
    filters.filter(has_text="tag: keep").click()
    expect(rows).to_have_count(2)
    expect(page).to_have_url(re.compile(r"#/\?name=RESNET$"))
    page.get_by_test_id("jobs-status").select_option("succeeded")
    expect(page.get_by_test_id("jobs-notice")).to_have_text("No job matches these filters.")

    page.get_by_test_id("jobs-search").fill("acc-")
    expect(rows).to_have_count(3)
    assert names_shown(page) == ["acc-0.7", "acc-0.9", "acc-0.5"]  # newest first
    page.get_by_test_id("jobs-sort").select_option(label="Best accuracy")
    expect(rows.get_by_test_id("job-name")).to_have_text(["acc-0.9", "acc-0.7", "acc-0.5"])
    expect(rows.get_by_test_id("job-best")).to_have_text(["90.0%", "70.0%", "50.0%"])
    page.reload()
    expect(rows.get_by_test_id("job-name")).to_have_text(["acc-0.9", "acc-0.7", "acc-0.5"])
    expect(page.get_by_test_id("jobs-sort")).to_have_value("-best_val_accuracy")
    expect(page.get_by_test_id("jobs-status")).to_have_value("succeeded")
    # A job's page leads back to the list as it was left.
    view = page.url
    rows.first.get_by_test_id("job-name").click()
    expect(page.get_by_test_id("job-title")).to_have_text("acc-0.9")
    page.get_by_test_id("back-to-jobs").click()
    expect(page).to_have_url(view)
    expect(rows.get_by_test_id("job-name")).to_have_text(["acc-0.9", "acc-0.7", "acc-0.5"])
    assert problems == []


def test_a_sweeps_page_ranks_its_jobs_links_them_and_compares_them_all(service: Service, page: Page) -> None:
    body = {
        "name": "lr-grid",
        "method": "grid",
        "base": {"hyperparameters": {"dataset": "digits", "epochs": 1}},
        "parameters": {"learning_rate": {"values": [0.01, 0.001]}},
    }
    response = service.http.post("/sweeps", json=body)
    assert response.status_code == 201, response.text
    sweep = response.json()
    ids = [job["id"] for job in sweep["jobs"]]

    page.goto(f"{service.http.base_url}/#/jobs/{ids[0]}")
    page.get_by_test_id("job-sweep").click()
    expect(page).to_have_url(re.compile(f"#/sweeps/{sweep['id']}$"))
    expect(page.get_by_test_id("sweep-title")).to_have_text("lr-grid")
    rows = page.get_by_test_id("sweep-row")
    expect(rows).to_have_count(2)
    assert [row.get_attribute("data-job-id") for row in rows.all()] == ids
    expect(page.get_by_test_id("sweep-compare")).to_have_attribute("href", f"#compare={','.join(ids)}")
    rows.nth(1).get_by_role("link").click()
    expect(page).to_have_url(re.compile(f"#/jobs/{ids[1]}$"))
    expect(page.get_by_test_id("job-title")).to_have_text(sweep["jobs"][1]["name"])


def test_an_ended_job_is_tagged_noted_and_deleted_from_its_page_and_a_queued_one_is_not(
    service: Service, page: Page
) -> None:
    problems = watch_for_problems(page)
    dialogs: list[str] = []

    def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    # Needs a label no worker has, so it stays queued beside a running worker.
    waiting = service.http.post(
        "/jobs", json={"name": "waits", "hyperparameters": TINY_JOB, "resources": {"labels": ["nowhere"]}}
    ).json()["id"]
    service.start_worker()
    ended = service.submit("to delete", **{**TINY_JOB, "epochs": 3, "keep_checkpoints_last": 3})
    job = service.wait_until_final(ended)
    assert job["status"] == "succeeded" and len(job["checkpoints"]) == 3, job

    page.goto(f"{service.http.base_url}/#/jobs/{ended}")
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded")
    expect(page.get_by_test_id("job-disk")).not_to_have_text("0 B")
    tags = page.locator('[data-testid="job-tag"] .chip-label')
    page.get_by_test_id("tag-input").fill("baseline")
    page.get_by_test_id("add-tag").click()
    expect(tags).to_have_text(["baseline"])
    page.get_by_test_id("tag-input").fill("small")
    page.get_by_test_id("tag-input").press("Enter")
    expect(tags).to_have_text(["baseline", "small"])
    page.locator('[data-testid="job-tag"][data-tag="baseline"]').get_by_test_id("remove-tag").click()
    expect(tags).to_have_text(["small"])
    page.get_by_test_id("job-notes").fill("lr too high?\nretry with 1e-3")
    page.get_by_test_id("save-notes").click()
    expect(page.get_by_test_id("edit-message")).to_have_text("Notes saved.")
    saved = service.job(ended)
    assert saved["tags"] == ["small"] and saved["notes"] == "lr too high?\nretry with 1e-3"
    expect(page.get_by_test_id("priority-form")).to_be_hidden()

    # Every checkpoint but the best can be deleted from its row.
    best = next(c["epoch"] for c in job["checkpoints"] if c["is_best"])
    checkpoint_rows = page.get_by_test_id("checkpoint-row")
    expect(page.locator(f'[data-epoch="{best}"] [data-testid="checkpoint-delete"]')).to_have_count(0)
    expect(page.get_by_test_id("checkpoint-delete")).to_have_count(2)
    other = next(c["epoch"] for c in job["checkpoints"] if not c["is_best"])
    page.locator(f'[data-epoch="{other}"]').get_by_test_id("checkpoint-delete").click()
    expect(checkpoint_rows).to_have_count(2)
    assert other not in [c["epoch"] for c in service.job(ended)["checkpoints"]]

    page.get_by_test_id("delete-job").click()
    expect(page).to_have_url(re.compile(r"#/$"))
    assert service.http.get(f"/jobs/{ended}").status_code == 404
    assert len(dialogs) == 2

    # A queued job: its priority can change, but it is not deleted before it is cancelled.
    page.goto(f"{service.http.base_url}/#/jobs/{waiting}")
    expect(page.get_by_test_id("job-status")).to_have_text("queued")
    page.get_by_test_id("priority-input").fill("7")
    page.get_by_test_id("save-priority").click()
    expect(page.get_by_test_id("job-priority")).to_have_text("7")
    assert service.job(waiting)["priority"] == 7
    page.get_by_test_id("delete-job").click()
    expect(page.get_by_test_id("job-action-error")).to_contain_text(
        "the job is queued: only ended jobs can be deleted"
    )
    assert service.job(waiting)["status"] == "queued"
    assert problems == []
