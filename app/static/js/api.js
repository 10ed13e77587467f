// Every call to the API goes through here, so the key is sent (and asked for) in one place.
import { h } from "./dom.js";

// sessionStorage only: the key leaves with the tab, and no cookie carries it to the server unasked.
const KEY_STORAGE = "trainq.apiKey";

export class AuthRequired extends Error {}

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

const keyNeededListeners = [];

export function onKeyNeeded(listener) {
  keyNeededListeners.push(listener);
}

export function getKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function setKey(key) {
  sessionStorage.setItem(KEY_STORAGE, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
}

export async function request(path, { method = "GET", body, headers = {}, signal } = {}) {
  const sent = { ...headers };
  const key = getKey();
  if (key) sent.Authorization = `Bearer ${key}`;
  if (body !== undefined) sent["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers: sent,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    cache: "no-store",
  });
  if (response.status === 401) {
    const { detail } = await readJson(response);
    for (const listener of keyNeededListeners) listener(typeof detail === "string" ? detail : "");
    throw new AuthRequired(detail);
  }
  return response;
}

export async function readJson(response) {
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : {};
}

export async function json(path, options) {
  const response = await request(path, options);
  const payload = await readJson(response);
  if (!response.ok) throw new ApiError(response.status, payload.detail ?? response.statusText);
  return payload;
}

// A plain link cannot carry the Authorization header, so the file is fetched and saved from a blob.
export async function download(path) {
  const response = await request(path);
  if (!response.ok) throw new ApiError(response.status, (await readJson(response)).detail);
  const disposition = response.headers.get("content-disposition") || "";
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] ?? path.split("/").pop();
  const link = h("a", { href: URL.createObjectURL(await response.blob()), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  // Revoking at once can cancel the download before the browser has read the blob.
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}
