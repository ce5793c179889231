// Unit roster board: every unit with status, time in status, station, type, shift, incident,
// out-of-service reason and status timer (warning / alert), welfare check-ins; and the live
// move-up suggestions (coverage rules and DMEXCLP) with one click to apply.
// The server is the clock: times in status run from the roster's "now", not the browser's.
import { api } from "./api.js";
import { fmtDuration, fmtTime, getLang, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const LEVEL_ORDER = { alert: 0, warning: 1, ok: 2 };

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

/** ``fn`` at most once per ``ms``, ``ms`` after the first call of a burst (a steady stream of
 *  events still refreshes: the wait is never pushed back). */
function throttle(fn, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; fn(); }, ms);
  };
}

/** Give the drop-down ``sel`` the options ``wanted`` (``[value, label]`` pairs, in order) by
 *  adding, removing, relabelling and moving options one by one, never rebuilding it: the
 *  selection, the focus and a list the user is choosing from survive every event.  A selected
 *  value no longer offered stays listed, last: the filter still applies until the user
 *  changes it. */
export function syncOptions(sel, wanted) {
  const current = sel.value;
  const list = wanted.slice();
  if (!list.some(([v]) => v === current)) {
    const old = [...sel.options].find((o) => o.value === current);
    list.push([current, old ? old.textContent : current]);
  }
  const byValue = new Map([...sel.options].map((o) => [o.value, o]));
  list.forEach(([value, label], i) => {
    let opt = byValue.get(value);
    if (opt) byValue.delete(value);
    else opt = new Option(label, value);
    if (opt.textContent !== label) opt.textContent = label;
    if (sel.options[i] !== opt) sel.insertBefore(opt, sel.options[i] || null);
  });
  for (const stale of byValue.values()) stale.remove();
  if (sel.value !== current) sel.value = current;
}

/** The roster board and the move-up panel; ``ctx`` lends the dashboard's helpers. */
export class Board {
  constructor(ctx) {
    this.ctx = ctx;  // { canWrite, stationLabel, unitTypeLabel, statusLabel, toast, errorText, onIncident }
    this.config = null;
    this.units = new Map();
    this.offsetMs = 0;  // server clock - browser clock
    this.filters = { status: "", unit_type: "", station: "" };
    this.moveup = null;
    this.reloadSoon = throttle(() => this.reload(), 500);
    this.suggestSoon = throttle(() => this.loadSuggestions(), 1500);
    this.ticker = null;
  }

  async start() {
    this.config = await api("/api/v1/board/config");
    for (const [key, id] of [["status", "status"], ["unit_type", "type"], ["station", "station"]]) {
      $(`roster-filter-${id}`).addEventListener("change", (e) => {
        this.filters[key] = e.target.value;
        this.render();
      });
    }
    await Promise.all([this.reload(), this.loadSuggestions()]);
    clearInterval(this.ticker);
    this.ticker = setInterval(() => this.tick(), 1000);
  }

  serverNow() { return Date.now() + this.offsetMs; }

  async reload() {
    let r;
    try { r = await api("/api/v1/board/roster"); } catch (e) { return; }
    this.offsetMs = Date.parse(r.now) - Date.now();
    this.units = new Map(r.units.map((u) => [u.id, u]));
    this.render();
  }

  async loadSuggestions() {
    try { this.moveup = await api("/api/v1/moveup/suggestions"); } catch (e) { return; }
    this.renderMoveUp();
  }

  /** Every event of the stream passes here (app.js forwards them). */
  onEvent(ev) {
    switch (ev.type) {
      case "unit.timer": {
        this.offsetMs = Date.parse(ev.at) - Date.now();  // the tick's time is the server's now
        const u = this.units.get(ev.unit_id);
        if (u) {
          u.timer = { ...u.timer, ...ev.data };
          this.render();
          if (ev.data.level === "alert") this.ctx.toast(t("board.timer_alert_toast", { unit: ev.unit_id }), true);
        }
        break;
      }
      case "unit.created": case "unit.status": case "unit.checkin": case "unit.out_of_service":
      case "unit.moveup": case "assignment.created": case "assignment.ended":
        this.reloadSoon();
        this.suggestSoon();
        break;
      case "resync":
        this.reloadSoon();
        this.suggestSoon();
        break;
      default:
        break;
    }
  }

  // ------------------------------------------------------------------ roster
  filterOptions() {
    const keep = (id, values, label) => {
      syncOptions($(id), [["", t("board.all")], ...values.map((v) => [String(v), label(v)])]);
    };
    const all = [...this.units.values()];
    const uniq = (f) => [...new Set(all.map(f).filter(Boolean))];
    const byNumber = (a, b) => Number(a) - Number(b) || String(a).localeCompare(String(b));
    keep("roster-filter-status", Object.keys(this.ctx.lifecycle()), this.ctx.statusLabel);
    keep("roster-filter-type", uniq((u) => u.unit_type).sort(), this.ctx.unitTypeLabel);
    keep("roster-filter-station", uniq((u) => u.station).sort(byNumber), this.ctx.stationLabel);
  }

  visible() {
    const f = this.filters;
    return [...this.units.values()]
      .filter((u) => (!f.status || u.status === f.status) && (!f.unit_type || u.unit_type === f.unit_type)
        && (!f.station || u.station === f.station))
      .sort((a, b) => (LEVEL_ORDER[a.timer.level] - LEVEL_ORDER[b.timer.level]) || a.id.localeCompare(b.id));
  }

  elapsed(u) {
    return Math.max(0, (this.serverNow() - Date.parse(u.status_at)) / 1000);
  }

  render() {
    if (!this.config) return;
    this.filterOptions();
    // A row's drop-down (out-of-service reason) being chosen from is not rebuilt under the
    // user: the rows are drawn again once it loses the focus.
    const focused = document.activeElement;
    if (focused && focused.tagName === "SELECT" && $("roster-body").contains(focused)) {
      if (!focused.dataset.deferred) {
        focused.dataset.deferred = "1";
        focused.addEventListener("blur", () => this.render(), { once: true });
      }
      return;
    }
    const write = this.ctx.canWrite();
    const list = this.visible();
    const alerts = [...this.units.values()].filter((u) => u.timer.level !== "ok").length;
    $("roster-count").textContent = `${list.length} / ${this.units.size}`;
    $("roster-alerts").textContent = alerts ? t("board.timers_running", { n: alerts }) : "";
    $("roster-alerts").hidden = !alerts;
    const rows = list.map((u) => {
      const inc = u.incident;
      const incText = inc ? `P${inc.priority} ${(inc.category_label && inc.category_label[getLang()]) || inc.category}` : "–";
      const reason = u.oos_reason ? ` · ${t(`oos.${u.oos_reason}`)}` : "";
      const cover = u.cover_station ? `<br><span class="muted">${esc(t("board.covering", { station: this.ctx.stationLabel(u.cover_station) }))}</span>` : "";
      const timer = u.timer.level !== "ok"
        ? `<span class="timer-badge ${u.timer.level}" data-testid="timer-badge">${esc(t(`board.timer_${u.timer.level}`))}</span>` : "";
      const checkin = u.checkin_at ? `<br><span class="muted">${esc(t("board.checked_in", { time: fmtTime(u.checkin_at) }))}</span>` : "";
      let action = "";
      if (write) {
        if (u.timer.warn_s !== null && u.status !== "available") {
          action += `<button type="button" data-checkin="${esc(u.id)}" data-testid="checkin">${esc(t("board.checkin"))}</button>`;
        }
        if (u.status === "available") {
          action += `<select data-oos="${esc(u.id)}" data-testid="oos-reason" aria-label="${esc(t("board.take_oos"))}">
            <option value="">${esc(t("board.take_oos"))}</option>
            ${this.config.oos_reasons.map((r) => `<option value="${r}">${esc(t(`oos.${r}`))}</option>`).join("")}</select>`;
        } else if (u.status === "out_of_service") {
          action += `<button type="button" data-back="${esc(u.id)}" data-testid="back-in-service">${esc(t("board.back_in_service"))}</button>`;
        }
      }
      return `<tr data-testid="roster-row" data-unit="${esc(u.id)}" data-status="${esc(u.status)}" data-type="${esc(u.unit_type)}" data-station="${esc(u.station || "")}" data-timer="${esc(u.timer.level)}" class="timer-${esc(u.timer.level)}">
        <td><b>${esc(u.id)}</b><br><span class="muted">${esc(this.ctx.unitTypeLabel(u.unit_type))}</span></td>
        <td>${esc(this.ctx.stationLabel(u.station))}${u.shift ? `<br><span class="muted">${esc(u.shift)}</span>` : ""}${cover}</td>
        <td><span class="st-${esc(u.status)}">${esc(this.ctx.statusLabel(u.status))}</span>${esc(reason)} ${timer}</td>
        <td class="num" data-since="${esc(u.timer.since)}" data-status-at="${esc(u.status_at)}" data-testid="time-in-status">${esc(fmtDuration(this.elapsed(u)))}${checkin}</td>
        <td>${inc ? `<a href="#" data-incident="${esc(inc.id)}">${esc(incText)}</a>` : "–"}</td>
        <td class="actions">${action}</td></tr>`;
    });
    $("roster-body").innerHTML = rows.join("")
      || `<tr><td colspan="6" class="muted">${esc(t("board.no_units"))}</td></tr>`;
    for (const b of $("roster-body").querySelectorAll("[data-checkin]")) {
      b.addEventListener("click", () => this.checkIn(b.dataset.checkin));
    }
    for (const s of $("roster-body").querySelectorAll("[data-oos]")) {
      s.addEventListener("change", () => {
        if (!s.value) return;
        s.blur();  // chosen: the rows may be drawn again
        this.outOfService(s.dataset.oos, s.value);
      });
    }
    for (const b of $("roster-body").querySelectorAll("[data-back]")) {
      b.addEventListener("click", () => this.backInService(b.dataset.back));
    }
    for (const a of $("roster-body").querySelectorAll("[data-incident]")) {
      a.addEventListener("click", (e) => { e.preventDefault(); this.ctx.onIncident(a.dataset.incident); });
    }
  }

  /** Each second: the times in status run on (no request). */
  tick() {
    for (const td of document.querySelectorAll("#roster-body [data-status-at]")) {
      const u = this.units.get(td.closest("tr").dataset.unit);
      if (u) td.firstChild.textContent = fmtDuration(this.elapsed(u));
    }
  }

  async act(path, body, done) {
    try {
      await api(path, { method: "POST", json: body });
      if (done) this.ctx.toast(done);
    } catch (e) {
      this.ctx.toast(this.ctx.errorText(e), true);
    }
    await this.reload();
  }

  checkIn(id) {
    return this.act(`/api/v1/units/${encodeURIComponent(id)}/checkin`, undefined, t("board.checked_in_toast", { unit: id }));
  }

  outOfService(id, reason) {
    return this.act(`/api/v1/units/${encodeURIComponent(id)}/out-of-service`, { reason },
      t("board.oos_toast", { unit: id, reason: t(`oos.${reason}`) }));
  }

  backInService(id) {
    return this.act(`/api/v1/units/${encodeURIComponent(id)}/status`, { status: "available" },
      t("toast.status", { status: this.ctx.statusLabel("available") }));
  }

  // ------------------------------------------------------------------ move-up
  renderMoveUp() {
    const m = this.moveup;
    const pane = $("moveup-pane");
    if (!m) { pane.hidden = true; return; }
    const write = this.ctx.canWrite();
    pane.hidden = false;
    $("moveup-coverage").textContent = t("moveup.coverage", {
      share: `${(100 * m.expected_share).toFixed(1)}%`,
      minutes: Math.round(m.threshold_s / 60),
      busy: `${Math.round(100 * m.busy_fraction)}%`,
    });
    const items = m.moves.map((mv) => {
      const why = mv.kind === "rule"
        ? t("moveup.rule", { station: this.ctx.stationLabel(mv.rule.station), n: mv.rule.min_available, type: this.ctx.unitTypeLabel(mv.unit_type) })
        : t("moveup.dmexclp");
      const gain = mv.gain_share === null ? "" : ` · ${t("moveup.gain", { pp: (100 * mv.gain_share).toFixed(2) })}`;
      const what = mv.unit_id
        ? t("moveup.move", { unit: mv.unit_id, from: this.ctx.stationLabel(mv.from_station), to: this.ctx.stationLabel(mv.to_station), eta: fmtDuration(mv.eta_s) })
        : t("moveup.no_donor", { to: this.ctx.stationLabel(mv.to_station) });
      const button = write && mv.unit_id
        ? `<button type="button" class="primary" data-apply="${esc(mv.unit_id)}" data-to="${esc(mv.to_station)}" data-testid="moveup-apply">${esc(t("moveup.apply"))}</button>` : "";
      return `<li data-testid="moveup-item" data-kind="${esc(mv.kind)}" data-unit="${esc(mv.unit_id || "")}" data-to="${esc(mv.to_station)}">
        <div><b>${esc(what)}</b>${esc(gain)}<br><span class="muted">${esc(why)}</span></div>${button}</li>`;
    });
    $("moveup-list").innerHTML = items.join("") || `<li class="muted" data-testid="moveup-none">${esc(t("moveup.none"))}</li>`;
    $("moveup-count").textContent = String(m.moves.filter((mv) => mv.unit_id).length);
    for (const b of $("moveup-list").querySelectorAll("[data-apply]")) {
      b.addEventListener("click", () => this.applyMove(b.dataset.apply, b.dataset.to));
    }
  }

  async applyMove(unitId, station) {
    await this.act("/api/v1/moveup/apply", { unit_id: unitId, to_station: station },
      t("moveup.applied", { unit: unitId, to: this.ctx.stationLabel(station) }));
    await this.loadSuggestions();
  }
}
