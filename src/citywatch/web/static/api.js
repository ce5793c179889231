// The REST API and the WebSocket event stream, with the access token of the logged-in user.

let token = sessionStorage.getItem("citywatch.token");
let onUnauthorized = () => {};

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export function hasToken() { return Boolean(token); }
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export function logout() {
  token = null;
  sessionStorage.removeItem("citywatch.token");
}

/** OAuth2 password flow: exchange user name and password for an access token. */
export async function login(username, password) {
  const body = new URLSearchParams({ username, password });
  const r = await fetch("/api/v1/auth/token", { method: "POST", body });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, errorMessage(data, r.status));
  token = data.access_token;
  sessionStorage.setItem("citywatch.token", token);
}

function errorMessage(data, status) {
  if (data && typeof data.detail === "string") return data.detail;
  if (data && data.error && data.error.message) return data.error.message;
  if (data && data.message) return data.message;
  if (data && Array.isArray(data.detail) && data.detail[0]) return data.detail[0].msg;
  return `HTTP ${status}`;
}

/** Call the API; JSON in and out; throws ApiError with the server's message. */
export async function api(path, { method = "GET", json } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const r = await fetch(path, init);
  const data = await r.json().catch(() => null);
  if (r.status === 401) {
    logout();
    onUnauthorized(errorMessage(data, r.status));
  }
  if (!r.ok) throw new ApiError(r.status, errorMessage(data, r.status));
  return data;
}

/** Open the event stream; calls ``onEvent`` per event and ``onState`` with "open"/"closed". */
export function connectEvents(onEvent, onState) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(
    `${scheme}://${location.host}/api/v1/events?access_token=${encodeURIComponent(token)}`,
  );
  ws.onopen = () => onState("open");
  ws.onclose = (e) => onState("closed", e);
  ws.onmessage = (e) => onEvent(JSON.parse(e.data));
  return ws;
}
