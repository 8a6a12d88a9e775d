// The console API client (claudedocs/api.md): bearer token from sessionStorage, JSON in and out,
// every call bounded by a timeout so a hung service shows as an error instead of a frozen page.

const TOKEN_KEY = "tradebus.console.token";
const BASE = "/api/v1";
const TIMEOUT_MS = 15000;

export class ApiError extends Error {
  constructor(status, detail, path) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
    this.path = path;
  }

  /** A control refused because the token may only read (403), or no token was accepted (401). */
  get refused() {
    return this.status === 401 || this.status === 403;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value.trim()),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

function query(params) {
  const pairs = Object.entries(params || {}).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return pairs.length ? `?${new URLSearchParams(pairs)}` : "";
}

async function call(method, path, { params, body } = {}) {
  const headers = { Accept: "application/json" };
  const bearer = token.get();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`${BASE}${path}${query(params)}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    const why = error.name === "TimeoutError" ? `no answer within ${TIMEOUT_MS / 1000} s` : "the console service is unreachable";
    throw new ApiError(0, why, path);
  }
  const text = await response.text();
  let payload = null;
  try {
    payload = text ? JSON.parse(text) : null;
  } catch {
    payload = { detail: text };
  }
  if (!response.ok) {
    const detail = payload && payload.detail !== undefined ? payload.detail : response.statusText;
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail), path);
  }
  return payload;
}

export const api = {
  get: (path, params) => call("GET", path, { params }),
  post: (path, body) => call("POST", path, { body }),
  /** The stream's URL: EventSource cannot send headers, so the token rides as access_token. */
  streamUrl: (lastEventId) =>
    `${BASE}/stream${query({ access_token: token.get(), last_event_id: lastEventId ?? undefined })}`,
};
