// A job's event stream, read with fetch(): EventSource cannot send an Authorization header.
import { AuthRequired, readJson, request } from "./api.js";

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10_000;

// Feeds text chunks in, calls onEvent({type, data, id}) per event (the WHATWG rules, minus `retry`).
export function sseParser(onEvent) {
  let buffer = "";
  let type = "";
  let data = [];
  let id = null;

  function dispatch() {
    if (data.length > 0) onEvent({ type: type || "message", data: data.join("\n"), id });
    type = "";
    data = [];
    id = null;
  }

  function line(text) {
    if (text === "") return dispatch();
    if (text.startsWith(":")) return undefined;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
    else if (field === "id" && !value.includes("\0")) id = value;
    return undefined;
  }

  return (chunk) => {
    buffer += chunk;
    // A trailing \r may be the first half of a \r\n split across two chunks.
    const end = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
    const lines = buffer.slice(0, end).split(/\r\n|\r|\n/);
    buffer = lines.pop() + buffer.slice(end);
    for (const text of lines) line(text);
  };
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  });
}

// Follows /jobs/{id}/events until `end` or the signal aborts, reconnecting with Last-Event-ID after a
// drop so that no durable event is lost or seen twice. handlers: {onEvent, onConnect, onError};
// startAfter: an event id to start after (null: the whole history).
export async function followEvents(
  jobId,
  signal,
  { onEvent, onConnect = () => {}, onError = () => {}, startAfter = null },
) {
  let lastId = startAfter;
  let retryMs = FIRST_RETRY_MS;
  while (!signal.aborted) {
    let ended = false;
    try {
      const headers = { Accept: "text/event-stream" };
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      const response = await request(`/jobs/${encodeURIComponent(jobId)}/events`, { headers, signal });
      if (!response.ok) {
        const { detail } = await readJson(response);
        onError(typeof detail === "string" ? detail : `HTTP ${response.status}`, response.status);
        return;
      }
      onConnect();
      retryMs = FIRST_RETRY_MS;
      const parse = sseParser((event) => {
        if (event.id !== null) lastId = event.id;
        if (event.type === "end") ended = true;
        onEvent(event.type, JSON.parse(event.data));
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      while (!ended) {
        const { value, done } = await reader.read();
        if (done) break;
        parse(value);
      }
      if (ended) {
        await reader.cancel();
        return;
      }
    } catch (error) {
      // The key prompt is already up; the page starts over once a key is given.
      if (signal.aborted || error instanceof AuthRequired) return;
    }
    onError("connection lost; reconnecting", 0);
    await pause(retryMs, signal);
    retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
  }
}
