// Pursuit panel (堵控) of an incident: isochrone rings, hiding-area ranking and the checkpoint
// plan from POST /api/v1/incidents/{id}/pursuit, drawn on the map and listed in the detail
// panel; one click sends the plan's units (POST .../pursuit/dispatch, all or none).
//
// The pursuit starts from the incident, from the latest sighting linked to it (hotlist hits of
// the surveillance room, GET .../pursuit/sightings; offered only when there is one), or from a
// sighting entered by hand (position, minutes ago); an optional heading is the direction the
// offender was seen taking there.  The server computes the reach from that place and time.
/* global L */
import { api } from "./api.js";
import { fmtDuration, fmtNumber, fmtPercent, fmtTime, hasMessage, t } from "./i18n.js";

const RING_COLOURS = { 1: "#ff3b3b", 3: "#ff8c1a", 5: "#f7c948", 10: "#7dd3fc" };
const MODES = ["motorcycle", "bicycle", "car", "foot"];

const state = {
  incidentId: null, result: null, busy: false, error: null, mode: "motorcycle", k: 6,
  origin: "incident", lon: "", lat: "", ago: 0, heading: "",
  sightingsFor: null, sightings: [],  // the incident's linked sightings, newest first
};
let ctx = null;     // {map, canWrite, toast, errorText, esc, onDispatched, unitLabel}
let layer = null;   // Leaflet layer group of rings, hiding areas and checkpoints

function esc(text) { return ctx.esc(text); }

/** Wire the panel to the dashboard (called once, after the map exists). */
export function initPursuit(context) {
  ctx = context;
  layer = L.layerGroup().addTo(ctx.map);
}

/** Forget the pursuit of the closed incident and take its layers off the map. */
export function clearPursuit() {
  state.incidentId = null;
  state.result = null;
  state.error = null;
  state.origin = "incident";
  state.lon = state.lat = state.heading = "";
  state.ago = 0;
  state.sightingsFor = null;
  state.sightings = [];
  if (layer) layer.clearLayers();
}

/** Load the sightings linked to the incident once, then draw the panel again. */
async function loadSightings(incident) {
  state.sightingsFor = incident.id;
  let found = [];
  try {
    const doc = await api(`/api/v1/incidents/${encodeURIComponent(incident.id)}/pursuit/sightings`);
    found = doc.sightings || [];
  } catch (e) {
    found = [];  // no list the role may read, or no sighting service: offer none
  }
  if (state.sightingsFor !== incident.id) return;  // another incident was opened meanwhile
  state.sightings = found;
  if (!found.length && state.origin === "latest") state.origin = "incident";
  const slot = document.getElementById("pursuit-slot");
  if (slot) renderPursuit(slot, incident);
}

function originHtml(incident) {
  const latest = state.sightings[0];
  const choice = (value, label) => `<label class="pursuit-choice"><input type="radio" name="pursuit-origin" value="${value}"
      data-testid="pursuit-origin-${value}" ${state.origin === value ? "checked" : ""}> ${esc(label)}</label>`;
  const choices = [choice("incident", t("pursuit.origin.incident"))];
  if (latest) {
    choices.push(choice("latest", t("pursuit.origin.latest", {
      sensor: latest.sensor_id, time: fmtTime(latest.seen_at), ago: fmtDuration(latest.elapsed_s),
    })));
  }
  choices.push(choice("hand", t("pursuit.origin.hand")));
  const hand = state.origin !== "hand" ? "" : `<div class="pursuit-hand">
      <label>${esc(t("pursuit.sighting.lon"))} <input id="pursuit-lon" data-testid="pursuit-sighting-lon" inputmode="decimal" value="${esc(state.lon || incident.lon)}"></label>
      <label>${esc(t("pursuit.sighting.lat"))} <input id="pursuit-lat" data-testid="pursuit-sighting-lat" inputmode="decimal" value="${esc(state.lat || incident.lat)}"></label>
      <label>${esc(t("pursuit.sighting.ago"))} <input id="pursuit-ago" type="number" min="0" max="1440" value="${state.ago}" data-testid="pursuit-sighting-ago"></label>
    </div>`;
  return `<fieldset class="pursuit-origin" data-testid="pursuit-origin"><legend>${esc(t("pursuit.origin"))}</legend>
      ${choices.join("")}${hand}
      <label>${esc(t("pursuit.heading"))} <input id="pursuit-heading" type="number" min="0" max="360" value="${esc(state.heading)}" data-testid="pursuit-heading"></label>
    </fieldset>`;
}

/** The request's origin fields: the incident (with its heading), or a sighting. */
function originBody(incident) {
  const heading = state.heading === "" ? null : Number(state.heading);
  if (state.origin === "latest") return { sighting: { latest: true, heading_deg: heading } };
  if (state.origin === "hand") {
    const ago = Math.max(0, Number(state.ago) || 0);
    return {
      sighting: {
        lon: Number(state.lon || incident.lon), lat: Number(state.lat || incident.lat),
        at: new Date(Date.now() - ago * 60_000).toISOString(), heading_deg: heading,
      },
    };
  }
  return heading === null ? {} : { heading_deg: heading };
}

function readForm(slot) {
  state.mode = slot.querySelector("#pursuit-mode").value;
  state.k = Math.min(20, Math.max(1, Number(slot.querySelector("#pursuit-k").value) || 6));
  state.heading = slot.querySelector("#pursuit-heading").value;
  if (slot.querySelector("#pursuit-lon")) {
    state.lon = slot.querySelector("#pursuit-lon").value;
    state.lat = slot.querySelector("#pursuit-lat").value;
    state.ago = slot.querySelector("#pursuit-ago").value;
  }
}

/** The pursuit section of an incident's detail panel (re-rendered with the panel). */
export function renderPursuit(slot, incident) {
  if (!slot || !ctx) return;
  if (state.incidentId !== incident.id && state.sightingsFor !== incident.id) clearPursuit();
  if (state.sightingsFor !== incident.id) loadSightings(incident);
  const r = state.incidentId === incident.id ? state.result : null;
  const modeOptions = MODES.map((m) => `<option value="${m}" ${m === state.mode ? "selected" : ""}>${esc(t(`pursuit.mode.${m}`))}</option>`).join("");
  slot.innerHTML = `<h3>${esc(t("pursuit.title"))}</h3>
    <div class="pursuit-form">
      <label>${esc(t("pursuit.offender_mode"))} <select id="pursuit-mode" data-testid="pursuit-mode">${modeOptions}</select></label>
      <label>${esc(t("pursuit.checkpoints"))} <input id="pursuit-k" type="number" min="1" max="20" value="${state.k}" data-testid="pursuit-k"></label>
      <button type="button" id="btn-pursuit" data-testid="btn-pursuit" ${state.busy ? "disabled" : ""}>${esc(state.busy ? t("pursuit.running") : t("pursuit.run"))}</button>
    </div>
    ${originHtml(incident)}
    ${state.error ? `<p class="error" data-testid="pursuit-error">${esc(state.error)}</p>` : ""}
    ${r ? resultHtml(r) : ""}`;
  slot.querySelector("#pursuit-mode").addEventListener("change", (e) => { state.mode = e.target.value; });
  slot.querySelector("#pursuit-k").addEventListener("change", (e) => { state.k = Number(e.target.value) || 6; });
  for (const radio of slot.querySelectorAll("input[name=pursuit-origin]")) {
    radio.addEventListener("change", (e) => { readForm(slot); state.origin = e.target.value; renderPursuit(slot, incident); });
  }
  for (const id of ["pursuit-heading", "pursuit-lon", "pursuit-lat", "pursuit-ago"]) {
    slot.querySelector(`#${id}`)?.addEventListener("change", () => readForm(slot));
  }
  slot.querySelector("#btn-pursuit").addEventListener("click", () => run(incident.id, slot, incident));
  slot.querySelector("#btn-pursuit-dispatch")?.addEventListener("click", () => dispatchPlan(incident.id, slot, incident));
}

function resultHtml(r) {
  const rings = r.rings.summary.map((s) => `<tr data-testid="pursuit-ring"><td><i class="sym" style="background:${RING_COLOURS[s.minutes] || "#9fb3c8"}"></i>${esc(t("pursuit.minutes", { m: s.minutes }))}</td>
      <td>${esc(fmtNumber(s.street_km, 1))} km</td><td>${esc(String(s.segments))}</td></tr>`).join("");
  const ranking = r.hiding.ranking.slice(0, 8).map((h, i) => `<tr data-testid="pursuit-hiding"><td>${i + 1}</td>
      <td>${esc(h.name || h.id)}<br><span class="reason">${esc(hasMessage(`pursuit.kind.${h.kind}`) ? t(`pursuit.kind.${h.kind}`) : h.kind)}</span></td>
      <td>${esc(fmtPercent(h.p_end))}</td><td>${esc(fmtPercent(h.p_pass))}</td></tr>`).join("");
  const plan = r.plan;
  let planHtml = `<p class="muted" data-testid="pursuit-no-units">${esc(t("pursuit.no_units"))}</p>`;
  if (plan) {
    const rows = plan.checkpoints.map((c, i) => `<tr data-testid="pursuit-checkpoint" data-unit="${esc(c.unit)}"><td>${i + 1}</td>
        <td><b>${esc(c.unit)}</b><br><span class="reason">${esc(ctx.unitLabel(c.unit_type))}</span></td>
        <td>${esc(fmtDuration(c.eta_s))}</td><td class="reason">${esc(fmtNumber(c.lat, 5))}, ${esc(fmtNumber(c.lon, 5))}</td></tr>`).join("");
    const oos = plan.out_of_sample;
    const naive = plan.naive;
    const ci = (s) => `${fmtPercent(s.share)} (${fmtPercent(s.ci_low)}–${fmtPercent(s.ci_high)})`;
    planHtml = `<table><thead><tr><th>#</th><th>${esc(t("detail.unit"))}</th><th>${esc(t("pursuit.eta"))}</th><th>${esc(t("pursuit.point"))}</th></tr></thead>
        <tbody>${rows || `<tr><td colspan="4" class="muted">${esc(t("pursuit.no_checkpoints"))}</td></tr>`}</tbody></table>
      <p data-testid="pursuit-share"><b>${esc(t("pursuit.share"))}</b> ${esc(ci(oos))}
        · ${esc(t("pursuit.naive"))} ${esc(ci(naive))}</p>
      <p class="reason">${esc(t("pursuit.method", { method: plan.method, routes: oos.routes, delay: fmtDuration(r.delay_s) }))}</p>
      ${ctx.canWrite() && plan.checkpoints.length ? `<button type="button" class="primary" id="btn-pursuit-dispatch" data-testid="btn-pursuit-dispatch">${esc(t("pursuit.dispatch", { n: plan.checkpoints.length }))}</button>` : ""}`;
  }
  const a = r.hiding.assumptions;
  const o = r.origin;
  let from = t("pursuit.from.incident", { time: fmtTime(o.at) });
  if (o.source === "sighting") {
    from = t("pursuit.from.sighting", { time: fmtTime(o.at), ago: fmtDuration(r.elapsed_s), delay: fmtDuration(r.delay_s) });
    if (o.sighting && o.sighting.sensor_id) from += ` ${t("pursuit.from.sensor", { sensor: o.sighting.sensor_id })}`;
  }
  if (o.heading_deg !== null && o.heading_deg !== undefined) from += ` ${t("pursuit.from.heading", { deg: fmtNumber(o.heading_deg, 0) })}`;
  return `<p class="reason" data-testid="pursuit-origin-info" data-source="${esc(o.source)}">${esc(from)}</p>
    <table><thead><tr><th>${esc(t("pursuit.ring"))}</th><th>${esc(t("pursuit.streets"))}</th><th>${esc(t("pursuit.segments"))}</th></tr></thead><tbody>${rings}</tbody></table>
    <h4>${esc(t("pursuit.hiding"))}</h4>
    <table><thead><tr><th>#</th><th>${esc(t("pursuit.area"))}</th><th>${esc(t("pursuit.p_end"))}</th><th>${esc(t("pursuit.p_pass"))}</th></tr></thead>
      <tbody>${ranking || `<tr><td colspan="4" class="muted">${esc(t("detail.none"))}</td></tr>`}</tbody></table>
    <p class="reason" data-testid="pursuit-assumptions">${esc(t("pursuit.assumptions", { routes: a.routes, sigma: a.noise_sigma, weight: a.hiding_kind_weight, seed: a.seed }))}</p>
    <h4>${esc(t("pursuit.plan"))}</h4>${planHtml}`;
}

async function run(incidentId, slot, incident) {
  readForm(slot);
  state.busy = true;
  state.error = null;
  renderPursuit(slot, incident);
  try {
    const result = await api(`/api/v1/incidents/${encodeURIComponent(incidentId)}/pursuit`, {
      method: "POST", json: { mode: state.mode, k: state.k, ...originBody(incident) },
    });
    state.incidentId = incidentId;
    state.result = result;
    draw(result);
  } catch (e) {
    state.incidentId = incidentId;
    state.error = ctx.errorText(e);
  } finally {
    state.busy = false;
  }
  // The detail panel may have been re-rendered meanwhile: draw into the current slot.
  renderPursuit(document.getElementById("pursuit-slot") || slot, incident);
}

function draw(r) {
  layer.clearLayers();
  L.geoJSON(r.rings.geojson, {
    interactive: false,
    style: (f) => ({ color: RING_COLOURS[f.properties.minutes] || "#9fb3c8", weight: 1, fillOpacity: 0.12 }),
  }).addTo(layer);
  const top = Math.max(1e-9, ...r.hiding.geojson.features.map((f) => f.properties.p_end));
  L.geoJSON(r.hiding.geojson, {
    style: (f) => ({ color: "#c084fc", weight: 1.5, fillColor: "#c084fc", fillOpacity: 0.1 + 0.5 * f.properties.p_end / top }),
    pointToLayer: (f, latlng) => L.circleMarker(latlng, { radius: 6, color: "#c084fc" }),
    onEachFeature: (f, l) => l.bindTooltip(`${f.properties.name || f.properties.id} · ${t("pursuit.p_end")} ${fmtPercent(f.properties.p_end)}`),
  }).addTo(layer);
  L.circleMarker([r.origin.lat, r.origin.lon], { radius: 7, color: "#111", weight: 2, fillColor: "#ff3b3b", fillOpacity: 1 })
    .bindTooltip(r.origin.source === "sighting" ? t("pursuit.last_seen") : t("pursuit.origin.incident"))
    .addTo(layer);
  for (const c of (r.plan?.checkpoints || [])) {
    L.circleMarker([c.lat, c.lon], { radius: 8, color: "#fff", weight: 2, fillColor: "#3fa7ff", fillOpacity: 0.9 })
      .bindTooltip(`${t("pursuit.checkpoint")} · ${c.unit} · ${fmtDuration(c.eta_s)}`)
      .addTo(layer);
  }
}

async function dispatchPlan(incidentId, slot, incident) {
  const plan = state.result && state.result.plan;
  if (!plan || !ctx.canWrite()) return;
  const checkpoints = plan.checkpoints.map((c) => ({ unit_id: c.unit, lon: c.lon, lat: c.lat, eta_s: c.eta_s }));
  try {
    const out = await api(`/api/v1/incidents/${encodeURIComponent(incidentId)}/pursuit/dispatch`, {
      method: "POST", json: { checkpoints },
    });
    ctx.toast(t("pursuit.dispatched", { n: out.assigned }));
  } catch (e) {
    ctx.toast(ctx.errorText(e), true);  // all or none: the message names the refused units
  }
  await ctx.onDispatched();
}
