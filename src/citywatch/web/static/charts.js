// Small SVG bar charts (no chart library needed for two bar charts).

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The axis maximum for counts: a round number whose half is a whole number too, so that the
 *  ticks (0, half, maximum) are whole counts (never 2.5 incidents). */
export function niceMax(x) {
  if (x <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 4, 6, 8, 10]) if (m * p >= x && (m * p) % 2 === 0) return m * p;
  return 10 * p;
}

/** The tick values of an axis from 0 to ``max`` (whole counts only). */
export function countTicks(max) {
  return max === 1 ? [0, 1] : [0, max / 2, max];
}

/**
 * Grouped bar chart.
 * @param {HTMLElement} host  where to draw (replaced)
 * @param {string[]} labels   category labels (x axis)
 * @param {{name: string, cls: string, values: number[]}[]} series  one or two series
 * @param {{height?: number, title?: string}} opts
 */
export function barChart(host, labels, series, opts = {}) {
  const width = 520, height = opts.height || 140, left = 26, bottom = 18, top = 14;
  const plotW = width - left - 4, plotH = height - bottom - top;
  const max = niceMax(Math.max(1, ...series.flatMap((s) => s.values)));
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  if (opts.title) svg.appendChild(el("title", {}, opts.title));
  for (const tick of countTicks(max)) {
    const y = top + plotH * (1 - tick / max);
    svg.appendChild(el("line", { x1: left, x2: width - 4, y1: y, y2: y, class: "axis" }));
    svg.appendChild(el("text", { x: left - 3, y: y + 3, "text-anchor": "end", class: "tick" }, String(tick)));
  }
  const band = plotW / Math.max(1, labels.length);
  const barW = Math.max(1, (band * 0.8) / series.length);
  // Label every n-th bar so that labels (about 6 px per character) never overlap.
  const longest = Math.max(1, ...labels.map((l) => l.length));
  const every = Math.max(Math.ceil(labels.length / 24), Math.ceil((longest * 6 + 4) / band));
  labels.forEach((label, i) => {
    series.forEach((s, j) => {
      const v = s.values[i] || 0;
      const h = (plotH * v) / max;
      const x = left + i * band + band * 0.1 + j * barW;
      const rect = el("rect", { x, y: top + plotH - h, width: barW, height: h, class: s.cls });
      rect.appendChild(el("title", {}, `${label} · ${s.name}: ${v}`));
      svg.appendChild(rect);
    });
    if (i % every === 0) {
      svg.appendChild(el("text", { x: left + i * band + band / 2, y: height - 5,
        "text-anchor": "middle" }, label));
    }
  });
  // Legend (top right) when there are several series.
  if (series.length > 1) {
    series.forEach((s, j) => {
      const x = width - 4 - (series.length - j) * 120;
      svg.appendChild(el("rect", { x, y: 2, width: 9, height: 9, class: s.cls }));
      svg.appendChild(el("text", { x: x + 12, y: 10 }, s.name));
    });
  }
  host.replaceChildren(svg);
}
