// What a job's page lets its owner change: tags, notes, priority while queued (PATCH /jobs/{id}),
// and deleting the job (DELETE /jobs/{id}) or one of its checkpoints.
import { ApiError, json, readJson, request } from "./api.js";
import { h } from "./dom.js";
import { listHref } from "./listfilters.js";

function jobPath(jobId) {
  return `/jobs/${encodeURIComponent(jobId)}`;
}

// A 422's detail is a list of pydantic errors; say the first one's message.
function problemText(error) {
  const detail = error instanceof ApiError ? error.detail : null;
  if (Array.isArray(detail) && detail.length) return detail[0].msg ?? error.message;
  return error.message;
}

// DELETE answers 204 without a body; anything else carries the API's reason.
async function remove(path, signal) {
  const response = await request(path, { method: "DELETE", signal });
  if (!response.ok) throw new ApiError(response.status, (await readJson(response)).detail ?? response.statusText);
}

export function deleteCheckpoint(checkpoint, signal) {
  return remove(checkpoint.url, signal);
}

// The panel of editable fields. `onSaved(job)` gets the job as PATCH returned it.
export function editPanel(job, { signal, onSaved }) {
  const message = h("p", { class: "edit-message", "data-testid": "edit-message" });
  let tags = [...job.tags];

  async function patch(changes, what) {
    message.textContent = "";
    try {
      const fresh = await json(jobPath(job.id), { method: "PATCH", body: changes, signal });
      message.textContent = `${what} saved.`;
      onSaved(fresh);
      return fresh;
    } catch (error) {
      if (!signal.aborted) message.textContent = `${what} not saved: ${problemText(error)}`;
      return null;
    }
  }

  const tagList = h("span", { class: "tag-list", "data-testid": "job-tags" });
  function showTags() {
    tagList.replaceChildren(
      ...tags.map((tag) =>
        h(
          "span",
          { class: "chip", "data-testid": "job-tag", "data-tag": tag },
          h("span", { class: "chip-label", text: tag }),
          h("button", {
            type: "button",
            class: "chip-x",
            "data-testid": "remove-tag",
            "aria-label": `Remove tag ${tag}`,
            text: "×",
            onclick: () => saveTags(tags.filter((other) => other !== tag)),
          }),
        ),
      ),
    );
  }
  async function saveTags(next) {
    const fresh = await patch({ tags: next }, "Tags");
    if (fresh) {
      tags = [...fresh.tags];
      showTags();
    }
  }
  const tagInput = h("input", { "data-testid": "tag-input", placeholder: "new tag", "aria-label": "New tag" });
  const tagForm = h(
    "form",
    {
      class: "inline-form",
      onsubmit: async (event) => {
        event.preventDefault();
        const tag = tagInput.value.trim();
        if (tag === "" || tags.includes(tag)) return;
        await saveTags([...tags, tag]);
        if (tags.includes(tag)) tagInput.value = "";
      },
    },
    tagInput,
    h("button", { type: "submit", "data-testid": "add-tag", text: "Add tag" }),
  );

  const notes = h("textarea", { "data-testid": "job-notes", rows: 3, "aria-label": "Notes", placeholder: "Notes" });
  notes.value = job.notes ?? "";
  const saveNotes = h("button", {
    type: "button",
    "data-testid": "save-notes",
    text: "Save notes",
    // An empty text area clears the notes.
    onclick: () => patch({ notes: notes.value === "" ? null : notes.value }, "Notes"),
  });

  const priority = h("input", {
    type: "number",
    min: -1000,
    max: 1000,
    step: 1,
    "data-testid": "priority-input",
    "aria-label": "Priority",
  });
  priority.value = String(job.priority ?? 0);
  const priorityForm = h(
    "form",
    {
      class: "inline-form",
      "data-testid": "priority-form",
      onsubmit: (event) => {
        event.preventDefault();
        patch({ priority: Number(priority.value) }, "Priority");
      },
    },
    h("span", { class: "notice", text: "Priority" }),
    priority,
    h("button", { type: "submit", "data-testid": "save-priority", text: "Set" }),
  );

  showTags();
  const element = h(
    "section",
    { class: "panel edit-panel", "data-testid": "job-edit" },
    h("div", { class: "edit-row" }, h("h3", { text: "Tags" }), tagList, tagForm),
    h("div", { class: "edit-row notes-row" }, notes, saveNotes),
    priorityForm,
    message,
  );
  return {
    element,
    // Priority changes only while the job waits in the queue.
    update(fresh) {
      priorityForm.hidden = fresh.status !== "queued";
    },
  };
}

// Delete the job after a confirmation; `onDeleted` once the API said 204, `onError` otherwise.
function deleteButton(jobId, { signal, onDeleted, onError }) {
  const button = h("button", { type: "button", class: "danger", "data-testid": "delete-job", text: "Delete" });
  button.addEventListener("click", async () => {
    if (!window.confirm("Delete this job, its checkpoints, exports and logs?")) return;
    button.disabled = true;
    try {
      await remove(jobPath(jobId), signal);
      onDeleted();
    } catch (error) {
      if (!signal.aborted) onError(error);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

// What a job's page adds to its header and summary: the editable fields, the Delete button, the
// message a refused delete gets (apart from the job's own error, which each render redraws), and
// a link to the job's sweep.
export function jobActions(job, { signal, onSaved }) {
  const actionError = h("div", { class: "error-box", "data-testid": "job-action-error", hidden: true });
  function showActionError(error) {
    actionError.hidden = false;
    actionError.textContent = error.message;
  }
  const remove = deleteButton(job.id, {
    signal,
    onDeleted: () => {
      location.hash = listHref();
    },
    onError: showActionError,
  });
  const sweepLink = job.sweep
    ? h("a", { href: `#/sweeps/${job.sweep}`, class: "sweep-link", "data-testid": "job-sweep", text: "its sweep" })
    : null;
  return { actionError, edit: editPanel(job, { signal, onSaved }), remove, showActionError, sweepLink };
}
