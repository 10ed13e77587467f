"""The dashboard in a real browser (Debian's chromium) against a live API and a real worker."""

from __future__ import annotations

import hashlib
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect

from tests.e2e.conftest import Service, running_service
from tests.support.browser import watch_for_problems
from tests.support.processes import training_pids

EPOCHS = 4
TRAINING_TIMEOUT_MS = 120_000
# Generous, because a busy 2-core machine runs the browser, the API and training side by side.
expect.set_options(timeout=20_000)
KEY = "alice-browser-key-0123456789"
# What the page showed after each change of the loss chart's point count, and the status beside it.
# Recorded by the browser itself (a mutation observer runs after every render), so no state the page
# passed through is missed between two polls.
RECORD_CHANGES = """() => {
  const chart = document.querySelector('[data-testid="loss-chart"]');
  const status = document.querySelector('[data-testid="job-status"]');
  window.seen = [];
  const observer = new MutationObserver(() => {
    const points = Number(chart.dataset.points);
    const last = window.seen[window.seen.length - 1];
    if (points !== (last ? last.points : 0)) window.seen.push({ points, status: status.textContent });
  });
  observer.observe(chart, { attributes: true, attributeFilter: ["data-points"] });
  observer.observe(status, { childList: true, subtree: true, characterData: true });
}"""


@pytest.fixture
def keyed_service(tmp_path: Path) -> Iterator[Service]:
    with running_service(tmp_path, api_key=KEY, TRAINQ_API_KEYS=f"alice:{KEY}") as running:
        yield running


def submit_from_form(page: Page, name: str, epochs: int) -> str:
    """Fill the form, see the server's dry-run errors for bad values, fix them and submit."""
    page.get_by_test_id("field-name").fill(name)
    page.get_by_test_id("field-dataset").select_option("digits")
    page.get_by_test_id("field-lr_scheduler").select_option("step")
    expect(page.get_by_test_id("form-errors")).to_contain_text("lr_scheduler 'step' needs step_size")
    page.get_by_test_id("field-lr_scheduler").select_option("none")
    expect(page.get_by_test_id("form-errors")).to_be_empty()

    epochs_field = page.get_by_test_id("field-epochs")
    epochs_field.fill("0")
    epochs_field.press("Tab")
    expect(page.get_by_test_id("error-epochs")).to_have_text("Input should be greater than or equal to 1")
    expect(epochs_field).to_have_attribute("aria-invalid", "true")
    epochs_field.fill(str(epochs))
    epochs_field.press("Tab")
    expect(page.get_by_test_id("error-epochs")).to_be_empty()
    expect(epochs_field).not_to_have_attribute("aria-invalid", "true")

    page.get_by_test_id("submit-job").click()
    expect(page).to_have_url(re.compile(r"#/jobs/[0-9a-f]{32}$"))
    return page.url.rsplit("/", 1)[1]


def download_best_checkpoint(page: Page, job: dict) -> None:
    best = next(c for c in job["checkpoints"] if c["is_best"])
    row = page.locator(f'[data-testid="checkpoint-row"][data-epoch="{best["epoch"]}"]')
    with page.expect_download() as download:
        row.get_by_test_id("checkpoint-download").click()
    assert download.value.suggested_filename.endswith(f"-epoch{best['epoch']}-best.pt")
    assert hashlib.sha256(download.value.path().read_bytes()).hexdigest() == best["sha256"]


def save_screenshot(page: Page, tmp_path: Path) -> None:
    page.screenshot(path=tmp_path / "dashboard.png")
    if target := os.environ.get("TRAINQ_SCREENSHOT"):
        page.screenshot(path=target)


def test_a_job_submitted_in_the_browser_draws_its_curves_live_and_ends_with_checkpoints_and_logs(
    service: Service, page: Page, tmp_path: Path
) -> None:
    problems = watch_for_problems(page)
    page.goto(str(service.http.base_url))
    expect(page.get_by_test_id("jobs-notice")).to_have_text("No jobs yet: submit one with the form.")

    name = "digits from the browser"
    job_id = submit_from_form(page, name, EPOCHS)
    status = page.get_by_test_id("job-status")
    loss = page.get_by_test_id("loss-chart")
    # No worker yet: the page is open on a queued job and listening, so all it shows next arrives live.
    expect(page.get_by_test_id("job-title")).to_have_text(name)
    expect(status).to_have_text("queued")
    expect(page.get_by_test_id("stream-state")).to_have_attribute("data-state", "live")
    expect(loss).to_have_attribute("data-points", "0")
    page.evaluate(RECORD_CHANGES)
    worker = service.start_worker()
    # Held after an epoch, so that the page shows a running job with points however fast this
    # machine trains (a whole job could otherwise reach the page in one burst of events).
    service.wait_for_job(job_id, lambda job: 1 <= len(job["metrics"]) < EPOCHS, "a first epoch")
    (trainer,) = training_pids(worker)
    os.kill(trainer, signal.SIGSTOP)
    try:
        expect(status).to_have_text("running")
        expect(loss).to_have_attribute("data-points", re.compile(r"^[1-9]"))
    finally:
        os.kill(trainer, signal.SIGCONT)

    expect(status).to_have_text("succeeded", timeout=TRAINING_TIMEOUT_MS)
    for chart in ("loss-chart", "accuracy-chart", "lr-chart"):
        expect(page.get_by_test_id(chart)).to_have_attribute("data-points", str(EPOCHS))
    seen = page.evaluate("window.seen")
    counts = [change["points"] for change in seen]
    assert counts[0] >= 1 and seen[0]["status"] == "running", seen
    assert counts == sorted(set(counts)) and counts[-1] == EPOCHS and len(counts) >= 2, seen

    job = service.job(job_id)
    best_accuracy = max(row["val_accuracy"] for row in job["metrics"])
    expect(page.get_by_test_id("best-val-accuracy")).to_contain_text(f"{best_accuracy * 100:.1f}%")
    expect(page.get_by_test_id("job-epochs")).to_have_text(f"{EPOCHS} / {EPOCHS}")
    expect(page.get_by_test_id("cancel-job")).to_be_hidden()
    expect(page.get_by_test_id("checkpoint-sha256")).to_have_text([c["sha256"] for c in job["checkpoints"]])
    download_best_checkpoint(page, job)
    # The best epoch on the validation split, per class, with a confusion matrix of every sample.
    expect(page.get_by_test_id("job-stop-reason")).to_have_text("completed")
    info = job["dataset_info"]
    expect(page.get_by_test_id("job-dataset")).to_have_text(
        f"10 classes, {info['train_samples']} train / {info['val_samples']} val / 0 test (digits)"
    )
    val_results = page.get_by_test_id("val-results")
    expect(val_results.get_by_test_id("class-row")).to_have_count(len(job["dataset_info"]["classes"]))
    expect(val_results.get_by_test_id("confusion-row")).to_have_count(len(job["dataset_info"]["classes"]))
    cells = val_results.get_by_test_id("confusion-cell").all_text_contents()
    assert sum(map(int, cells)) == job["dataset_info"]["val_samples"] > 0
    expect(page.get_by_test_id("test-results")).to_be_hidden()
    log = service.http.get(f"/jobs/{job_id}/logs").text.splitlines()
    expect(page.get_by_test_id("job-log")).to_contain_text(log[-1])
    shown = (page.get_by_test_id("job-log").text_content() or "").splitlines()
    assert shown == log[: len(shown)] and len(shown) >= EPOCHS
    save_screenshot(page, tmp_path)

    page.get_by_test_id("back-to-jobs").click()
    row = page.locator(f'[data-testid="job-row"][data-job-id="{job_id}"]')
    expect(row.get_by_test_id("job-name")).to_have_text(name)
    expect(row.get_by_test_id("status-badge")).to_have_text("succeeded")
    expect(row.get_by_test_id("job-epochs")).to_have_text(f"{EPOCHS}/{EPOCHS}")
    assert problems == []


def test_with_keys_on_the_dashboard_asks_for_a_key_then_works_with_it(
    keyed_service: Service, page: Page
) -> None:
    keyed_service.start_worker()
    page.goto(str(keyed_service.http.base_url))
    prompt = page.get_by_test_id("key-prompt")
    expect(prompt).to_be_visible()
    expect(page.get_by_test_id("key-message")).to_contain_text("an API key is required")

    page.get_by_test_id("key-input").fill("not-the-key-0123456789")
    page.get_by_test_id("key-submit").click()
    expect(page.get_by_test_id("key-message")).to_have_text("the API key is not valid")
    page.get_by_test_id("key-input").fill(KEY)
    page.get_by_test_id("key-submit").click()
    expect(prompt).to_be_hidden()
    expect(page.get_by_test_id("jobs-notice")).to_have_text("No jobs yet: submit one with the form.")
    assert page.evaluate("Object.values(sessionStorage)") == [KEY]
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []

    name = "digits <b>behind</b> a key"
    job_id = submit_from_form(page, name, 2)
    # A name is user input: shown as text, never parsed as markup.
    expect(page.get_by_test_id("job-title")).to_have_text(name)
    expect(page.locator('[data-testid="job-title"] b')).to_have_count(0)
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded", timeout=TRAINING_TIMEOUT_MS)
    expect(page.get_by_test_id("loss-chart")).to_have_attribute("data-points", "2")
    job = keyed_service.job(job_id)
    expect(page.get_by_test_id("checkpoint-row")).to_have_count(len(job["checkpoints"]))
    download_best_checkpoint(page, job)

    page.get_by_test_id("forget-key").click()
    expect(prompt).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_after_a_dropped_stream_the_page_resumes_after_the_last_event_it_saw(
    service: Service, page: Page
) -> None:
    service.start_worker()
    job_id = service.submit("resumed stream", dataset="digits", epochs=2)
    service.wait_until_final(job_id)
    sent_ids: list[str | None] = []
    complete_ids: list[str] = []

    def drop_the_first_stream(route: Route) -> None:
        sent_ids.append(route.request.headers.get("last-event-id"))
        if len(sent_ids) > 1:
            route.continue_()
            return
        # The real replay, cut in the middle of the second epoch's event.
        body = route.fetch().text()
        second_epoch = body.index("event: epoch", body.index("event: epoch") + 1)
        cut = body.rindex("\r\n\r\n", 0, second_epoch) + 4
        complete_ids.extend(re.findall(r"^id: (\S+)", body[:cut], flags=re.MULTILINE))
        route.fulfill(status=200, content_type="text/event-stream", body=body[: cut + 12])

    page.route("**/jobs/*/events", drop_the_first_stream)
    page.goto(f"{service.http.base_url}/#/jobs/{job_id}")
    expect(page.get_by_test_id("stream-state")).to_have_attribute("data-state", "ended")
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded")
    expect(page.get_by_test_id("loss-chart")).to_have_attribute("data-points", "2")
    assert len(complete_ids) >= 3
    # The first stream starts after the log tail the page read (event 0, that log offset); the
    # second resumes after the last complete event.
    assert sent_ids[0] is not None and sent_ids[0].startswith("0.")
    assert sent_ids[1:] == [complete_ids[-1]]


def test_the_page_reads_server_sent_events_however_the_bytes_are_split(service: Service, page: Page) -> None:
    stream = (
        'id: 1.0\r\nevent: status\r\ndata: {"status": "running"}\r\n\r\n'
        ": ping\r\n\r\n"
        "event: log\r\ndata: line one\r\ndata:line two\r\n\r\n"
        "id: 2.40\nevent: end\ndata: {}\n\n"
        "event: epoch\r\ndata: cut off"
    )
    expected = [
        {"type": "status", "data": '{"status": "running"}', "id": "1.0"},
        {"type": "log", "data": "line one\nline two", "id": None},
        {"type": "end", "data": "{}", "id": "2.40"},
    ]
    page.goto(str(service.http.base_url))
    parse = """async (chunks) => {
      const { sseParser } = await import("/ui/js/events.js");
      const events = [];
      const feed = sseParser((event) => events.push(event));
      for (const chunk of chunks) feed(chunk);
      return events;
    }"""
    assert page.evaluate(parse, [stream]) == expected
    assert page.evaluate(parse, list(stream)) == expected


def test_a_queued_job_shows_its_place_in_the_queue_and_is_cancelled_from_its_page(
    service: Service, page: Page
) -> None:
    job_id = service.submit("never runs", dataset="digits", epochs=2)
    urgent = service.http.post("/jobs", json={"name": "urgent", "priority": 5})
    assert urgent.status_code == 201, urgent.text
    page.goto(f"{service.http.base_url}/#/jobs/{job_id}")
    expect(page.get_by_test_id("job-status")).to_have_text("queued")
    expect(page.get_by_test_id("job-waiting")).to_have_text("Waiting: no worker is running")
    expect(page.get_by_test_id("job-priority")).to_have_text("0")
    expect(page.get_by_test_id("job-queue")).to_have_text("2nd (0 running ahead)")
    # The page follows the queue as it moves: the job ahead leaves, this one is next.
    assert service.http.post(f"/jobs/{urgent.json()['id']}/cancel").status_code == 200
    expect(page.get_by_test_id("job-queue")).to_have_text("1st (0 running ahead)")
    page.get_by_test_id("cancel-job").click()
    expect(page.get_by_test_id("job-status")).to_have_text("cancelled")
    expect(page.get_by_test_id("cancel-job")).to_be_hidden()
    expect(page.get_by_test_id("job-waiting")).to_be_hidden()
    expect(page.get_by_test_id("job-queue")).to_have_text("\u2013")  # an en dash: nothing to show
    assert service.job(job_id)["status"] == "cancelled"


def test_a_failed_job_shows_its_reason_and_message(service: Service, page: Page) -> None:
    job_id = service.submit("missing data", dataset="imagefolder", dataset_path="nowhere", epochs=2)
    page.goto(f"{service.http.base_url}/#/jobs/{job_id}")
    expect(page.get_by_test_id("job-error")).to_be_hidden()
    service.start_worker()
    expect(page.get_by_test_id("job-status")).to_have_text("failed", timeout=TRAINING_TIMEOUT_MS)
    error = service.job(job_id)["error"]
    expect(page.get_by_test_id("job-error-reason")).to_have_text(error["reason"])
    expect(page.get_by_test_id("job-error-message")).to_have_text(error["message"])
    expect(page.get_by_test_id("job-error")).to_be_visible()


def test_the_admin_sees_the_workers_table_and_other_owners_do_not(tmp_path: Path, page: Page) -> None:
    admin_key = "admin-browser-key-0123456789"
    keys = f"alice:{KEY},admin:{admin_key}"
    with running_service(tmp_path, api_key=admin_key, TRAINQ_API_KEYS=keys) as service:
        service.start_worker(TRAINQ_WORKER_LABELS="fast,a100", TRAINQ_WORKER_DEVICES="cpu:3")
        page.goto(str(service.http.base_url))
        # The page's first, keyless request answers 401 and may land inside this block: wait for
        # the one that carries alice's key.
        with page.expect_response(
            lambda response: (
                response.url.endswith("/workers")
                and response.request.headers.get("authorization") == f"Bearer {KEY}"
            )
        ) as refused:
            page.get_by_test_id("key-input").fill(KEY)
            page.get_by_test_id("key-submit").click()
        assert refused.value.status == 403
        expect(page.get_by_test_id("jobs-notice")).to_have_text("No jobs yet: submit one with the form.")
        expect(page.get_by_test_id("workers-panel")).to_be_hidden()

        page.get_by_test_id("forget-key").click()
        page.get_by_test_id("key-input").fill(admin_key)
        page.get_by_test_id("key-submit").click()
        row = page.get_by_test_id("worker-row")
        expect(row.get_by_test_id("worker-labels")).to_have_text("a100, fast")
        expect(row.get_by_test_id("worker-devices")).to_contain_text("cpu:3")
        expect(row.get_by_test_id("worker-job")).to_have_text("idle")
        (listed,) = service.http.get("/workers").json()
        expect(row.get_by_test_id("worker-id")).to_have_text(listed["id"])


def test_two_jobs_ticked_in_the_list_are_compared_curves_overlaid_and_differences_highlighted(
    service: Service, page: Page
) -> None:
    problems = watch_for_problems(page)
    service.start_worker()
    first = service.submit("slow-lr", dataset="digits", epochs=2, learning_rate=0.001)
    second = service.submit("fast-lr", dataset="digits", epochs=3, learning_rate=0.01)
    for job_id in (first, second):
        assert service.wait_until_final(job_id)["status"] == "succeeded"

    page.goto(str(service.http.base_url))
    compare = page.get_by_test_id("compare-selected")
    expect(compare).to_be_disabled()
    for job_id in (first, second):
        page.locator(f'[data-testid="job-row"][data-job-id="{job_id}"]').get_by_test_id("job-select").check()
    expect(compare).to_have_text("Compare (2)")
    compare.click()
    expect(page).to_have_url(re.compile(f"#compare={first},{second}$"))

    def check_comparison() -> None:
        expect(page.get_by_test_id("compare-title")).to_have_text("Comparing 2 jobs")
        for chart in ("compare-accuracy-chart", "compare-loss-chart"):
            figure = page.get_by_test_id(chart)
            expect(figure.locator("polyline.line")).to_have_count(2)
            expect(figure.locator(".legend-item")).to_have_text(["slow-lr", "fast-lr"])
            # One point per epoch of each job: 2 and 3.
            expect(figure.locator("circle.dot")).to_have_count(5)
        rows = page.get_by_test_id("compare-row")
        learning_rate = page.locator('[data-testid="compare-row"][data-field="learning_rate"]')
        expect(learning_rate).to_have_attribute("data-differs", "true")
        expect(learning_rate).to_have_class(re.compile(r"\bdiffers\b"))
        expect(learning_rate.locator("td")).to_have_text(["0.001", "0.01"])
        model = page.locator('[data-testid="compare-row"][data-field="model"]')
        expect(model).to_have_attribute("data-differs", "false")
        fields = [row.get_attribute("data-field") for row in rows.all()]
        # The summary, then the differing hyperparameters, then the identical ones.
        assert fields.index("duration") < fields.index("epochs") < fields.index("learning_rate")
        assert fields.index("learning_rate") < fields.index("model")

    check_comparison()
    # The address carries the selection: opened afresh, it shows the same comparison.
    shared = page.url
    page.goto("about:blank")
    page.goto(shared)
    check_comparison()
    page.get_by_test_id("back-to-jobs").click()
    expect(page.get_by_test_id("jobs-table")).to_be_visible()
    assert problems == []
