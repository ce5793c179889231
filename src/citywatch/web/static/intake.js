// Call intake: a keyboard-first form (N) to take a call; category search in Chinese and English,
// location by address or cross streets (the pack's own street names, GET /geocode), by "lat, lon"
// or a map click; as soon as the location is known the possible duplicates, the premise history,
// the caution notes there and the recommendation (GET /intake/check, /intake/recommend) appear.
// Also: incident numbers and age timers in the queue; number, callers, notes, merges and
// cautions in the incident detail; a P1 alert (sound and banner) when a priority-1 call arrives.
//
// app.js calls installIntake() once the map exists and intakeEvent() for every stream event;
// everything else hangs off the DOM that app.js renders (queue items, detail body).
import { api } from "./api.js";
import { fmtDateTime, fmtDuration, fmtTime, getLang, t, translatePage } from "./i18n.js";

const $ = (id) => document.getElementById(id);
// Queue items older than this (seconds) are marked, by priority (P1 .. P5).
const AGE_WARN_S = [120, 300, 900, 1800, 3600];
const GEOCODE_DELAY_MS = 200;
// The form keeps this far (px) from the map's edges and its top-left controls, and goes below
// those controls when the map leaves it less than FORM_MIN_WIDTH_PX beside them.
const FORM_GAP_PX = 8;
const FORM_MIN_WIDTH_PX = 320;
// A caution's Revoke asks for a second click within this time (a stray click revokes nothing).
const REVOKE_ARM_MS = 5000;

let ctx = null;
let config = null;
const form = {
  category: null, priority: null, location: null, locationText: "", candidates: [], active: 0,
  catMatches: [], catActive: 0, check: null, rec: null, marker: null, timer: null,
  // Answers that arrive late are dropped, each kind by its own counter: typing an address
  // must not throw away the checks of the location already chosen, nor the reverse.
  geoSeq: 0, checkSeq: 0,
};

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

const catLabel = (c) => (c ? (getLang() === "zh" ? c.zh : c.en) : "");
const incLabel = (i) => (i.category_label && i.category_label[getLang()]) || i.category;
const metres = (m) => `${Math.round(m)} m`;

/** Install the intake form, the queue and detail decorations and the P1 alert. */
export async function installIntake(context) {
  if (ctx) return;
  ctx = context;
  try {
    config = await api("/api/v1/intake/config");
  } catch (e) {
    console.warn("intake unavailable", e);
    return;
  }
  buildAlert();
  if (ctx.canWrite()) buildForm();
  new MutationObserver(decorateQueue).observe($("queue"), { childList: true });
  new MutationObserver(decorateDetail).observe($("detail-body"), { childList: true });
  new MutationObserver(relabel).observe(document.documentElement, {
    attributes: true, attributeFilter: ["lang"],
  });
  setInterval(tickAges, 1000);
  document.addEventListener("keydown", onGlobalKey);
  ctx.state.map.map.on("click", onMapClick);
  decorateQueue();
}

/** Every stream event: a new priority-1 call raises the alert; a caution created or revoked
 *  (here or on another dashboard) refreshes the form's and the detail's lists of cautions. */
export function intakeEvent(ev) {
  if (!ctx || !config) return;
  if (ev.type === "incident.created" && ev.data && ev.data.priority === 1) p1Alert(ev.data);
  if ((ev.type === "caution.created" || ev.type === "caution.revoked") && ev.data) cautionChanged(ev.data);
}

function cautionChanged(c) {
  // Whether to ask the server again (it decides what a caution covers): Leaflet's distance.
  const covers = (lon, lat) => lon != null && lat != null && L.latLng(lat, lon).distanceTo([c.lat, c.lon]) <= c.radius_m;
  const listed = (list) => (list || []).some((x) => x.id === c.id);
  const panel = $("intake");
  if (panel && !panel.hidden && form.location && form.check && !form.check.error
      && (listed(form.check.cautions) || covers(form.location.lon, form.location.lat))) refreshChecks();
  const d = ctx.state.detail;
  if (d && (listed(d.cautions) || covers(d.lon, d.lat))) ctx.reloadDetail();
}

// ------------------------------------------------------------------ cautions
/** One caution as listed in the form or the detail, with **Revoke** for whom the server lets
 *  revoke it (``may_revoke``: a writing role in the caution's scope). */
function cautionItem(x, testid) {
  const revoke = ctx.canWrite() && x.may_revoke
    ? ` <button type="button" class="link caution-revoke" data-revoke="${esc(x.id)}" data-testid="caution-revoke">${esc(t("caution.revoke"))}</button>`
    : "";
  return `<div class="intake-caution sev-${esc(x.severity)}" data-testid="${testid}" data-caution="${esc(x.id)}">
      ⚠ <b>${esc(t(`caution.kind.${x.kind}`))}</b> · ${esc(t(`caution.severity.${x.severity}`))}: ${esc(x.text)}
      ${x.expires_at ? `<span class="muted">(${esc(t("caution.until"))} ${esc(fmtDateTime(x.expires_at))})</span>` : ""}${revoke}</div>`;
}

/** Wire the Revoke buttons of ``box``: the first click arms, a second within REVOKE_ARM_MS
 *  revokes (POST /cautions/{id}/revoke, audited by the server), then ``done()``. */
function wireRevoke(box, done) {
  for (const b of box.querySelectorAll("[data-revoke]")) {
    b.addEventListener("click", async () => {
      if (!b.dataset.armed) {
        b.dataset.armed = "1";
        b.textContent = t("caution.revoke_confirm");
        setTimeout(() => {
          if (b.isConnected && !b.disabled) { delete b.dataset.armed; b.textContent = t("caution.revoke"); }
        }, REVOKE_ARM_MS);
        return;
      }
      b.disabled = true;
      try {
        await api(`/api/v1/cautions/${encodeURIComponent(b.dataset.revoke)}/revoke`, { method: "POST" });
      } catch (e) {
        ctx.toast(ctx.errorText(e), true);
        b.disabled = false;
        return;
      }
      ctx.toast(t("caution.revoked"));
      await done();
    });
  }
}

// ------------------------------------------------------------------ the form
function buildForm() {
  const button = document.createElement("button");
  button.type = "button";
  button.id = "intake-open";
  button.dataset.testid = "intake-open";
  button.className = "primary";  // labelled by relabel(): its text adds the shortcut
  button.addEventListener("click", () => openForm());
  $("topbar").insertBefore(button, $("topbar").querySelector(".spacer"));

  const panel = document.createElement("section");
  panel.id = "intake";
  panel.className = "panel";
  panel.hidden = true;
  panel.dataset.testid = "intake";
  panel.setAttribute("aria-labelledby", "intake-title");
  panel.innerHTML = `
    <button type="button" class="close" id="intake-close" data-i18n-title="intake.close">×</button>
    <h2 id="intake-title" data-i18n="intake.title"></h2>
    <label><span data-i18n="intake.category"></span>
      <input id="intake-cat" data-testid="intake-category" autocomplete="off" role="combobox"
        aria-controls="intake-cat-list" aria-expanded="false" data-i18n-placeholder="intake.category_hint"></label>
    <ul id="intake-cat-list" class="intake-list" role="listbox" data-testid="intake-category-list"></ul>
    <label><span data-i18n="intake.priority"></span>
      <select id="intake-prio" data-testid="intake-priority">
        ${[1, 2, 3, 4, 5].map((p) => `<option value="${p}">P${p}</option>`).join("")}
      </select></label>
    <label><span data-i18n="intake.location"></span>
      <input id="intake-loc" data-testid="intake-location" autocomplete="off"
        data-i18n-placeholder="${config.has_names ? "intake.location_hint" : "intake.location_hint_nonames"}"></label>
    <p id="intake-noname" class="muted" data-testid="intake-no-names" ${config.has_names ? "hidden" : ""}
      data-i18n="intake.no_names"></p>
    <ul id="intake-loc-list" class="intake-list" role="listbox" data-testid="intake-location-list"></ul>
    <div id="intake-where" class="muted" data-testid="intake-where"></div>
    <label><span data-i18n="intake.notes"></span>
      <textarea id="intake-notes" rows="2" data-testid="intake-notes"></textarea></label>
    <div id="intake-checks" data-testid="intake-checks"></div>
    <div id="intake-rec" data-testid="intake-rec"></div>
    <p id="intake-error" class="error" role="alert" data-testid="intake-error"></p>
    <div class="actions">
      <button type="button" id="intake-submit" class="primary" data-testid="intake-submit"></button>
      <button type="button" id="intake-cancel" data-testid="intake-cancel"></button>
    </div>`;
  $("map-pane").appendChild(panel);
  // The zoom buttons and the layer control stay usable: the form is placed beside them (or
  // below them on a narrow map) whenever it opens, the window resizes or the controls change
  // size (language, layers added).
  const corner = ctx.state.map.map.getContainer().querySelector(".leaflet-top.leaflet-left");
  if (corner && window.ResizeObserver) new ResizeObserver(placeForm).observe(corner);
  window.addEventListener("resize", placeForm);
  $("intake-close").addEventListener("click", closeForm);
  $("intake-cancel").addEventListener("click", closeForm);
  $("intake-submit").addEventListener("click", () => submit(null));
  $("intake-cat").addEventListener("input", () => searchCategory($("intake-cat").value));
  $("intake-cat").addEventListener("keydown", onCategoryKey);
  $("intake-prio").addEventListener("change", () => {
    form.priority = Number($("intake-prio").value);
    refreshChecks();
  });
  $("intake-loc").addEventListener("input", () => {
    clearTimeout(form.timer);
    form.timer = setTimeout(() => geocode($("intake-loc").value), GEOCODE_DELAY_MS);
  });
  $("intake-loc").addEventListener("keydown", onLocationKey);
  panel.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { e.preventDefault(); closeForm(); }
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(null); }
  });
  relabel();
}

function relabel() {
  if (!config) return;
  const panel = $("intake");
  if (panel) {
    translatePage(panel);
    for (const el of panel.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
    $("intake-submit").textContent = `${t("intake.submit")} (Ctrl+Enter)`;
    $("intake-cancel").textContent = `${t("intake.cancel")} (Esc)`;
    if (form.category) $("intake-cat").value = catLabel(form.category);
    renderWhere();
    renderChecks();
    renderRec();
  }
  const open = $("intake-open");
  if (open) { open.textContent = `${t("intake.open")} (N)`; open.title = t("intake.open_tooltip"); }
  decorateQueue(true);
}

/** Place the open form on the map beside its top-left controls, never over them. */
function placeForm() {
  const panel = $("intake");
  if (!panel || panel.hidden) return;
  const pane = $("map-pane").getBoundingClientRect();
  const corner = ctx.state.map.map.getContainer().querySelector(".leaflet-top.leaflet-left");
  const boxes = corner ? [...corner.children].map((c) => c.getBoundingClientRect()) : [];
  const right = Math.max(0, ...boxes.map((b) => b.right - pane.left));
  const bottom = Math.max(0, ...boxes.map((b) => b.bottom - pane.top));
  const beside = pane.width - right - 2 * FORM_GAP_PX;
  const [left, top] = beside >= FORM_MIN_WIDTH_PX
    ? [right + FORM_GAP_PX, FORM_GAP_PX] : [FORM_GAP_PX, bottom + FORM_GAP_PX];
  Object.assign(panel.style, {
    left: `${left}px`,
    top: `${top}px`,
    maxWidth: `${Math.max(pane.width - left - FORM_GAP_PX, 0)}px`,
    maxHeight: `${Math.max(pane.height - top - FORM_GAP_PX, 0)}px`,
  });
}

function openForm() {
  const panel = $("intake");
  if (!panel) return;
  panel.hidden = false;
  placeForm();
  $("intake-cat").focus();
  $("intake-cat").select();
}

function closeForm() {
  const panel = $("intake");
  if (!panel) return;
  panel.hidden = true;
  Object.assign(form, {
    category: null, priority: null, location: null, locationText: "", candidates: [], active: 0,
    catMatches: [], catActive: 0, check: null, rec: null,
  });
  form.geoSeq += 1;
  form.checkSeq += 1;
  if (form.marker) { form.marker.remove(); form.marker = null; }
  for (const id of ["intake-cat", "intake-loc", "intake-notes"]) $(id).value = "";
  for (const id of ["intake-cat-list", "intake-loc-list", "intake-checks", "intake-rec", "intake-where"]) $(id).innerHTML = "";
  $("intake-error").textContent = "";
}

function onGlobalKey(e) {
  if (e.target.closest("input, textarea, select") || e.ctrlKey || e.metaKey || e.altKey) return;
  if (!$("login").hidden || !$("intake")) return;
  if (e.key.toLowerCase() === "n") { e.preventDefault(); openForm(); }
}

// ------------------------------------------------------------------ category search
function searchCategory(text) {
  const q = text.trim().toLowerCase();
  const all = config.categories;
  form.catMatches = (q ? all.filter((c) => c.code.includes(q) || c.en.toLowerCase().includes(q) || c.zh.includes(q)) : all)
    .slice()
    .sort((a, b) => rankCat(a, q) - rankCat(b, q) || a.priority - b.priority)
    .slice(0, 8);
  form.catActive = 0;
  renderCategoryList();
}

function rankCat(c, q) {
  if (!q) return 0;
  const label = catLabel(c).toLowerCase();
  return label.startsWith(q) || c.zh.startsWith(q) || c.en.toLowerCase().startsWith(q) ? 0 : 1;
}

function renderCategoryList() {
  const ul = $("intake-cat-list");
  $("intake-cat").setAttribute("aria-expanded", String(form.catMatches.length > 0));
  ul.innerHTML = form.catMatches.map((c, i) => `<li role="option" data-code="${esc(c.code)}"
      data-testid="intake-category-option" aria-selected="${i === form.catActive}" class="${i === form.catActive ? "active" : ""}">
      <span class="prio prio-${c.priority}">P${c.priority}</span> ${esc(catLabel(c))}
      <span class="muted">${esc(getLang() === "zh" ? c.en : c.zh)}</span></li>`).join("");
  for (const li of ul.querySelectorAll("li")) {
    li.addEventListener("mousedown", (e) => { e.preventDefault(); chooseCategory(li.dataset.code); });
  }
}

function onCategoryKey(e) {
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    if (!form.catMatches.length) searchCategory($("intake-cat").value);
    const n = form.catMatches.length;
    if (!n) return;
    form.catActive = (form.catActive + (e.key === "ArrowDown" ? 1 : -1) + n) % n;
    renderCategoryList();
  } else if (e.key === "Enter" && !e.ctrlKey && !e.metaKey) {
    e.preventDefault();
    const c = form.catMatches[form.catActive];
    if (c) chooseCategory(c.code);
  }
}

function chooseCategory(code) {
  const c = config.categories.find((x) => x.code === code);
  if (!c) return;
  form.category = c;
  form.priority = c.priority;
  $("intake-cat").value = catLabel(c);
  $("intake-prio").value = String(c.priority);
  form.catMatches = [];
  renderCategoryList();
  $("intake-loc").focus();
  refreshChecks();
}

// ------------------------------------------------------------------ location
async function geocode(text) {
  const q = text.trim();
  const seq = ++form.geoSeq;
  if (!q) { form.candidates = []; renderCandidates(); return; }
  let out;
  try {
    out = await api(`/api/v1/geocode?q=${encodeURIComponent(q)}&limit=6`);
  } catch (e) {
    if (seq !== form.geoSeq) return;
    form.candidates = [];
    $("intake-error").textContent = ctx.errorText(e);
    renderCandidates();
    return;
  }
  if (seq !== form.geoSeq) return;
  $("intake-error").textContent = "";
  form.candidates = out.candidates;
  form.active = 0;
  renderCandidates(q);
}

function renderCandidates(q = "") {
  const ul = $("intake-loc-list");
  if (!form.candidates.length) {
    ul.innerHTML = q ? `<li class="muted" data-testid="intake-no-match">${esc(t(config.has_names ? "intake.no_match" : "intake.no_names_short"))}</li>` : "";
    return;
  }
  ul.innerHTML = form.candidates.map((c, i) => `<li role="option" data-i="${i}" data-testid="intake-location-option"
      aria-selected="${i === form.active}" class="${i === form.active ? "active" : ""}">
      ${esc(c.label)} <span class="muted">${esc(t(`intake.kind.${c.kind}`))} · ${Math.round(c.score * 100)}%</span></li>`).join("");
  for (const li of ul.querySelectorAll("li[data-i]")) {
    li.addEventListener("mousedown", (e) => { e.preventDefault(); chooseCandidate(Number(li.dataset.i)); });
  }
}

function onLocationKey(e) {
  const n = form.candidates.length;
  if ((e.key === "ArrowDown" || e.key === "ArrowUp") && n) {
    e.preventDefault();
    form.active = (form.active + (e.key === "ArrowDown" ? 1 : -1) + n) % n;
    renderCandidates();
  } else if (e.key === "Enter" && !e.ctrlKey && !e.metaKey) {
    e.preventDefault();
    clearTimeout(form.timer);
    if (n) chooseCandidate(form.active);
    else geocode($("intake-loc").value).then(() => { if (form.candidates.length) chooseCandidate(0); });
  }
}

function chooseCandidate(i) {
  const c = form.candidates[i];
  if (!c) return;
  setLocation(c.lon, c.lat, c.label, $("intake-loc").value.trim());
  form.candidates = [];
  renderCandidates();
  $("intake-notes").focus();
}

function onMapClick(e) {
  const panel = $("intake");
  if (!panel || panel.hidden) return;
  const { lat, lng } = e.latlng;
  const label = `${lat.toFixed(6)}, ${lng.toFixed(6)}`;
  $("intake-loc").value = label;
  setLocation(lng, lat, label, "");
}

function setLocation(lon, lat, label, typed) {
  form.geoSeq += 1;  // a lookup still on its way must not list candidates again
  clearTimeout(form.timer);
  form.location = { lon: Number(lon.toFixed(7)), lat: Number(lat.toFixed(7)), label };
  form.locationText = typed || label;
  const L = window.L;
  if (form.marker) form.marker.remove();
  form.marker = L.circleMarker([lat, lon], {
    radius: 9, color: "#fff", weight: 2, fillColor: "#ff3b3b", fillOpacity: 0.9,
  }).addTo(ctx.state.map.map);
  ctx.state.map.map.panTo([lat, lon]);
  renderWhere();
  refreshChecks();
}

function renderWhere() {
  const w = form.location;
  const box = $("intake-where");
  if (!box) return;
  box.innerHTML = w ? `${esc(t("intake.located"))}: <b data-testid="intake-located">${esc(w.label)}</b>
    <span class="muted">(${w.lat.toFixed(5)}, ${w.lon.toFixed(5)})</span>
    ${form.check && form.check.location.station ? ` · ${esc(ctx.stationLabel(form.check.location.station))}` : ""}` : "";
}

// ------------------------------------------------------------------ checks and recommendation
async function refreshChecks() {
  if (!form.location || !form.category) { renderChecks(); renderRec(); return; }
  const seq = ++form.checkSeq;
  const { lon, lat } = form.location;
  const q = `lon=${lon}&lat=${lat}&category=${encodeURIComponent(form.category.code)}`;
  const [check, rec] = await Promise.all([
    api(`/api/v1/intake/check?${q}`).catch((e) => ({ error: ctx.errorText(e) })),
    api(`/api/v1/intake/recommend?${q}&priority=${form.priority}&k=5`).catch((e) => ({ error: ctx.errorText(e) })),
  ]);
  if (seq !== form.checkSeq) return;
  form.check = check;
  form.rec = rec;
  renderWhere();
  renderChecks();
  renderRec();
}

function renderChecks() {
  const box = $("intake-checks");
  if (!box) return;
  const c = form.check;
  if (!c || !form.location) { box.innerHTML = ""; return; }
  if (c.error) { box.innerHTML = `<p class="error">${esc(c.error)}</p>`; return; }
  const cautions = c.cautions.map((x) => cautionItem(x, "intake-caution"));
  const dups = c.duplicates.incidents.map((d) => `<div class="intake-dup" data-testid="intake-duplicate" data-id="${esc(d.id)}">
      <b>${esc(t("intake.duplicate"))}</b>: <span data-testid="intake-duplicate-number">${esc(d.number || d.id)}</span>
      · ${esc(incLabel(d))} · ${esc(metres(d.distance_m))} · ${esc(t("intake.ago", { t: fmtDuration(Math.max(0, d.age_s)) }))}
      <button type="button" data-merge="${esc(d.id)}" data-testid="intake-merge">${esc(t("intake.merge", { number: d.number || d.id }))}</button></div>`);
  const p = c.premise;
  const history = p.incidents.slice(0, 5).map((h) => `<li>${esc(fmtDateTime(h.received_at))} · ${esc(h.category_label[getLang()] || h.category)}
      ${h.number ? `· ${esc(h.number)}` : ""} <span class="muted">${esc(metres(h.distance_m))}</span></li>`);
  box.innerHTML = `${cautions.join("")}${dups.join("")}
    <div class="intake-premise" data-testid="intake-premise" data-count="${p.count}">
      <b>${esc(t("intake.premise", { n: p.count, m: Math.round(p.radius_m), d: p.lookback_days }))}</b>
      ${history.length ? `<ul>${history.join("")}</ul>` : ""}</div>`;
  for (const b of box.querySelectorAll("[data-merge]")) b.addEventListener("click", () => submit(b.dataset.merge));
  wireRevoke(box, refreshChecks);
}

function renderRec() {
  const box = $("intake-rec");
  if (!box) return;
  const r = form.rec;
  if (!r || !form.location || !form.category) { box.innerHTML = ""; return; }
  if (r.error) { box.innerHTML = `<p class="error">${esc(r.error)}</p>`; return; }
  const team = new Set(r.team || []);
  const rows = r.candidates.map((c) => `<tr data-testid="intake-rec-unit" data-unit="${esc(c.unit_id)}">
      <td>${team.has(c.unit_id) ? "★" : c.rank}</td><td><b>${esc(c.unit_id)}</b> <span class="muted">${esc(t(`unit_type.${c.unit_type}`))}</span></td>
      <td>${esc(fmtDuration(c.eta_s))}</td><td>${esc((c.metres / 1000).toFixed(2))} km</td></tr>`);
  box.innerHTML = `<h3>${esc(t("intake.recommendation"))}</h3>
    <table><tbody>${rows.join("") || `<tr><td class="muted">${esc(t("detail.no_units"))}</td></tr>`}</tbody></table>`;
}

// ------------------------------------------------------------------ create and merge
async function submit(mergeInto) {
  $("intake-error").textContent = "";
  if (!form.category) { $("intake-error").textContent = t("intake.need_category"); $("intake-cat").focus(); return; }
  if (!form.location) { $("intake-error").textContent = t("intake.need_location"); $("intake-loc").focus(); return; }
  const body = {
    category: form.category.code,
    priority: form.priority,
    location: { lon: form.location.lon, lat: form.location.lat },
  };
  const notes = $("intake-notes").value.trim();
  if (notes) body.caller_notes = notes;
  if (form.locationText) body.location_text = form.locationText.slice(0, 200);
  let created;
  try {
    created = await api("/api/v1/incidents", { method: "POST", json: body });
  } catch (e) {
    $("intake-error").textContent = ctx.errorText(e);
    return;
  }
  let target = created.id;
  if (mergeInto) {
    try {
      const merged = await api(`/api/v1/incidents/${encodeURIComponent(mergeInto)}/merge`, {
        method: "POST", json: { duplicate_id: created.id },
      });
      target = mergeInto;
      ctx.toast(t("intake.merged", { dup: merged.replaced_number, kept: merged.kept_number }));
    } catch (e) {
      ctx.toast(ctx.errorText(e), true);
    }
  } else {
    ctx.toast(t("intake.created", { number: created.number }));
  }
  closeForm();
  if (!ctx.state.incidents.has(created.id)) ctx.state.incidents.set(created.id, created);
  await ctx.selectIncident(target);
}

// ------------------------------------------------------------------ queue: numbers and ages
function decorateQueue(force = false) {
  const ol = $("queue");
  if (!ol) return;
  for (const li of ol.querySelectorAll("li[data-id]")) {
    if (li.querySelector(".intake-age") && !force) continue;
    const inc = ctx.state.incidents.get(li.dataset.id);
    if (!inc) continue;
    li.querySelector(".intake-num")?.remove();
    li.querySelector(".intake-age")?.remove();
    const strong = li.querySelector("strong");
    if (inc.number && strong) {
      const num = document.createElement("span");
      num.className = "intake-num";
      num.dataset.testid = "queue-number";
      num.textContent = inc.number;
      strong.parentElement.insertBefore(num, strong);
    }
    const age = document.createElement("span");
    age.className = "intake-age";
    age.dataset.testid = "queue-age";
    age.title = t("intake.age_tooltip");
    li.insertBefore(age, li.querySelector(".status"));
  }
  tickAges();
}

function tickAges() {
  const now = Date.now();
  for (const span of document.querySelectorAll("#queue .intake-age")) {
    const li = span.closest("li");
    const inc = ctx.state.incidents.get(li.dataset.id);
    if (!inc) continue;
    const closed = ["cleared", "cancelled"].includes(inc.status);
    const age = (now - Date.parse(inc.received_at)) / 1000;
    span.textContent = closed ? "" : fmtDuration(Math.max(0, age));
    span.classList.toggle("old", !closed && age > AGE_WARN_S[(inc.priority || 5) - 1]);
  }
}

// ------------------------------------------------------------------ detail: console data
function decorateDetail() {
  const body = $("detail-body");
  const d = ctx.state.detail;
  if (!d || body.querySelector(".intake-extra") || !body.firstElementChild) return;
  const h2 = body.querySelector("h2");
  if (h2 && d.number) {
    const num = document.createElement("span");
    num.className = "intake-num";
    num.dataset.testid = "detail-number";
    num.textContent = d.number;
    h2.appendChild(num);
  }
  const extra = document.createElement("div");
  extra.className = "intake-extra";
  const write = ctx.canWrite();
  const cautions = (d.cautions || []).map((x) => cautionItem(x, "detail-caution"));
  const merges = (d.merges || []).map((m) => `<li data-testid="detail-merge" data-direction="${esc(m.direction)}">
      ${esc(t(`intake.merge_${m.direction.toLowerCase()}`, { number: m.number || m.incident_id }))} · ${esc(fmtTime(m.at))}</li>`);
  const callers = (d.callers || []).map((c) => `<li data-testid="detail-caller">${esc(fmtTime(c.received_at))} · ${esc(c.taken_by)}
      ${c.location_text ? `· ${esc(c.location_text)}` : ""}${c.notes ? `<br><span class="muted">${esc(c.notes)}</span>` : ""}</li>`);
  const notes = (d.notes || []).map((n) => `<li data-testid="detail-note">${esc(fmtTime(n.at))} · <b>${esc(n.author)}</b>: ${esc(n.text)}</li>`);
  extra.innerHTML = `
    ${d.location_text ? `<div class="muted">${esc(t("intake.location"))}: ${esc(d.location_text)}</div>` : ""}
    ${cautions.join("")}
    ${merges.length ? `<h3>${esc(t("intake.merges"))}</h3><ul>${merges.join("")}</ul>` : ""}
    <h3>${esc(t("intake.callers", { n: callers.length }))}</h3><ul>${callers.join("")}</ul>
    <h3>${esc(t("intake.notes_title"))}</h3><ul data-testid="detail-notes">${notes.join("") || `<li class="muted">${esc(t("detail.none"))}</li>`}</ul>
    ${write ? `<form class="intake-note-form"><input id="intake-note-text" data-testid="note-text" maxlength="2000"
        placeholder="${esc(t("intake.note_hint"))}"><button type="submit" data-testid="note-add">${esc(t("intake.note_add"))}</button></form>
      <details class="intake-caution-form"><summary>${esc(t("caution.add"))}</summary><form data-testid="caution-form">
        <select id="caution-kind">${config.caution_kinds.map((k) => `<option value="${esc(k)}">${esc(t(`caution.kind.${k}`))}</option>`).join("")}</select>
        <select id="caution-severity">${config.caution_severities.map((s) => `<option value="${esc(s)}" ${s === "high" ? "selected" : ""}>${esc(t(`caution.severity.${s}`))}</option>`).join("")}</select>
        <input id="caution-text" maxlength="2000" placeholder="${esc(t("caution.text"))}">
        <label>${esc(t("caution.days"))} <input id="caution-days" type="number" min="1" max="3650" value="30" style="width:5em"></label>
        <button type="submit" data-testid="caution-add">${esc(t("caution.save"))}</button></form></details>` : ""}`;
  const timeline = body.querySelector("[data-testid=timeline]");
  const anchor = timeline ? timeline.previousElementSibling : null;
  body.insertBefore(extra, anchor);
  wireRevoke(extra, () => ctx.reloadDetail());
  const noteForm = extra.querySelector(".intake-note-form");
  noteForm?.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("intake-note-text").value.trim();
    if (!text) return;
    try {
      await api(`/api/v1/incidents/${encodeURIComponent(d.id)}/notes`, { method: "POST", json: { text } });
      ctx.toast(t("intake.note_added"));
    } catch (err) { ctx.toast(ctx.errorText(err), true); }
  });
  extra.querySelector("[data-testid=caution-form]")?.addEventListener("submit", async (e) => {
    e.preventDefault();
    const days = Number($("caution-days").value) || 30;
    try {
      await api("/api/v1/cautions", {
        method: "POST",
        json: {
          location: { lon: d.lon, lat: d.lat }, kind: $("caution-kind").value,
          severity: $("caution-severity").value, text: $("caution-text").value.trim(),
          expires_at: new Date(Date.now() + days * 86400000).toISOString(),
        },
      });
      ctx.toast(t("caution.saved"));
      await ctx.reloadDetail();
    } catch (err) { ctx.toast(ctx.errorText(err), true); }
  });
}

// ------------------------------------------------------------------ P1 alert
function buildAlert() {
  const box = document.createElement("div");
  box.id = "p1-alert";
  box.hidden = true;
  box.setAttribute("role", "alert");
  box.dataset.testid = "p1-alert";
  document.body.appendChild(box);
}

function p1Alert(inc) {
  const box = $("p1-alert");
  box.hidden = false;
  box.dataset.id = inc.id;
  box.innerHTML = `<b>P1</b> ${esc(incLabel(inc))} · ${esc(inc.number || "")} · ${esc(ctx.stationLabel(inc.station))}
    <button type="button" data-testid="p1-open">${esc(t("intake.p1_open"))}</button>
    <button type="button" data-testid="p1-ack">${esc(t("intake.p1_ack"))}</button>`;
  box.querySelector("[data-testid=p1-open]").addEventListener("click", () => { box.hidden = true; ctx.selectIncident(inc.id); });
  box.querySelector("[data-testid=p1-ack]").addEventListener("click", () => { box.hidden = true; });
  beep();
}

function beep() {
  try {
    const Audio = window.AudioContext || window.webkitAudioContext;
    if (!Audio) return;
    const audio = beep.ctx || (beep.ctx = new Audio());
    for (const [at, freq] of [[0, 880], [0.25, 660], [0.5, 880]]) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.value = 0.15;
      osc.connect(gain).connect(audio.destination);
      osc.start(audio.currentTime + at);
      osc.stop(audio.currentTime + at + 0.18);
    }
  } catch (e) {
    console.warn("no sound", e);
  }
}
