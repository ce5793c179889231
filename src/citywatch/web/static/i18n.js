// Translations: every label of the dashboard comes from i18n.json (zh-CN and en), and every time
// is shown in the city's time zone, never the browser's.

let messages = { en: {}, zh: {} };
let lang = localStorage.getItem("citywatch.lang") || "en";
let timeZone = "UTC";

/** Load the translation table (once, at start). */
export async function loadMessages() {
  const r = await fetch("/i18n.json");
  messages = await r.json();
  if (!(lang in messages)) lang = "en";
}

export function getLang() { return lang; }

export function setLang(value) {
  lang = value;
  localStorage.setItem("citywatch.lang", value);
  document.documentElement.lang = value === "zh" ? "zh-CN" : "en";
}

export function setTimeZone(tz) { timeZone = tz; }

/** The label of ``key`` in the current language, with ``{name}`` placeholders filled in. */
export function t(key, vars = {}) {
  const table = messages[lang] || {};
  let text = key in table ? table[key] : (messages.en[key] ?? key);
  for (const [k, v] of Object.entries(vars)) text = text.replaceAll(`{${k}}`, String(v));
  return text;
}

/** Whether the translation table has ``key`` (server codes may be newer than the page). */
export function hasMessage(key) { return key in messages.en; }

/** Translate the static page: ``data-i18n`` (text) and ``data-i18n-title`` (tooltips). */
export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}

function locale() { return lang === "zh" ? "zh-CN" : "en-GB"; }

/** Clock time (HH:MM:SS) in the city's time zone. */
export function fmtTime(iso) {
  if (!iso) return "–";
  return new Intl.DateTimeFormat(locale(), {
    timeZone, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).format(new Date(iso));
}

/** Date and time in the city's time zone as ISO 8601 (2026-12-01 09:05:00 EST), with the
 *  zone's abbreviation: never 01/12/2026, which New York reads as 12 January. */
export function fmtDateTime(iso) {
  if (!iso) return "–";
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", {
    timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
    minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short",
  }).formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`;
}

/** A duration in seconds as m:ss (or h:mm:ss). */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return `${h ? h + ":" : ""}${mm}:${String(r).padStart(2, "0")}`;
}

export function fmtPercent(share) {
  if (share === null || share === undefined) return "–";
  return `${Math.round(share * 100)}%`;
}

export function fmtNumber(x, digits = 1) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "–";
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits }).format(x);
}
