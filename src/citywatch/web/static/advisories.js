// Near-repeat advisories and the forecast risk layer.
//
// Advisories: a circle of the near-repeat window (radius = distance) around each new burglary,
// robbery or theft of an enabled category, with its evidence (the city's own Knox table, the
// p-value, the date range) on click.  Only significant bands (p <= 0.05 and Knox ratio > 1)
// produce windows, and the panel says so.  Forecast: the latest forecast's riskiest cells, with
// the predictor, the period and its backtest hit rate / PAI.
/* global L */
import { api } from "./api.js";
import { fmtDateTime, fmtNumber, fmtPercent, t } from "./i18n.js";

const CATEGORY_COLOURS = { burglary: "#ff6b6b", robbery: "#f59e0b", theft: "#38bdf8" };
// Rank bands of the forecast layer: share of the cells, colour.
const RISK_BANDS = [[0.01, "#b30000"], [0.05, "#e34a33"], [0.10, "#fc8d59"], [0.20, "#fdcc8a"]];
const FORECAST_COVERAGE = 0.1; // the backtest row shown: 10 % of the area

const st = {
  map: null,
  me: null,
  control: null,
  box: null,
  advisories: null,
  forecast: null,
  svg: null,
  items: new Map(),
  settings: null,
  forecastDoc: null,
  showAdvisories: true,
  showForecast: false,
};

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

const categoryLabel = (c) => t(`advisory.category.${c}`);

/** Start the layers on the city map (a CityMap); the dashboard works without them. */
export async function initAdvisories(cityMap, me) {
  if (me.role === "unit_device" || st.map) return;
  st.map = cityMap.map;
  st.me = me;
  st.svg = L.svg(); // few circles, clickable DOM elements (the map itself draws on canvas)
  st.advisories = L.layerGroup().addTo(st.map);
  st.forecast = L.layerGroup();
  const Box = L.Control.extend({
    onAdd: () => {
      const div = L.DomUtil.create("div", "advisory-box leaflet-bar");
      div.dataset.testid = "advisory-box";
      L.DomEvent.disableClickPropagation(div);
      div.addEventListener("change", onToggle);
      return div;
    },
  });
  st.control = new Box({ position: "bottomleft" });
  st.control.addTo(st.map);
  st.box = st.control.getContainer();
  await reloadAdvisories();
  await loadForecast();
}

async function reloadAdvisories() {
  try {
    const layer = await api("/api/v1/advisories/layer");
    st.settings = layer.settings;
    st.items.clear();
    st.advisories.clearLayers();
    for (const f of layer.features) {
      addAdvisory({ ...f.properties, lon: f.geometry.coordinates[0], lat: f.geometry.coordinates[1] });
    }
  } catch (e) {
    console.warn("advisories unavailable", e);
  }
  renderAdvisories();
}

async function loadForecast() {
  try {
    st.forecastDoc = await api("/api/v1/forecast/layer?top=5000");
  } catch (e) {
    st.forecastDoc = null; // none published: the panel says so
  }
  drawForecast();
  renderAdvisories();
}

function addAdvisory(a) {
  if (st.items.has(a.id)) return;
  const colour = CATEGORY_COLOURS[a.category] || "#e5e7eb";
  // a same-location window (0 m) is drawn as a small ring around the address
  const circle = L.circle([a.lat, a.lon], {
    renderer: st.svg, className: "advisory-circle", radius: Math.max(a.radius_m, 15),
    color: colour, weight: 2, dashArray: "5 4",
    fillColor: colour, fillOpacity: 0.12,
  });
  circle.bindTooltip(() => advisoryTitle(a));
  circle.on("click", () => openEvidence(a, circle));
  circle.addTo(st.advisories);
  st.items.set(a.id, { advisory: a, circle });
}

function advisoryTitle(a) {
  return t("advisory.title", {
    category: categoryLabel(a.category), metres: fmtNumber(a.radius_m, 0), days: a.days,
  });
}

/** A live advisory from the event stream (already scoped by the server to the station). */
export function onAdvisoryEvent(ev) {
  if (!st.map || ev.type !== "advisory.created") return;
  // an event too large for PostgreSQL's NOTIFY arrives without its data: read the layer again
  if (!ev.data || !ev.data.id) { reloadAdvisories(); return; }
  addAdvisory(ev.data);
  renderAdvisories();
}

async function openEvidence(a, circle) {
  let doc;
  try {
    doc = await api(`/api/v1/advisories/${encodeURIComponent(a.id)}`);
  } catch (e) {
    circle.bindPopup(esc(e.message)).openPopup();
    return;
  }
  circle.bindPopup(evidenceHtml(doc), { maxWidth: 640, className: "advisory-popup" }).openPopup();
}

function evidenceHtml(doc) {
  const ev = doc.evidence || {};
  const table = ev.table || {};
  const w = ev.window || {};
  const nRows = (table.rows || []).length, nCols = (table.columns || []).length;
  const rows = (table.rows || []).map((label, r) => `<tr><th>${esc(label)}</th>${
    (table.columns || []).map((_, c) => {
      const ratio = table.knox_ratio[r][c], p = table.p_value[r][c];
      // the "more than" row and column never make a window, whatever their p-value
      const sig = r < nRows - 1 && c < nCols - 1 && p <= 0.05 && ratio > 1;
      return `<td class="${sig ? "sig" : ""}">${ratio === null ? "–" : fmtNumber(ratio, 2)}<br><small>p=${fmtNumber(p, 3)}</small></td>`;
    }).join("")}</tr>`).join("");
  const kind = doc.kind === "repeat" ? t("advisory.kind_repeat") : t("advisory.kind_near");
  return `<div data-testid="advisory-evidence">
    <h3>${esc(advisoryTitle(doc))}</h3>
    <p>${esc(kind)} · ${esc(t("advisory.p_ratio", { p: fmtNumber(w.p_value, 3), ratio: fmtNumber(w.ratio, 2) }))}</p>
    <p>${esc(t("advisory.expires", { at: fmtDateTime(doc.expires_at) }))} · ${esc(t("advisory.linked", { n: doc.linked.length }))}</p>
    <p class="muted">${esc(t("advisory.evidence", {
      category: categoryLabel(ev.category), events: ev.events, from: ev.first_day, to: ev.last_day,
      iterations: table.iterations, at: fmtDateTime(ev.computed_at),
    }))}</p>
    <table class="knox"><thead><tr><th></th>${(table.columns || []).map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead>
      <tbody>${rows}</tbody></table>
    <p class="muted">${esc(t("advisory.rule"))}</p></div>`;
}

function drawForecast() {
  st.forecast.clearLayers();
  const doc = st.forecastDoc;
  if (!doc) return;
  const cells = doc.cells || doc.features.length;
  L.geoJSON(doc, {
    interactive: false,
    filter: (f) => f.properties.rank <= RISK_BANDS[RISK_BANDS.length - 1][0] * cells,
    style: (f) => {
      const share = f.properties.rank / cells;
      const band = RISK_BANDS.find(([limit]) => share <= limit);
      return { color: band[1], weight: 0.5, fillColor: band[1], fillOpacity: 0.45 };
    },
  }).addTo(st.forecast);
}

function onToggle(event) {
  const box = event.target.closest("input");
  if (!box) return;
  if (box.name === "advisories") {
    st.showAdvisories = box.checked;
    if (box.checked) st.advisories.addTo(st.map); else st.advisories.remove();
  } else if (box.name === "forecast") {
    st.showForecast = box.checked;
    if (box.checked) st.forecast.addTo(st.map); else st.forecast.remove();
  }
}

function forecastText() {
  const doc = st.forecastDoc;
  if (!doc) return `<div class="muted">${esc(t("forecast.none"))}</div>`;
  const f = doc.forecast || {};
  const lines = [t("forecast.period", {
    predictor: t(`forecast.predictor.${f.predictor}`), from: fmtDateTime(f.origin), to: fmtDateTime(f.until),
  })];
  const row = f.backtest && f.backtest.rows.find(
    (r) => r.predictor === f.predictor && Math.abs(r.coverage - FORECAST_COVERAGE) < 1e-9);
  if (row) {
    const base = f.backtest.rows.find(
      (r) => r.predictor === "naive" && Math.abs(r.coverage - FORECAST_COVERAGE) < 1e-9);
    lines.push(t("forecast.backtest", {
      share: fmtPercent(FORECAST_COVERAGE), hit: fmtPercent(row.hit_rate.mean),
      low: fmtPercent(row.hit_rate.low), high: fmtPercent(row.hit_rate.high),
      pai: fmtNumber(row.pai.mean, 1), naive: base ? fmtPercent(base.hit_rate.mean) : "–",
      periods: f.backtest.periods,
    }));
  } else {
    lines.push(t("forecast.no_backtest"));
  }
  return lines.map((l) => `<div class="muted">${esc(l)}</div>`).join("");
}

/** (Re)draw the panel in the current language. */
export function renderAdvisories() {
  if (!st.box) return;
  const s = st.settings;
  const enabled = s ? s.categories.map(categoryLabel).join(" · ") : "";
  const status = !s ? "" : s.categories.length
    ? t("advisory.enabled", { categories: enabled })
    : t("advisory.off");
  st.box.innerHTML = `
    <label><input type="checkbox" name="advisories" data-testid="advisory-toggle" ${st.showAdvisories ? "checked" : ""}>
      ${esc(t("advisory.layer"))} <span class="count" data-testid="advisory-count">${st.items.size}</span></label>
    <div class="muted">${esc(status)}</div>
    <div class="muted">${esc(t("advisory.rule"))}</div>
    <label><input type="checkbox" name="forecast" data-testid="forecast-toggle" ${st.showForecast ? "checked" : ""}>
      ${esc(t("forecast.layer"))}</label>
    ${forecastText()}`;
}
