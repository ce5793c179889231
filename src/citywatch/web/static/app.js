// CityWatch command centre: login, live map, incident queue and detail, KPIs, shortcuts.
import { initAdvisories, onAdvisoryEvent, renderAdvisories } from "./advisories.js";
import { api, ApiError, connectEvents, hasToken, login, logout, setUnauthorizedHandler } from "./api.js";
import { barChart } from "./charts.js";
import {
  fmtDateTime, fmtDuration, fmtNumber, fmtPercent, fmtTime, getLang, hasMessage, loadMessages,
  setLang, setTimeZone, t, translatePage,
} from "./i18n.js";
import { CityMap, STATUS_COLOURS, TYPE_LETTERS } from "./map.js";
import { Board } from "./roster.js";
import { clearPursuit, initPursuit, renderPursuit } from "./pursuit.js";
import { Sightings } from "./sightings.js";
import { EBikes } from "./ebikes.js";
import { installIntake, intakeEvent } from "./intake.js";  // call intake (intake.js)

const WRITE_ROLES = new Set(["admin", "commander", "dispatcher", "station_officer"]);
// The status rules come from the service (dashboard config "lifecycles"), never copied here.
const lifecycle = (entity) => (state.config && state.config.lifecycles[entity]) || {};
const canBecome = (entity, from, to) => (lifecycle(entity)[from] || []).includes(to);
// A final status is one no transition leaves (cleared, cancelled).
const isClosed = (status) => (lifecycle("incident")[status] || []).length === 0;
const holdsIncident = (unitStatus) =>
  ((state.config && state.config.lifecycles.unit_assigned) || []).includes(unitStatus);
const $ = (id) => document.getElementById(id);

const state = {
  config: null,
  layers: null,
  me: null,
  map: null,
  units: new Map(),
  incidents: new Map(),
  selectedId: null,
  detail: null,
  recommendation: null,
  route: null,
  ws: null,
  summaryTimer: null,
  summaryDue: null,
  board: null,  // roster board and move-up panel (roster.js)
};

// ------------------------------------------------------------------ helpers
function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

function toast(message, bad = false) {
  const box = $("toast");
  box.textContent = message;
  box.classList.toggle("bad", bad);
  box.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.classList.remove("show"), 3500);
}

const canWrite = () => state.me && WRITE_ROLES.has(state.me.role);
const incidentLabel = (inc) => (inc.category_label && inc.category_label[getLang()]) || inc.category;
const statusLabel = (s) => t(`status.${s}`);
const unitTypeLabel = (ut) => t(`unit_type.${ut}`);

/** A server error in the current language: its code's label, then the server's message. */
function errorText(e) {
  return e.code && hasMessage(`error.${e.code}`) ? `${t(`error.${e.code}`)}: ${e.message}` : e.message;
}

/** A policy reason ({code, params, text}) in the current language; unknown codes keep the
 *  server's English text. */
function reasonLabel(r) {
  const key = `reason.${r.code}`;
  if (!hasMessage(key)) return r.text;
  const params = { ...r.params };
  if (params.unit_type) params.unit_type = unitTypeLabel(params.unit_type);
  if (params.unit_types) params.unit_types = params.unit_types.map(unitTypeLabel).join(t("reason.or"));
  if (params.station) params.station = stationLabel(params.station);
  return t(key, params);
}
const reasonsLabel = (reasons) => (reasons || []).map(reasonLabel).join(" · ");

function stationLabel(id) {
  // The station's area (precinct, 派出所辖区) by name; a precinct without a station house, such
  // as Central Park's, still has its area.
  if (!id) return "–";
  const zh = getLang() === "zh";
  const area = state.layers.jurisdictions.features.find(
    (f) => f.properties.level === "station" && f.properties.id === id);
  const p = area ? area.properties
    : state.layers.stations.features.find((f) => f.properties.id === id)?.properties;
  if (!p) return id;
  return zh && p.name_zh ? p.name_zh : p.name;
}

// ------------------------------------------------------------------ start-up
async function main() {
  await loadMessages();
  setLang(getLang());
  state.config = await api("/api/v1/dashboard/config");
  setTimeZone(state.config.timezone);
  translatePage();
  renderCity();
  $("login-demo").hidden = !state.config.demo;
  bindStaticHandlers();
  setUnauthorizedHandler((message) => showLogin(message));
  setInterval(renderClock, 1000);
  renderClock();
  if (hasToken()) {
    try {
      await startSession();
      return;
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
    }
  }
  showLogin();
}

function renderCity() {
  const c = state.config;
  const name = getLang() === "zh" ? c.name_zh : c.display_name;
  $("city-name").textContent = name;
  $("login-city").textContent = `${name} · ${c.timezone}`;
  $("sim-badge").hidden = !(c.feed && c.feed.simulated);
  document.title = `CityWatch · ${name}`;
}

function renderClock() {
  if (!state.config) return;
  $("clock").textContent = `${fmtTime(new Date().toISOString())} ${state.config.timezone}`;
}

function showLogin(message = "") {
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("logout").hidden = true;
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  // Never take the focus from someone already typing in the form: start-up (or an expired
  // session) may end between two keystrokes, and a moved focus would send the rest of the
  // password into the user-name field, in clear text.
  if (!$("login-form").contains(document.activeElement)) $("username").focus();
}

async function onLogin(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    await login($("username").value.trim(), $("password").value);
    $("password").value = "";
    await startSession();
  } catch (e) {
    $("login-error").textContent = e instanceof ApiError && e.status === 401
      ? t("login.failed", { message: e.message }) : String(e.message || e);
  }
}

async function startSession() {
  state.me = await api("/api/v1/me");
  $("login").hidden = true;
  $("logout").hidden = false;
  renderWho();
  if (!state.layers) state.layers = await api("/api/v1/dashboard/layers");
  if (!state.map) {
    state.map = new CityMap($("map"), state.config, state.layers, {
      unitTooltip,
      incidentTooltip,
      onUnitClick: (u) => toast(unitTooltip(u)),
      onIncidentClick: (id) => selectIncident(id),
    });
    // Pursuit panel (pursuit.js): its own map layers, drawn into the incident detail.
    initPursuit({
      map: state.map.map, canWrite, toast, errorText, esc, unitLabel: unitTypeLabel,
      onDispatched: () => reloadAll(),
    });
  }
  if (state.me.role === "station_officer" && state.me.scope) state.map.focusJurisdiction(state.me.scope);
  loadSurveillance();
  initAdvisories(state.map, state.me); // near-repeat advisories and forecast layer
  // Hotlist alerts (sightings.js): list, map markers, tracks.
  state.sightings = state.sightings || new Sightings(state.map, {
    toast, stationLabel, onIncident: async (inc) => { await reloadAll(); selectIncident(inc.id); },
  });
  state.ebikes = state.ebikes || new EBikes(state.map, {  // e-bike registry (ebikes.js)
    toast, errorText, stationLabel, timeZone: () => state.config.timezone,
    stations: () => state.layers.jurisdictions.features
      .filter((f) => f.properties.level === "station").map((f) => f.properties.id),
  });
  state.ebikes.start(state.me);
  installIntake({  // call intake (intake.js): the form, queue numbers and ages, P1 alert
    state, canWrite, selectIncident, toast, errorText, stationLabel,
    reloadDetail: () => state.selectedId && loadDetail(state.selectedId),
  });
  renderLegend();
  openEvents();
  await reloadAll();
  scheduleSummary(0);
  startBoard();
}

/** The roster board and move-up panel (roster.js), with the dashboard's helpers. */
function startBoard() {
  if (state.me.role === "unit_device") return;
  state.board = new Board({
    canWrite, stationLabel, unitTypeLabel, statusLabel, toast, errorText,
    lifecycle: () => lifecycle("unit"),
    onIncident: (id) => selectIncident(id),
  });
  state.board.start().catch((e) => console.warn("roster board unavailable", e));
}

/** Camera and blind-spot layers (local hour of the city); the dashboard works without them. */
async function loadSurveillance() {
  if (state.me.role === "unit_device") return;
  const hour = Number(new Intl.DateTimeFormat("en-GB", {
    hour: "numeric", hourCycle: "h23", timeZone: state.config.timezone,
  }).format(new Date()));
  try {
    const [sensors, blind] = await Promise.all([
      api("/api/v1/sensors/layer"),
      api(`/api/v1/surveillance/blind-spots?hour=${hour}&top=300`),
    ]);
    state.map.showSurveillance(sensors, blind);
  } catch (e) {
    console.warn("surveillance layers unavailable", e);
  }
}

/** A jurisdiction of any level (city, bureau, station area, zone) by its name in the pack. */
function jurisdictionLabel(id) {
  const f = state.layers?.jurisdictions.features.find((j) => j.properties.id === id);
  if (!f) return id;
  return getLang() === "zh" && f.properties.name_zh ? f.properties.name_zh : f.properties.name;
}

function renderWho() {
  const me = state.me;
  const scope = me.scope ? ` · ${jurisdictionLabel(me.scope)}` : "";
  const ro = canWrite() ? "" : ` · ${t("who.read_only")}`;
  $("who").textContent = `${me.username} (${t(`role.${me.role}`)}${scope}${ro})`;
}

async function reloadAll() {
  const [units, incidents] = await Promise.all([
    api("/api/v1/units"),
    api(`/api/v1/incidents?limit=500`),
  ]);
  state.units = new Map(units.map((u) => [u.id, u]));
  state.incidents = new Map(incidents.map((i) => [i.id, i]));
  for (const u of units) state.map.upsertUnit(u, isRecommended(u.id));
  for (const i of incidents) state.map.upsertIncident(i, i.id === state.selectedId);
  renderQueue();
  renderUnitSummary();
  state.sightings?.start(state.me); // alerts are not replayed by the stream: reload them too
  if (state.selectedId) await loadDetail(state.selectedId);
}

// ------------------------------------------------------------------ live events
function openEvents() {
  if (state.ws) { state.ws.onclose = null; state.ws.close(); }
  state.ws = connectEvents(onEvent, (st) => {
    state.conn = st;
    renderConn();
    if (st === "closed") {
      setTimeout(async () => {
        if (!hasToken()) return;
        try { await api("/api/v1/me"); openEvents(); await reloadAll(); } catch (e) { /* login shown */ }
      }, 3000);
    }
  });
}

function renderConn() {
  const conn = $("conn");
  if (!state.conn) return;
  conn.textContent = state.conn === "open" ? t("conn.live") : t("conn.offline");
  conn.className = `badge ${state.conn === "open" ? "ok" : "bad"}`;
  conn.dataset.state = state.conn;
}

async function onEvent(ev) {
  state.board?.onEvent(ev);
  intakeEvent(ev);  // call intake (intake.js): P1 alert
  switch (ev.type) {
    case "unit.created":
      state.units.set(ev.data.id, ev.data);
      state.map.upsertUnit(ev.data);
      renderUnitSummary();
      break;
    case "unit.moved": {
      const u = state.units.get(ev.unit_id);
      if (u) {
        u.located = { lon: ev.data.lon, lat: ev.data.lat };
        u.position_stale = false;
        state.map.moveUnit(u);
      }
      break;
    }
    case "unit.status": {
      const u = state.units.get(ev.unit_id);
      if (u) {
        u.status = ev.data.to;
        u.incident_id = holdsIncident(ev.data.to)
          ? (ev.data.incident_id ?? u.incident_id) : null;
        state.map.upsertUnit(u, isRecommended(u.id));
      }
      renderUnitSummary();
      scheduleSummary();
      break;
    }
    case "incident.created":
      state.incidents.set(ev.data.id, ev.data);
      state.map.upsertIncident(ev.data);
      renderQueue();
      scheduleSummary();
      break;
    case "incident.status": {
      const inc = state.incidents.get(ev.incident_id);
      if (inc) {
        inc.status = ev.data.to;
        inc.status_at = ev.at;
        state.map.upsertIncident(inc, inc.id === state.selectedId);
      }
      renderQueue();
      scheduleSummary();
      break;
    }
    case "assignment.created": {
      const u = state.units.get(ev.unit_id);
      if (u) {
        u.status = "dispatched";
        u.incident_id = ev.incident_id;
        state.map.upsertUnit(u, isRecommended(u.id));
        renderUnitSummary();
      }
      break;
    }
    case "advisory.created":
      onAdvisoryEvent(ev);
      break;
    case "resync":
      await reloadAll();
      break;
    case "sighting.alert":
      await state.sightings?.onEvent(ev);
      await state.ebikes?.onAlert(ev);
      break;
    default:
      break;
  }
  if (state.selectedId && ev.incident_id === state.selectedId && ev.type !== "unit.moved") {
    await loadDetail(state.selectedId);
  }
}

// ------------------------------------------------------------------ queue
function visibleIncidents() {
  const all = [...state.incidents.values()];
  const showClosed = $("show-closed").checked;
  return all
    .filter((i) => showClosed || !isClosed(i.status))
    .sort((a, b) => (a.priority ?? 9) - (b.priority ?? 9) || a.received_at.localeCompare(b.received_at));
}

function renderQueue() {
  const list = visibleIncidents();
  $("queue-count").textContent = String(list.filter((i) => !isClosed(i.status)).length);
  const ol = $("queue");
  ol.replaceChildren(...list.map((inc) => {
    const li = document.createElement("li");
    li.dataset.id = inc.id;
    li.dataset.testid = "queue-item";
    li.dataset.status = inc.status;
    if (inc.id === state.selectedId) li.classList.add("selected");
    li.innerHTML = `<span class="prio prio-${inc.priority}" title="${esc(t("incident.priority"))}">P${esc(inc.priority)}</span>
      <span><strong>${esc(incidentLabel(inc))}</strong>
        <span class="meta">· ${esc(stationLabel(inc.station))} · ${esc(fmtTime(inc.received_at))}</span></span>
      <span class="st status st-${inc.status}" data-testid="queue-status">${esc(statusLabel(inc.status))}</span>`;
    li.addEventListener("click", () => selectIncident(inc.id));
    return li;
  }));
}

function renderUnitSummary() {
  const counts = {};
  for (const u of state.units.values()) counts[u.status] = (counts[u.status] || 0) + 1;
  $("units-count").textContent = String(state.units.size);
  $("unit-status-summary").replaceChildren(...Object.keys(STATUS_COLOURS).map((s) => {
    const span = document.createElement("span");
    span.dataset.status = s;
    span.innerHTML = `<i class="sym" style="background:${STATUS_COLOURS[s]}"></i>${esc(statusLabel(s))}: <b>${counts[s] || 0}</b>`;
    return span;
  }));
}

function renderLegend() {
  const types = Object.entries(TYPE_LETTERS).map(([ut, letter]) => `<div><kbd>${letter}</kbd> ${esc(unitTypeLabel(ut))}</div>`);
  const statuses = Object.entries(STATUS_COLOURS).map(([s, c]) => `<div><i class="sym" style="background:${c}"></i>${esc(statusLabel(s))}</div>`);
  $("legend").innerHTML = `<b>${esc(t("legend.units"))}</b><div class="cols"><div>${types.join("")}</div><div>${statuses.join("")}</div></div>
    <div><b>${esc(t("legend.incidents"))}</b>: ${esc(t("legend.priority"))}</div><div>★ ${esc(t("layer.stations"))}</div>`;
}

function unitTooltip(u) {
  const inc = u.incident_id ? ` → ${u.incident_id.slice(0, 13)}` : "";
  const stale = u.position_stale ? ` (${t("unit.stale")})` : "";
  return `${u.id} · ${unitTypeLabel(u.unit_type)} · ${statusLabel(u.status)}${inc}${stale}`;
}

function incidentTooltip(i) {
  return `P${i.priority} ${incidentLabel(i)} · ${statusLabel(i.status)} · ${fmtTime(i.received_at)}`;
}

// ------------------------------------------------------------------ incident detail
function isRecommended(unitId) {
  return Boolean(state.recommendation && state.recommendation.candidates.some((c) => c.unit_id === unitId));
}

async function selectIncident(id) {
  state.selectedId = id;
  for (const inc of state.incidents.values()) state.map.upsertIncident(inc, inc.id === id);
  renderQueue();
  const inc = state.incidents.get(id);
  $("detail").hidden = false;
  if (inc) state.map.panToVisible(inc.lon, inc.lat, detailCover());
  await loadDetail(id);
}

/** Pixels of the map's right side hidden by the detail panel. */
function detailCover() {
  const map = $("map").getBoundingClientRect();
  const panel = $("detail").getBoundingClientRect();
  return panel.width && panel.left < map.right ? map.right - panel.left : 0;
}

function closeDetail() {
  const previous = state.recommendation;
  state.selectedId = null;
  state.detail = null;
  state.recommendation = null;
  state.route = null;
  $("detail").hidden = true;
  clearPursuit();
  state.map.showSelection(null, [], null);
  if (previous) for (const c of previous.candidates) {
    const u = state.units.get(c.unit_id);
    if (u) state.map.upsertUnit(u, false);
  }
  for (const inc of state.incidents.values()) state.map.upsertIncident(inc, false);
  renderQueue();
}

async function loadDetail(id) {
  const seq = (loadDetail.seq = (loadDetail.seq || 0) + 1);
  let detail;
  try {
    detail = await api(`/api/v1/incidents/${encodeURIComponent(id)}`);
  } catch (e) {
    toast(errorText(e), true);
    return;
  }
  let recommendation = null;
  // Recommendations while units may still be sent: before anyone is on scene.
  if (canBecome("incident", detail.status, "cancelled")) {
    try {
      recommendation = await api(`/api/v1/incidents/${encodeURIComponent(id)}/recommendations?k=5`);
    } catch (e) { recommendation = { error: errorText(e), candidates: [], team: [], reasons: [] }; }
  }
  const active = (detail.assignments || []).filter((a) => a.active);
  let route = null;
  if (active.length) {
    try {
      route = await api(`/api/v1/dashboard/route?incident_id=${encodeURIComponent(id)}&unit_id=${encodeURIComponent(active[active.length - 1].unit_id)}`);
    } catch (e) { route = null; }
  }
  if (seq !== loadDetail.seq || state.selectedId !== id) return;  // a newer selection won
  const previous = state.recommendation;
  state.detail = detail;
  state.recommendation = recommendation;
  state.route = route;
  state.incidents.set(id, { ...state.incidents.get(id), ...detail });
  const touched = new Set([...(previous?.candidates || []), ...(recommendation?.candidates || [])].map((c) => c.unit_id));
  for (const uid of touched) {
    const u = state.units.get(uid);
    if (u) state.map.upsertUnit(u, isRecommended(uid));
  }
  state.map.showSelection(detail, (recommendation?.candidates || []).map((c) => c.unit_id), route);
  renderDetail();
}

function renderDetail() {
  const d = state.detail;
  if (!d) return;
  const rec = state.recommendation;
  const write = canWrite();
  const split = splitReasons(rec?.candidates || []);
  const team = rec?.team || [];
  const rows = (rec?.candidates || []).map((c, i) => `<tr data-testid="candidate" data-unit="${esc(c.unit_id)}"${team.includes(c.unit_id) ? ' class="team-member" data-team="1"' : ""}>
      <td>${c.rank}</td><td><b>${esc(c.unit_id)}</b>${team.includes(c.unit_id) ? ` <span class="badge team" data-testid="team-badge">${esc(t("detail.team_member"))}</span>` : ""}<br><span class="reason">${esc(unitTypeLabel(c.unit_type))} · ${esc(stationLabel(c.station))}</span></td>
      <td>${esc(fmtDuration(c.eta_s))}</td><td>${esc(fmtNumber(c.metres / 1000, 2))} km</td>
      <td class="reason" data-testid="candidate-reason">${esc(split.own(c))}</td>
      <td>${write ? `<button type="button" data-assign="${esc(c.unit_id)}" ${i === 0 ? 'class="primary" data-testid="assign-recommended"' : ""}>${esc(t("detail.assign"))}</button>` : ""}</td></tr>`);
  const assignments = (d.assignments || []).map((a) => `<tr data-testid="assignment">
      <td><b>${esc(a.unit_id)}</b></td><td>${esc(statusLabel(state.units.get(a.unit_id)?.status || ""))}</td>
      <td>${esc(t("detail.eta"))} ${esc(fmtDuration(a.eta_s))}</td><td>${esc(fmtTime(a.assigned_at))}</td>
      <td>${a.active ? esc(t("detail.active")) : esc(a.outcome || "")}</td></tr>`);
  const timeline = (d.timeline || []).map((e) => `<tr><td>${esc(fmtTime(e.at))}</td>
      <td>${esc(t(`event.${e.type}`))}${e.data && e.data.to ? ` → ${esc(statusLabel(e.data.to))}` : ""}</td>
      <td>${esc(e.unit_id || "")}</td><td class="reason">${esc(e.actor)}</td></tr>`);
  const canCancel = canBecome("incident", d.status, "cancelled");
  const canClear = canBecome("incident", d.status, "cleared");
  const actions = write ? `<div class="actions">
      <button type="button" id="btn-clear" ${canClear ? "" : "disabled"} data-testid="btn-clear">${esc(t("detail.clear"))} <kbd>C</kbd></button>
      <button type="button" id="btn-cancel" class="danger" ${canCancel ? "" : "disabled"} data-testid="btn-cancel">${esc(t("detail.cancel"))} <kbd>X</kbd></button>
    </div>` : `<p class="muted">${esc(t("detail.read_only"))}</p>`;
  const simulated = d.created_by === (state.config.feed && state.config.feed.actor)
    ? ` <span class="badge sim">${esc(t("sim.label"))}</span>` : "";
  $("detail-body").innerHTML = `
    <h2><span class="prio prio-${d.priority}" style="padding:0 .4em;color:#111;border-radius:3px">P${esc(d.priority)}</span>
      ${esc(incidentLabel(d))}${simulated}</h2>
    <div><span class="status st-${d.status}" data-testid="detail-status">${esc(statusLabel(d.status))}</span>
      · ${esc(t("detail.station"))} ${esc(stationLabel(d.station))} · ${esc(t("detail.zone"))} ${esc(d.zone || "–")}</div>
    <div class="muted">${esc(t("detail.received"))} ${esc(fmtDateTime(d.received_at))}</div>
    ${d.caller_notes ? `<div class="muted">${esc(d.caller_notes)}</div>` : ""}
    ${actions}
    ${rec ? `<h3>${esc(t("detail.recommendations"))}</h3>
      ${rec.error ? `<p class="error">${esc(rec.error)}</p>` : ""}
      ${rec.status && rec.status !== "ok" ? `<p class="reason" data-testid="rec-status"><b>${esc(t(`rec_status.${rec.status}`))}</b>: ${esc(reasonsLabel(rec.reasons))}</p>` : ""}
      ${team.length > 1 ? `<div class="team-row" data-testid="team"><span>${esc(t("detail.team"))}: <b>${esc(team.join(", "))}</b></span>
        ${write ? `<button type="button" class="primary" data-testid="send-team" id="btn-send-team">${esc(t("detail.send_team", { n: team.length }))} <kbd>A</kbd></button>` : ""}</div>` : ""}
      ${split.common.length ? `<p class="reason" data-testid="ranked-by">${esc(t("detail.ranked_by", { reasons: reasonsLabel(split.common) }))}</p>` : ""}
      <table><thead><tr><th>#</th><th>${esc(t("detail.unit"))}</th><th>${esc(t("detail.eta"))}</th>
      <th>${esc(t("detail.distance"))}</th><th>${esc(t("detail.reason"))}</th><th></th></tr></thead>
      <tbody>${rows.join("") || `<tr><td colspan="6" class="muted">${esc(t("detail.no_units"))}</td></tr>`}</tbody></table>` : ""}
    <section id="pursuit-slot" class="pursuit" data-testid="pursuit"></section>
    <h3>${esc(t("detail.assignments"))}</h3>
    <table><tbody>${assignments.join("") || `<tr><td class="muted">${esc(t("detail.none"))}</td></tr>`}</tbody></table>
    ${state.route ? `<p class="reason">${esc(t("detail.route", { unit: state.route.unit_id, eta: fmtDuration(state.route.seconds), km: fmtNumber(state.route.metres / 1000, 2) }))}</p>` : ""}
    <h3>${esc(t("detail.timeline"))}</h3>
    <table data-testid="timeline"><tbody>${timeline.join("")}</tbody></table>`;
  for (const b of $("detail-body").querySelectorAll("[data-assign]")) {
    b.addEventListener("click", () => assign(b.dataset.assign));
  }
  $("btn-send-team")?.addEventListener("click", () => sendTeam(team));
  if (!isClosed(d.status)) renderPursuit($("pursuit-slot"), d);
  $("btn-clear")?.addEventListener("click", () => setIncidentStatus("cleared"));
  $("btn-cancel")?.addEventListener("click", () => setIncidentStatus("cancelled"));
}

async function assign(unitId) {
  if (!state.selectedId || !canWrite()) return;
  try {
    await api(`/api/v1/incidents/${encodeURIComponent(state.selectedId)}/assignments`, {
      method: "POST", json: { unit_id: unitId },
    });
    toast(t("toast.assigned", { unit: unitId }));
  } catch (e) {
    toast(errorText(e), true);
  }
  await loadDetail(state.selectedId);
}

async function assignRecommended() {
  const rec = state.recommendation;
  if (!rec || !rec.candidates || !rec.candidates.length) return;
  await sendTeam(rec.team && rec.team.length ? rec.team : [rec.candidates[0].unit_id]);
}

/** Send the recommendation's team in one action: one request, all units or none. */
async function sendTeam(unitIds) {
  if (!state.selectedId || !canWrite()) return;
  try {
    await api(`/api/v1/incidents/${encodeURIComponent(state.selectedId)}/team`, {
      method: "POST", json: { unit_ids: unitIds },
    });
    toast(t("toast.team_sent", { units: unitIds.join(", ") }));
  } catch (e) {
    toast(errorText(e), true);
  }
  await loadDetail(state.selectedId);
}

/** Reasons shared by every candidate (said once above the table) and each row's own ones. */
function splitReasons(candidates) {
  const key = (r) => `${r.code}:${JSON.stringify(r.params || {})}`;  // same reason, same values
  const keys = (c) => new Set((c.reasons || []).map(key));
  const common = candidates.length > 1
    ? [...keys(candidates[0])].filter((k) => candidates.every((c) => keys(c).has(k))) : [];
  const fastest = Math.min(...candidates.map((c) => c.eta_s));
  return {
    common: (candidates[0]?.reasons || []).filter((r) => common.includes(key(r))),
    own: (c) => {
      const parts = (c.reasons || []).filter((r) => !common.includes(key(r))).map(reasonLabel);
      if (c.eta_s > fastest + 0.5) parts.push(t("detail.slower_by", { eta: fmtDuration(c.eta_s - fastest) }));
      return parts.join(" · ") || "–";
    },
  };
}

async function setIncidentStatus(status) {
  if (!state.selectedId || !canWrite()) return;
  try {
    await api(`/api/v1/incidents/${encodeURIComponent(state.selectedId)}/status`, {
      method: "POST", json: { status },
    });
    toast(t("toast.status", { status: statusLabel(status) }));
  } catch (e) {
    toast(errorText(e), true);
  }
  await loadDetail(state.selectedId);
}

// ------------------------------------------------------------------ KPIs and charts
function scheduleSummary(delay = 1500) {
  // Many events arrive together: refresh the KPIs at most once per delay, and every 20 s.
  if (state.summaryDue) return;
  state.summaryDue = setTimeout(async () => {
    state.summaryDue = null;
    await refreshSummary();
  }, delay);
  clearInterval(state.summaryTimer);
  state.summaryTimer = setInterval(() => scheduleSummary(0), 20000);
}

async function refreshSummary() {
  if (!hasToken()) return;
  try {
    state.summary = await api("/api/v1/dashboard/summary");
  } catch (e) {
    return;
  }
  renderSummary();
}

function renderSummary() {
  const s = state.summary;
  if (!s) return;
  const [t1, t2] = s.thresholds_s.map((x) => String(x).replace(/\.0$/, ""));
  const share = (g, th) => g.share_on_scene_within[th] ?? g.share_on_scene_within[`${th}.0`];
  const mins = (sec) => fmtNumber(Number(sec) / 60, 0);
  // A share means something once a unit has reached a call: until then the tile says "–".
  const pct = (g, th) => (g.reached ? fmtPercent(share(g, th)) : "–");
  const base = (g) => (g.reached ? t("kpi.of_calls", { n: g.incidents - g.cancelled }) : t("kpi.no_arrival"));
  const tiles = [
    ["kpi.incidents_today", String(s.today.incidents), t("kpi.week_n", { n: s.week.incidents })],
    ["kpi.within_today", pct(s.today, t1), base(s.today), { m: mins(t1) }],
    ["kpi.within_week", pct(s.week, t1), base(s.week), { m: mins(t1) }],
    ["kpi.within_today", pct(s.today, t2), base(s.today), { m: mins(t2) }],
    ["kpi.within_week", pct(s.week, t2), base(s.week), { m: mins(t2) }],
    ["kpi.response_p50", fmtDuration(s.today.response_s.p50), t("kpi.week_value", { v: fmtDuration(s.week.response_s.p50) })],
    ["kpi.response_p90", fmtDuration(s.today.response_s.p90), t("kpi.week_value", { v: fmtDuration(s.week.response_s.p90) })],
    ["kpi.available", String(s.units.available), t("kpi.on_street_n", { n: s.units.on_street })],
    ["kpi.density", fmtNumber(s.units.on_street_per_km2, 2), t("kpi.per_km2")],
  ];
  $("kpi-tiles").replaceChildren(...tiles.map(([key, value, sub, vars]) => {
    const div = document.createElement("div");
    div.className = "tile";
    div.dataset.kpi = vars ? `${key}.${vars.m}` : key;
    div.innerHTML = `<div class="v">${esc(value)}</div><div class="l">${esc(t(key, vars))}</div><div class="s">${esc(sub)}</div>`;
    return div;
  }));
  const stations = [...s.by_station].sort((a, b) => Number(a.station) - Number(b.station) || a.station.localeCompare(b.station));
  barChart($("chart-station"), stations.map((r) => r.station), [
    { name: t("chart.incidents_today"), cls: "bar-a", values: stations.map((r) => r.incidents) },
    { name: t("chart.available_units"), cls: "bar-b", values: stations.map((r) => r.available) },
  ], { title: t("chart.by_station") });
  barChart($("chart-hour"), s.by_hour.map((_, h) => String(h)), [
    { name: t("chart.incidents_week"), cls: "bar-a", values: s.by_hour },
  ], { title: t("chart.by_hour"), height: 110 });
}

// ------------------------------------------------------------------ language, keys
function switchLanguage() {
  setLang(getLang() === "en" ? "zh" : "en");
  applyLanguage();
}

function applyLanguage() {
  translatePage();
  const other = getLang() === "en" ? "中文" : "English";
  $("lang-toggle").textContent = other;
  $("login-lang").textContent = other;
  renderCity();
  renderClock();
  renderConn();
  renderHelp();
  if (!state.me) return;
  renderWho();
  renderLegend();
  renderQueue();
  renderUnitSummary();
  renderSummary();
  renderDetail();
  state.board?.render();
  state.board?.renderMoveUp();
  state.map.buildLayerControl();
  renderAdvisories();
  state.sightings?.addToLayerControl();
  state.sightings?.render();
  state.ebikes?.addToLayerControl();
  state.ebikes?.build();
}

const SHORTCUTS = [
  ["J / ↓", "help.next", () => moveSelection(1)],
  ["K / ↑", "help.previous", () => moveSelection(-1)],
  ["A", "help.send_team", () => assignRecommended()],
  ["C", "help.clear", () => setIncidentStatus("cleared")],
  ["X", "help.cancel", () => setIncidentStatus("cancelled")],
  ["F", "help.focus", () => focusSelected()],
  ["L", "help.language", () => switchLanguage()],
  ["Esc", "help.close_detail", () => closeDetail()],
  ["?", "help.show", () => toggleHelp()],
];

function renderHelp() {
  $("help-table").innerHTML = SHORTCUTS.map(([k, key]) => `<tr><td><kbd>${esc(k)}</kbd></td><td>${esc(t(key))}</td></tr>`).join("");
}

function toggleHelp(show) {
  const help = $("help");
  help.hidden = show === undefined ? !help.hidden : !show;
}

function moveSelection(step) {
  const list = visibleIncidents();
  if (!list.length) return;
  const i = list.findIndex((x) => x.id === state.selectedId);
  const next = list[(i < 0 ? (step > 0 ? 0 : list.length - 1) : (i + step + list.length) % list.length)];
  selectIncident(next.id);
  document.querySelector(`#queue li[data-id="${CSS.escape(next.id)}"]`)?.scrollIntoView({ block: "nearest" });
}

function focusSelected() {
  const inc = state.incidents.get(state.selectedId);
  if (inc) state.map.map.setView([inc.lat, inc.lon], 16);
}

function onKey(e) {
  if (!state.me || !$("login").hidden) return;
  if (e.target.closest("input, textarea, select") || e.ctrlKey || e.metaKey || e.altKey) return;
  const key = { ArrowDown: "j", ArrowUp: "k", Escape: "esc" }[e.key] || e.key.toLowerCase();
  const action = {
    j: 0, k: 1, a: 2, c: 3, x: 4, f: 5, l: 6, esc: 7, "?": 8,
  }[key];
  if (action === undefined) return;
  if (key === "esc" && !$("help").hidden) { toggleHelp(false); return; }
  e.preventDefault();
  SHORTCUTS[action][2]();
}

function bindStaticHandlers() {
  $("login-form").addEventListener("submit", onLogin);
  // Enabled only now: a click before start-up finished would submit the bare HTML form.
  $("login-submit").disabled = false;
  $("lang-toggle").addEventListener("click", switchLanguage);
  $("login-lang").addEventListener("click", switchLanguage);
  $("logout").addEventListener("click", () => { logout(); state.me = null; showLogin(); });
  $("detail-close").addEventListener("click", closeDetail);
  $("help-btn").addEventListener("click", () => toggleHelp());
  $("help-close").addEventListener("click", () => toggleHelp(false));
  $("show-closed").addEventListener("change", renderQueue);
  document.addEventListener("keydown", onKey);
  applyLanguage();
}

main().catch((e) => {
  console.error(e);
  toast(String(e.message || e), true);
});
