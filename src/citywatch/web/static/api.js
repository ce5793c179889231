// The REST API and the WebSocket event stream, with the access token of the logged-in user.
//
// Access tokens live 15 minutes; the refresh token of the login session (single use, rotated
// on every refresh) renews them silently a minute before they expire, so that a wall screen
// stays logged in.  The session lives in sessionStorage: it ends with the tab.

const STORE = "citywatch.session";
// Renew this many seconds before the access token expires (half its life if that is shorter).
const REFRESH_MARGIN_S = 60;

let session = JSON.parse(sessionStorage.getItem(STORE) || "null");
let onUnauthorized = () => {};
let refreshTimer = null;
let refreshing = null;

export class ApiError extends Error {
  constructor(status, message, code = null) { super(message); this.status = status; this.code = code; }
}

export function hasToken() { return Boolean(session); }
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

function forget() {
  session = null;
  sessionStorage.removeItem(STORE);
  clearTimeout(refreshTimer);
}

/** End the login session: the server revokes its refresh token. */
export function logout() {
  if (session) {
    fetch("/api/v1/auth/logout", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: session.refresh }),
    }).catch(() => {});
  }
  forget();
}

function keep(data) {
  session = {
    access: data.access_token,
    refresh: data.refresh_token,
    expiresAt: Date.now() + data.expires_in * 1000,
  };
  sessionStorage.setItem(STORE, JSON.stringify(session));
  schedule();
}

function schedule() {
  clearTimeout(refreshTimer);
  if (!session) return;
  const left = session.expiresAt - Date.now();
  const delay = Math.max(0, Math.min(left - REFRESH_MARGIN_S * 1000, left / 2));
  refreshTimer = setTimeout(() => refresh().catch(() => {}), delay);
}

/** Exchange the refresh token for new tokens (one request at a time; the token is single use). */
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      if (!session) throw new ApiError(401, "not logged in", "not_authenticated");
      const r = await fetch("/api/v1/auth/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ refresh_token: session.refresh }),
      });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) {
        const error = toError(data, r.status);
        if (r.status === 401) {
          forget();
          onUnauthorized(error.message);
        }
        throw error;
      }
      keep(data);
    })().finally(() => { refreshing = null; });
  }
  return refreshing;
}

/** OAuth2 password flow: exchange user name and password for the tokens of a session. */
export async function login(username, password) {
  const body = new URLSearchParams({ username, password });
  const r = await fetch("/api/v1/auth/token", { method: "POST", body });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw toError(data, r.status);
  keep(data);
}

function toError(data, status) {
  const error = data && data.error ? data.error : {};
  let message = `HTTP ${status}`;
  if (data && typeof data.detail === "string") message = data.detail;
  else if (error.message) message = error.message;
  else if (data && data.message) message = data.message;
  else if (data && Array.isArray(data.detail) && data.detail[0]) message = data.detail[0].msg;
  return new ApiError(status, message, error.code || null);
}

async function send(path, method, json) {
  const headers = { Accept: "application/json" };
  if (session) headers.Authorization = `Bearer ${session.access}`;
  const init = { method, headers };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const r = await fetch(path, init);
  return { r, data: await r.json().catch(() => null) };
}

/** Call the API; JSON in and out; throws ApiError with the server's message and code.
 *  An expired access token is renewed once and the call repeated. */
export async function api(path, { method = "GET", json } = {}) {
  const used = session && session.access;
  let { r, data } = await send(path, method, json);
  if (r.status === 401 && session) {
    try {
      // Another call may have renewed the token meanwhile; then only repeat this one.
      if (session.access === used) await refresh();
      ({ r, data } = await send(path, method, json));
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
    }
  }
  if (r.status === 401 && session) {
    forget();
    onUnauthorized(toError(data, r.status).message);
  }
  if (!r.ok) throw toError(data, r.status);
  return data;
}

/** Open the event stream; calls ``onEvent`` per event and ``onState`` with "open"/"closed". */
export function connectEvents(onEvent, onState) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const token = session ? session.access : "";
  const ws = new WebSocket(
    `${scheme}://${location.host}/api/v1/events?access_token=${encodeURIComponent(token)}`,
  );
  ws.onopen = () => onState("open");
  ws.onclose = (e) => onState("closed", e);
  ws.onmessage = (e) => onEvent(JSON.parse(e.data));
  return ws;
}

// A session restored from an earlier page load renews on its own schedule (at once if due);
// a screen woken from sleep checks at once rather than waiting for a throttled timer.
schedule();
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") schedule();
});
