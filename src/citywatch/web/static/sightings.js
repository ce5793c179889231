// Hotlist alerts (issue 14): the alert list, the sightings on the map, the tracks.
//
// Alerts come from GET /api/v1/sightings/alerts at start-up and from "sighting.alert" events
// of the stream; the service sends each user only the alerts of the hotlists its role reads
// and, for a station officer, only those addressed to its area (or a neighbouring one).
// One click opens an incident at the latest sighting; another shows the subject's track.
import { api } from "./api.js";
import { fmtTime, t } from "./i18n.js";

const ACTIVE = new Set(["open", "acknowledged"]);
const WRITE_ROLES = new Set(["admin", "commander", "dispatcher", "station_officer"]);
// Priority 1 (most urgent) .. 5: marker colours.
const PRIORITY_COLOURS = { 1: "#b2182b", 2: "#d6604d", 3: "#f4a582", 4: "#92c5de", 5: "#4393c3" };
const MAX_SHOWN = 50;

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

export class Sightings {
  /**
   * @param {object} cityMap the dashboard's CityMap (its Leaflet map and layer control)
   * @param {object} hooks toast(message, bad), stationLabel(id), onIncident(incident)
   */
  constructor(cityMap, hooks) {
    this.cityMap = cityMap;
    this.hooks = hooks;
    this.alerts = new Map();
    this.markers = new Map();
    this.tracks = new Map();
    this.markerLayer = L.layerGroup().addTo(cityMap.map);
    this.trackLayer = L.layerGroup().addTo(cityMap.map);
    this.me = null;
    this.pane = document.createElement("section");
    this.pane.id = "alerts-pane";
    this.pane.hidden = true;
    this.pane.innerHTML = `<h2><span data-role="title"></span>
      <span class="count" data-testid="alerts-count">0</span></h2>
      <ol id="alerts" data-testid="alerts"></ol>`;
    document.getElementById("side").prepend(this.pane);
    this.pane.addEventListener("click", (e) => this.onClick(e));
    this.addToLayerControl();
  }

  /** The map layers in the layer switcher (called again when it is rebuilt). */
  addToLayerControl() {
    const control = this.cityMap.layerControl;
    if (!control) return;
    control.addOverlay(this.markerLayer, t("layer.sightings"));
    control.addOverlay(this.trackLayer, t("layer.tracks"));
  }

  /** Load the alerts the user may see; users whose role reads no hotlist see no pane. */
  async start(me) {
    this.me = me;
    this.alerts.clear();
    this.markerLayer.clearLayers();
    this.markers.clear();
    this.trackLayer.clearLayers();
    this.tracks.clear();
    let lists = [];
    try {
      lists = me.role === "unit_device" ? [] : await api("/api/v1/hotlists");
    } catch (e) {
      lists = [];
    }
    this.pane.hidden = lists.length === 0;
    if (this.pane.hidden) return;
    try {
      const alerts = await api("/api/v1/sightings/alerts?limit=200");
      for (const a of alerts.reverse()) this.upsert(a);
    } catch (e) {
      console.warn("alerts unavailable", e);
    }
    this.render();
  }

  /** A "sighting.alert" event of the stream. */
  async onEvent(ev) {
    if (!this.me || this.pane.hidden) return;
    if (!ev.data) { await this.start(this.me); return; } // too large for the bus: reload
    const fresh = ev.data.change === "created";
    this.upsert(ev.data);
    this.render();
    if (fresh) {
      this.hooks.toast(t("alerts.new", { what: this.what(ev.data), station: this.hooks.stationLabel(ev.data.station) }));
    }
    if (this.tracks.has(ev.data.entry_id)) await this.showTrack(ev.data.entry_id, true);
  }

  what(a) {
    const reason = t(`alerts.reason.${a.reason}`);
    return a.label ? `${reason} · ${a.label}` : reason;
  }

  upsert(a) {
    this.alerts.set(a.id, a);
    if (a.lon == null || a.lat == null) return;
    let marker = this.markers.get(a.id);
    const style = {
      radius: 9, weight: 3, color: "#111", fillOpacity: 0.85,
      fillColor: PRIORITY_COLOURS[a.priority] || "#d6604d",
      opacity: ACTIVE.has(a.status) ? 1 : 0.4,
    };
    if (!marker) {
      marker = L.circleMarker([a.lat, a.lon], style).addTo(this.markerLayer);
      marker.on("click", () => this.select(a.id));
      this.markers.set(a.id, marker);
    } else {
      marker.setLatLng([a.lat, a.lon]).setStyle(style);
    }
    marker.bindTooltip(() => this.tooltip(this.alerts.get(a.id)));
  }

  tooltip(a) {
    return `${esc(t(`alerts.kind.${a.kind}`))} · ${esc(this.what(a))}<br>`
      + `${esc(this.hooks.stationLabel(a.station))} · ${esc(fmtTime(a.last_seen_at))} · ${esc(a.sensor_id)}`;
  }

  select(id) {
    const a = this.alerts.get(id);
    if (a && a.lat != null) this.cityMap.map.setView([a.lat, a.lon], Math.max(this.cityMap.map.getZoom(), 15));
    this.pane.querySelectorAll("li").forEach((li) => li.classList.toggle("selected", Number(li.dataset.id) === id));
  }

  render() {
    if (!this.me) return;
    this.pane.querySelector("[data-role=title]").textContent = t("alerts.title");
    const list = [...this.alerts.values()].sort((x, y) => y.id - x.id);
    const active = list.filter((a) => ACTIVE.has(a.status));
    this.pane.querySelector("[data-testid=alerts-count]").textContent = String(active.length);
    const canWrite = WRITE_ROLES.has(this.me.role);
    const items = list.slice(0, MAX_SHOWN).map((a) => {
      const nearest = (a.recommended || []).map(
        (u) => `${esc(u.unit_id)} (${Math.round(u.eta_s / 60)} ${esc(t("alerts.minutes"))})`).join(", ");
      const buttons = [
        `<button type="button" data-act="track">${esc(t(this.tracks.has(a.entry_id) ? "alerts.hide_track" : "alerts.track"))}</button>`,
      ];
      if (canWrite && ACTIVE.has(a.status) && !a.incident_id) {
        buttons.push(`<button type="button" data-act="incident" data-testid="alert-open-incident">${esc(t("alerts.open_incident"))}</button>`);
      }
      if (canWrite && a.status === "open") {
        buttons.push(`<button type="button" data-act="ack">${esc(t("alerts.acknowledge"))}</button>`);
      }
      if (canWrite && a.status !== "closed") {
        buttons.push(`<button type="button" data-act="close">${esc(t("alerts.close"))}</button>`);
      }
      const synthetic = a.synthetic ? ` <span class="badge sim">${esc(t("alerts.synthetic"))}</span>` : "";
      const role = (a.recipients || []).find((r) => r.station === this.me.scope)?.role;
      const via = role === "neighbour" ? ` · ${esc(t("alerts.neighbour"))}` : "";
      const onMap = this.markers.has(a.id) && this.markerLayer.hasLayer(this.markers.get(a.id));
      return `<li data-testid="alert-item" data-id="${a.id}" data-status="${esc(a.status)}" data-kind="${esc(a.kind)}"
          data-on-map="${onMap}" data-lon="${a.lon ?? ""}" data-lat="${a.lat ?? ""}"
          class="alert p${a.priority} ${ACTIVE.has(a.status) ? "" : "done"}">
        <div><strong>${esc(t(`alerts.kind.${a.kind}`))}</strong>${synthetic}
          · ${esc(this.what(a))}${a.case_ref ? ` · ${esc(a.case_ref)}` : ""}</div>
        <div class="muted">${esc(this.hooks.stationLabel(a.station))}${via} · ${esc(fmtTime(a.last_seen_at))}
          · ${esc(t("alerts.sightings", { n: a.sightings }))} · ${esc(t(`alerts.status.${a.status}`))}</div>
        ${nearest ? `<div class="muted">${esc(t("alerts.nearest"))}: ${nearest}</div>` : ""}
        <div class="actions">${buttons.join(" ")}</div>
      </li>`;
    });
    this.pane.querySelector("ol").innerHTML = items.join("")
      || `<li class="muted">${esc(t("alerts.none"))}</li>`;
  }

  async onClick(e) {
    const li = e.target.closest("li[data-id]");
    if (!li) return;
    const id = Number(li.dataset.id);
    const act = e.target.closest("button")?.dataset.act;
    const a = this.alerts.get(id);
    if (!act) { this.select(id); return; }
    try {
      if (act === "track") {
        await this.showTrack(a.entry_id, !this.tracks.has(a.entry_id));
      } else if (act === "incident") {
        const incident = await api(`/api/v1/sightings/alerts/${id}/incident`, { method: "POST" });
        this.upsert({ ...a, status: "incident", incident_id: incident.id });
        this.hooks.toast(t("alerts.incident_opened"));
        this.hooks.onIncident(incident);
      } else {
        const status = act === "ack" ? "acknowledged" : "closed";
        this.upsert(await api(`/api/v1/sightings/alerts/${id}/status`, { method: "POST", json: { status } }));
      }
    } catch (err) {
      this.hooks.toast(err.message || String(err), true);
    }
    this.render();
  }

  /** Draw (or remove) the polyline of an entry's sightings, oldest to newest. */
  async showTrack(entryId, show) {
    const old = this.tracks.get(entryId);
    if (old) { this.trackLayer.removeLayer(old); this.tracks.delete(entryId); }
    if (!show) { this.render(); return; }
    const doc = await api(`/api/v1/sightings/tracks/${entryId}`);
    const layer = L.geoJSON(doc, {
      style: () => ({ color: "#762a83", weight: 4, opacity: 0.85, dashArray: "6 4" }),
      pointToLayer: (f, latlng) => L.circleMarker(latlng, {
        radius: 4, weight: 1, color: "#762a83", fillColor: "#fff", fillOpacity: 1,
      }).bindTooltip(`${esc(fmtTime(f.properties.seen_at))} · ${esc(f.properties.sensor_id)}`),
    }).addTo(this.trackLayer);
    this.tracks.set(entryId, layer);
    this.render();
  }
}
