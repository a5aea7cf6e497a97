// A small line chart on <canvas>: time on x, one or more series on y. No
// library: the console's charts are a few hundred points each.
import { h } from "./dom.js";

const palette = ["--c1", "--c2", "--c3", "--c4", "--c5", "--c6", "--c7", "--c8"];

export function seriesColor(i) {
  return getComputedStyle(document.documentElement).getPropertyValue(palette[i % palette.length]).trim() || "#888";
}

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// LineChart draws series onto a canvas. opts: title, series (names),
// format (a y value to a label), window (seconds shown; default: the
// data's span).
export class LineChart {
  constructor(opts) {
    this.opts = opts;
    this.canvas = h("canvas", { role: "img", "aria-label": opts.title, "data-points": "0" });
    this.legend = h("div", { class: "legend" });
    this.el = h("section", { class: "chart", "aria-label": opts.title }, h("h2", {}, opts.title), this.canvas, this.legend);
    this.data = { t: [], ys: [] };
    this.names = opts.series || [];
    new ResizeObserver(() => this.draw()).observe(this.canvas);
    // The palette is read from CSS at each draw: redraw when the scheme
    // flips (light/dark), not only at the next update.
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.draw());
  }

  // update takes times (seconds) and one array of values per series
  // (null: no value at that time).
  update(t, ys, names) {
    this.data = { t, ys };
    if (names) this.names = names;
    this.canvas.dataset.points = String(t.length);
    this.draw();
  }

  draw() {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, ht = c.clientHeight;
    if (!w || !ht) return;
    c.width = Math.round(w * dpr);
    c.height = Math.round(ht * dpr);
    c.dataset.scheme = matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, ht);
    const style = getComputedStyle(document.documentElement);
    const muted = style.getPropertyValue("--muted").trim(), line = style.getPropertyValue("--line").trim();
    const fmt = this.opts.format || ((v) => String(v));
    const { t, ys } = this.data;
    let max = 0;
    for (const s of ys) for (const v of s) if (v !== null && v > max) max = v;
    max = niceMax(max);
    const left = 56, right = 14, top = 8, bottom = 20;
    const pw = w - left - right, ph = ht - top - bottom;
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = muted;
    g.strokeStyle = line;
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const y = top + ph - (ph * i) / 4;
      g.beginPath(); g.moveTo(left, Math.round(y) + .5); g.lineTo(left + pw, Math.round(y) + .5); g.stroke();
      g.fillText(fmt((max * i) / 4), left - 6, y);
    }
    const t1 = t.length ? t[t.length - 1] : Date.now() / 1000;
    const span = this.opts.window || (t.length > 1 ? t1 - t[0] : 60);
    const t0 = t1 - span;
    g.textAlign = "center";
    g.textBaseline = "top";
    const ago = (s) => s >= 3600 ? Math.round(s / 3600) + "h" : s >= 60 ? Math.round(s / 60) + "m" : Math.round(s) + "s";
    for (let i = 0; i <= 4; i++) {
      const x = left + (pw * i) / 4;
      const s = span * (1 - i / 4);
      g.textAlign = i === 0 ? "left" : i === 4 ? "right" : "center";
      g.fillText(i === 4 ? "now" : "-" + ago(s), i === 0 ? x - 10 : x, top + ph + 4);
    }
    const x = (tt) => left + ((tt - t0) / span) * pw;
    const y = (v) => top + ph - (v / max) * ph;
    ys.forEach((s, si) => {
      g.strokeStyle = seriesColor(si);
      g.lineWidth = 1.75;
      g.beginPath();
      let pen = false;
      for (let i = 0; i < s.length; i++) {
        if (s[i] === null || t[i] < t0) { pen = false; continue; }
        if (pen) g.lineTo(x(t[i]), y(s[i])); else g.moveTo(x(t[i]), y(s[i]));
        pen = true;
      }
      g.stroke();
      g.fillStyle = seriesColor(si);
      for (let i = 0; i < s.length; i++) {
        const alone = s[i] !== null && (i === 0 || s[i - 1] === null) && (i === s.length - 1 || s[i + 1] === null);
        if (alone && t[i] >= t0) { g.beginPath(); g.arc(x(t[i]), y(s[i]), 2, 0, 2 * Math.PI); g.fill(); }
      }
    });
    // The legend names each series with its colour and latest value.
    this.legend.replaceChildren(...this.names.map((n, i) => {
      const s = ys[i] || [];
      let last = null;
      for (let j = s.length - 1; j >= 0; j--) if (s[j] !== null) { last = s[j]; break; }
      const sw = h("span", { class: "swatch" });
      sw.style.background = seriesColor(i);
      return h("span", {}, sw, n + (last === null ? "" : ": " + fmt(last)));
    }));
  }
}
