// The e-bike registry (电动车物联网, issue 14 §4): look up and register tagged e-bikes, report a
// theft (the service puts the tag on the stolen_ebikes hotlist), the map layers of e-bike thefts
// and of tag-reader hits, and the theft statistics by area and hour.
//
// The panel follows the roles the API enforces (citywatch.surveillance.ebikes): admins,
// commanders and station officers (their own station) register and report; dispatchers look
// up; analysts see only the statistics; unit devices get no panel.  Tags travel only in request
// bodies, never in URLs.
/* global L */
import { api } from "./api.js";
import { barChart } from "./charts.js";
import { fmtDateTime, t } from "./i18n.js";

const CHANGE_ROLES = new Set(["admin", "commander", "station_officer"]);
const READ_ROLES = new Set([...CHANGE_ROLES, "dispatcher"]);
const HOTLIST_REASON = "stolen_ebike"; // the alerts of tag-reader hits on stolen e-bikes
const SHOWN = 8; // newest thefts and hits listed in the panel
const TOP_AREAS = 12; // areas in the chart by area
const THEFT_COLOUR = "#e7298a";
const HIT_COLOUR = "#1b9e77";

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

/** What was stolen: "red Emmo" per item (the make and colour as the source gives them). */
export function itemsLabel(items) {
  return (items || []).map((i) => [i.colour, i.make].filter(Boolean).join(" ")).filter(Boolean).join("; ");
}

/** Offset (ms) of ``timeZone`` from UTC at the instant ``utcMs``. */
function zoneOffset(utcMs, timeZone) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", {
    timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(utcMs)).map((p) => [p.type, p.value]));
  const wall = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
  return wall - Math.floor(utcMs / 1000) * 1000;
}

/** A ``datetime-local`` value read as the city's wall-clock time, as an ISO instant (UTC). */
export function cityTimeToIso(local, timeZone) {
  const [date, time] = local.split("T");
  const [y, m, d] = date.split("-").map(Number);
  const [hh, mm] = time.split(":").map(Number);
  const wall = Date.UTC(y, m - 1, d, hh, mm);
  // The offset near the wall-clock time, then at the instant it gives: when the two differ a
  // DST change lies between, and the second is right if it maps back to the same wall clock.
  // A time the change skips (02:30 on a spring-forward night) keeps the earlier offset, like
  // Python's zoneinfo with fold=0.
  const before = zoneOffset(wall, timeZone);
  const after = zoneOffset(wall - before, timeZone);
  const utc = after !== before && zoneOffset(wall - after, timeZone) === after
    ? wall - after : wall - before;
  return new Date(utc).toISOString();
}

/** The city's wall-clock time now, as a ``datetime-local`` value. */
function cityNow(timeZone) {
  const now = Date.now();
  return new Date(now + zoneOffset(now, timeZone)).toISOString().slice(0, 16);
}

export class EBikes {
  /**
   * @param {object} cityMap the dashboard's CityMap (its Leaflet map and layer control)
   * @param {object} hooks toast(message, bad), errorText(error), stationLabel(id),
   *   stations() (station ids of the pack), timeZone (the city's)
   */
  constructor(cityMap, hooks) {
    this.cityMap = cityMap;
    this.hooks = hooks;
    this.me = null;
    this.bike = null;
    this.thefts = { features: [], total: 0 };
    this.hits = new Map();
    this.stats = null;
    this.control = null;
    this.theftLayer = L.layerGroup().addTo(cityMap.map);
    this.hitLayer = L.layerGroup().addTo(cityMap.map);
    this.pane = document.createElement("section");
    this.pane.id = "ebikes-pane";
    this.pane.dataset.testid = "ebikes-pane";
    this.pane.hidden = true;
    document.getElementById("charts").after(this.pane);
    this.pane.addEventListener("submit", (e) => { e.preventDefault(); this.onSubmit(e.target); });
    this.pane.addEventListener("click", (e) => this.onClick(e));
    this.addToLayerControl();
  }

  /** The map layers in the layer switcher (called again when it is rebuilt). */
  addToLayerControl() {
    const control = this.cityMap.layerControl;
    if (!control || control === this.control || !this.canRead) return;
    control.addOverlay(this.theftLayer, t("layer.ebike_thefts"));
    control.addOverlay(this.hitLayer, t("layer.ebike_hits"));
    this.control = control; // once per switcher (it is rebuilt on a language change)
  }

  /** Load what the user's role may see; unit devices get no panel. */
  async start(me) {
    this.me = me;
    this.bike = null;
    this.thefts = { features: [], total: 0 };
    this.hits.clear();
    this.theftLayer.clearLayers();
    this.hitLayer.clearLayers();
    this.pane.hidden = me.role === "unit_device";
    if (this.pane.hidden) return;
    this.addToLayerControl();
    this.build();
    await Promise.all([this.loadStats(), this.loadThefts(), this.loadHits()]);
    this.render();
  }

  get canRead() { return READ_ROLES.has(this.me?.role); }
  get canChange() { return CHANGE_ROLES.has(this.me?.role); }

  async loadStats() {
    try {
      this.stats = await api("/api/v1/ebikes/stats");
    } catch (e) {
      this.stats = null;
      console.warn("e-bike statistics unavailable", e);
    }
  }

  async loadThefts() {
    if (!this.canRead) return;
    try {
      this.thefts = await api("/api/v1/ebikes/thefts/layer");
    } catch (e) {
      console.warn("e-bike theft layer unavailable", e);
    }
    this.theftLayer.clearLayers();
    for (const f of this.thefts.features) {
      const [lon, lat] = f.geometry.coordinates;
      L.circleMarker([lat, lon], {
        radius: 5, weight: 1, color: "#111", fillColor: THEFT_COLOUR, fillOpacity: 0.8,
      }).bindTooltip(() => this.theftText(f.properties)).addTo(this.theftLayer);
    }
  }

  /** Tag-reader hits: the hotlist alerts on stolen e-bikes the user may see. */
  async loadHits() {
    if (!this.canRead) return;
    this.hits.clear();
    this.hitLayer.clearLayers();
    try {
      const alerts = await api("/api/v1/sightings/alerts?limit=200");
      for (const a of alerts.reverse()) this.upsertHit(a);
    } catch (e) {
      console.warn("tag-reader hits unavailable", e);
    }
  }

  upsertHit(a) {
    if (a.reason !== HOTLIST_REASON) return false;
    const old = this.hits.get(a.id);
    if (old?.marker) this.hitLayer.removeLayer(old.marker);
    const hit = { ...a, marker: null };
    if (a.lon != null && a.lat != null) {
      hit.marker = L.circleMarker([a.lat, a.lon], {
        radius: 8, weight: 3, color: "#111", fillColor: HIT_COLOUR, fillOpacity: 0.9,
      }).bindTooltip(() => this.hitText(hit)).addTo(this.hitLayer);
    }
    this.hits.set(a.id, hit);
    return true;
  }

  /** A "sighting.alert" event of the stream (the dashboard's handler passes it on). */
  async onAlert(ev) {
    if (!this.canRead) return;
    if (!ev.data) { await this.loadHits(); this.render(); return; }
    if (this.upsertHit(ev.data)) this.render();
  }

  theftText(p) {
    const what = itemsLabel(p.items);
    const src = t(p.source === "ebike_registry" ? "ebike.source_registry" : "ebike.source_import");
    return `${esc(fmtDateTime(p.occurred_at))} · ${esc(this.hooks.stationLabel(p.station))}`
      + `${what ? ` · ${esc(what)}` : ""} · ${esc(src)}`;
  }

  hitText(h) {
    return `${esc(h.label || t("alerts.reason.stolen_ebike"))} · ${esc(h.sensor_id)}`
      + ` · ${esc(this.hooks.stationLabel(h.station))} · ${esc(fmtDateTime(h.last_seen_at))}`;
  }

  // ------------------------------------------------------------------ rendering
  /** The panel's frame and forms for the user's role, in the current language (again after a
   *  language switch); the changing parts are drawn by render(). */
  build() {
    if (!this.me || this.pane.hidden) return;
    this.pane.innerHTML = `<h2><span>${esc(t("ebike.title"))}</span>
        <span class="count" data-testid="ebike-theft-count"></span></h2>
      ${this.canRead ? this.lookupHtml() : ""}<div data-part="card"></div>
      ${this.canChange ? this.registerHtml() + this.theftHtml() : ""}
      <div data-part="lists"></div>
      <figure><figcaption>${esc(t("ebike.chart_hour"))}</figcaption>
        <div data-testid="ebike-chart-hour"></div></figure>
      <figure><figcaption>${esc(t("ebike.chart_area"))}</figcaption>
        <div data-testid="ebike-chart-area"></div></figure>
      <p class="muted" data-testid="ebike-stats-note"></p>`;
    this.render();
  }

  /** The bike card, the lists of thefts and hits, the charts (forms keep what is typed). */
  render() {
    if (!this.me || this.pane.hidden || !this.pane.firstChild) return;
    const part = (name) => this.pane.querySelector(`[data-part=${name}]`);
    this.pane.querySelector("[data-testid=ebike-theft-count]").textContent = this.canRead ? String(this.thefts.total) : "";
    part("card").innerHTML = this.canRead ? this.cardHtml() : "";
    part("lists").innerHTML = this.canRead ? this.listsHtml() : "";
    this.pane.querySelector("[data-testid=ebike-stats-note]").textContent = this.statsNote();
    this.drawCharts();
  }

  lookupHtml() {
    return `<form data-form="lookup" class="ebike-form">
        <input name="tag" required minlength="4" maxlength="64" autocomplete="off"
          placeholder="${esc(t("ebike.tag"))}" data-testid="ebike-lookup-tag">
        <button type="submit" data-testid="ebike-lookup">${esc(t("ebike.lookup"))}</button>
      </form>`;
  }

  cardHtml() {
    const b = this.bike;
    let card = "";
    if (b && b.missing) {
      card = `<p class="muted" data-testid="ebike-card" data-found="false">${esc(t("ebike.not_found"))}</p>`;
    } else if (b) {
      const rows = [
        ["ebike.tag", `…${b.tag_hint}`], ["ebike.make", b.make], ["ebike.colour", b.colour],
        ["ebike.station", this.hooks.stationLabel(b.station)],
        ["ebike.status", t(`ebike.status.${b.status}`)],
        ["ebike.contact", b.contact ?? (b.has_contact ? t("ebike.contact_hidden") : "–")],
      ];
      const reports = b.theft_reports.map((r) => `<li>${esc(fmtDateTime(r.occurred_at))}
        · ${esc(this.hooks.stationLabel(r.station))} · ${esc(t(`ebike.report.${r.status}`))}</li>`).join("");
      const recover = this.canChange && b.status === "stolen"
        ? `<button type="button" data-act="recover" data-testid="ebike-recover">${esc(t("ebike.recover"))}</button>` : "";
      card = `<div class="ebike-card" data-testid="ebike-card" data-found="true" data-status="${esc(b.status)}">
        <table>${rows.map(([k, v]) => `<tr><th>${esc(t(k))}</th><td>${esc(v || "–")}</td></tr>`).join("")}</table>
        ${reports ? `<ol class="muted">${reports}</ol>` : ""}${recover}</div>`;
    }
    return card;
  }

  registerHtml() {
    const officer = this.me.role === "station_officer";
    const stations = officer ? [this.me.scope] : this.hooks.stations();
    const options = stations.map((s) => `<option value="${esc(s)}">${esc(this.hooks.stationLabel(s))}</option>`).join("");
    const field = (name, max, extra = "") => `<label><span>${esc(t(`ebike.${name}`))}</span>
      <input name="${name}" maxlength="${max}" autocomplete="off" data-testid="ebike-reg-${name}" ${extra}></label>`;
    return `<details data-testid="ebike-register-box"><summary>${esc(t("ebike.register"))}</summary>
      <form data-form="register" class="ebike-form grid">
        ${field("tag", 64, 'required minlength="4"')}${field("make", 64)}${field("colour", 32)}
        ${field("contact", 120, `title="${esc(t("ebike.contact_hint"))}"`)}
        <label><span>${esc(t("ebike.station"))}</span>
          <select name="station" data-testid="ebike-reg-station" ${officer ? "disabled" : ""}>${options}</select></label>
        <p class="muted">${esc(t("ebike.minimal"))}</p>
        <button type="submit" data-testid="ebike-register">${esc(t("ebike.register"))}</button>
      </form></details>`;
  }

  theftHtml() {
    return `<details data-testid="ebike-theft-box"><summary>${esc(t("ebike.report_theft"))}</summary>
      <form data-form="theft" class="ebike-form grid">
        <label><span>${esc(t("ebike.tag"))}</span>
          <input name="tag" required minlength="4" maxlength="64" autocomplete="off" data-testid="ebike-theft-tag"></label>
        <label><span>${esc(t("ebike.occurred_at"))}</span>
          <input name="occurred_at" type="datetime-local" required value="${cityNow(this.hooks.timeZone())}"
            data-testid="ebike-theft-time"></label>
        <label><span>${esc(t("ebike.lon"))}</span>
          <input name="lon" type="number" step="any" data-testid="ebike-theft-lon"></label>
        <label><span>${esc(t("ebike.lat"))}</span>
          <input name="lat" type="number" step="any" data-testid="ebike-theft-lat"></label>
        <button type="button" data-act="pick">${esc(t("ebike.pick"))}</button>
        <label class="wide"><span>${esc(t("ebike.note"))}</span>
          <input name="note" maxlength="500" autocomplete="off"></label>
        <p class="muted">${esc(t("ebike.hotlist_hint"))}</p>
        <button type="submit" data-testid="ebike-report">${esc(t("ebike.report_theft"))}</button>
      </form></details>`;
  }

  listsHtml() {
    const thefts = this.thefts.features.slice(0, SHOWN).map((f) => {
      const p = f.properties;
      return `<li data-testid="ebike-theft" data-id="${esc(p.id)}" data-source="${esc(p.source)}"
        data-items="${esc(itemsLabel(p.items))}" data-station="${esc(p.station ?? "")}"
        data-lon="${f.geometry.coordinates[0]}" data-lat="${f.geometry.coordinates[1]}">${this.theftText(p)}</li>`;
    }).join("");
    const hits = [...this.hits.values()].sort((x, y) => y.id - x.id).slice(0, SHOWN).map((h) => `
      <li data-testid="ebike-hit" data-id="${h.id}" data-on-map="${Boolean(h.marker && this.hitLayer.hasLayer(h.marker))}"
        data-sensor="${esc(h.sensor_id)}">${this.hitText(h)}</li>`).join("");
    const none = `<li class="muted">${esc(t("ebike.none"))}</li>`;
    return `<h3>${esc(t("ebike.recent_thefts"))}
        <span class="muted" data-testid="ebike-thefts-on-map">${this.theftLayer.getLayers().length}</span></h3>
      <ol class="ebike-list" data-testid="ebike-thefts">${thefts || none}</ol>
      <h3>${esc(t("ebike.hits"))}</h3>
      <ol class="ebike-list" data-testid="ebike-hits">${hits || none}</ol>`;
  }

  statsNote() {
    const s = this.stats;
    if (!s) return t("ebike.stats_unavailable");
    const vars = { total: s.total, with_hour: s.with_hour, no_hour: s.no_hour };
    const note = t("ebike.stats_note", vars);
    if (s.on_the_hour == null) return note;
    return `${note} ${t("ebike.on_the_hour", { pct: Math.round(100 * s.on_the_hour) })}`;
  }

  drawCharts() {
    const s = this.stats;
    const hour = this.pane.querySelector("[data-testid=ebike-chart-hour]");
    const area = this.pane.querySelector("[data-testid=ebike-chart-area]");
    if (!s) { hour.replaceChildren(); area.replaceChildren(); return; }
    barChart(hour, s.by_hour.map((_, h) => String(h)), [
      { name: t("ebike.thefts"), cls: "bar-a", values: s.by_hour },
    ], { title: t("ebike.chart_hour"), height: 110 });
    const top = s.by_area.slice(0, TOP_AREAS);
    barChart(area, top.map((a) => this.hooks.stationLabel(a.area)), [
      { name: t("ebike.thefts"), cls: "bar-a", values: top.map((a) => a.total) },
    ], { title: t("ebike.chart_area"), height: 110 });
    hour.dataset.values = s.by_hour.join(",");
    area.dataset.values = top.map((a) => `${a.area}:${a.total}`).join(",");
  }

  // ------------------------------------------------------------------ actions
  async onSubmit(form) {
    const data = Object.fromEntries(new FormData(form));
    const blank = (v) => (v === undefined || v === "" ? null : v);
    try {
      if (form.dataset.form === "lookup") {
        await this.lookup(data.tag);
      } else if (form.dataset.form === "register") {
        const station = this.me.role === "station_officer" ? this.me.scope : data.station;
        this.bike = await api("/api/v1/ebikes", { method: "POST", json: {
          tag: data.tag, make: blank(data.make), colour: blank(data.colour),
          contact: blank(data.contact), station,
        } });
        this.bike.theft_reports = [];
        this.bike.tag = data.tag;
        form.reset();
        this.hooks.toast(t("ebike.registered", { hint: this.bike.tag_hint }));
      } else if (form.dataset.form === "theft") {
        const located = blank(data.lon) !== null && blank(data.lat) !== null;
        await api("/api/v1/ebikes/thefts", { method: "POST", json: {
          tag: data.tag, occurred_at: cityTimeToIso(data.occurred_at, this.hooks.timeZone()),
          lon: located ? Number(data.lon) : null, lat: located ? Number(data.lat) : null,
          note: blank(data.note),
        } });
        form.reset();
        this.hooks.toast(t("ebike.reported"));
        await Promise.all([this.lookup(data.tag), this.loadThefts(), this.loadStats()]);
      }
    } catch (err) {
      this.hooks.toast(this.hooks.errorText(err), true);
    }
    this.render();
  }

  async lookup(tag) {
    try {
      this.bike = await api("/api/v1/ebikes/lookup", { method: "POST", json: { tag } });
      this.bike.tag = tag;
    } catch (err) {
      if (err.status !== 404) throw err;
      this.bike = { missing: true };
    }
  }

  async onClick(e) {
    const act = e.target.closest("button")?.dataset.act;
    if (act === "pick") {
      const form = e.target.closest("form");
      this.hooks.toast(t("ebike.pick_hint"));
      this.cityMap.map.once("click", (ev) => {
        form.elements.lon.value = ev.latlng.lng.toFixed(6);
        form.elements.lat.value = ev.latlng.lat.toFixed(6);
      });
    } else if (act === "recover" && this.bike?.tag) {
      try {
        await api("/api/v1/ebikes/recover", { method: "POST", json: { tag: this.bike.tag } });
        this.hooks.toast(t("ebike.recovered"));
        await Promise.all([this.lookup(this.bike.tag), this.loadThefts()]);
      } catch (err) {
        this.hooks.toast(this.hooks.errorText(err), true);
      }
      this.render();
    } else {
      const li = e.target.closest("li[data-testid=ebike-theft]");
      if (li) this.cityMap.map.setView([Number(li.dataset.lat), Number(li.dataset.lon)], Math.max(this.cityMap.map.getZoom(), 15));
    }
  }
}
