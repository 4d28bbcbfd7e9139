// A small loss chart on a <canvas>: one line per loss term, log-scaled y axis, redrawn on resize.

const COLOURS = { total: "#1f1d1a", content: "#1c7ed6", style: "#d9480f", tv: "#2b8a3e" };
const SPARE = ["#7048e8", "#e64980", "#0c8599", "#f08c00", "#5c940d"];

function niceNumber(v) {
  if (!Number.isFinite(v)) return "";
  const a = Math.abs(v);
  if (a >= 1e4 || (a > 0 && a < 1e-2)) return v.toExponential(0).replace("e+", "e");
  if (a >= 100) return v.toFixed(0);
  return String(Number(v.toPrecision(2)));
}

function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

export class LossChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.series = new Map(); // name -> [[step, value], ...]
    this.total = 0;
    this.pending = false;
    new ResizeObserver(() => this.schedule()).observe(canvas);
  }

  reset(total = 0) {
    this.series.clear();
    this.total = total;
    this.schedule();
  }

  /** Per-layer terms ("style:relu1_1", ...) are summed into one line per kind (content, style, tv). */
  static group(losses) {
    const out = {};
    for (const [key, value] of Object.entries(losses || {})) {
      if (typeof value !== "number" || !Number.isFinite(value)) continue;
      const name = key.split(":")[0];
      out[name] = (out[name] || 0) + value;
    }
    if (!("total" in out) && Object.keys(out).length > 1) out.total = Object.values(out).reduce((a, b) => a + b, 0);
    return out;
  }

  add(step, losses, total) {
    if (total) this.total = total;
    const grouped = LossChart.group(losses);
    for (const [name, value] of Object.entries(grouped)) {
      if (typeof value !== "number" || !Number.isFinite(value)) continue;
      if (!this.series.has(name)) this.series.set(name, []);
      const points = this.series.get(name);
      if (points.length && points[points.length - 1][0] >= step) continue; // a repeated event after a reconnect
      points.push([step, value]);
    }
    this.schedule();
  }

  colour(name, i) {
    return COLOURS[name] || SPARE[i % SPARE.length];
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (!w || !h) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    g.font = "11px system-ui, sans-serif";
    const pad = { l: 46, r: 12, t: 26, b: 22 };
    const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;

    // the x axis follows the run (a long run's first steps would be a sliver at the left of its total)
    let maxStep = 10, lo = Infinity, hi = -Infinity;
    for (const pts of this.series.values()) {
      for (const [s, v] of pts) {
        maxStep = Math.max(maxStep, s);
        if (v > 0) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      }
    }
    if (!Number.isFinite(lo)) {
      g.fillStyle = "#8a847b";
      g.textAlign = "center";
      g.fillText("Loss by iteration appears here while a painting runs", w / 2, h / 2);
      return;
    }
    let l0 = Math.floor(Math.log10(lo)), l1 = Math.ceil(Math.log10(hi));
    if (l1 === l0) l1 = l0 + 1;
    if (this.total) maxStep = Math.min(this.total, Math.ceil(maxStep * 1.08));
    const x = (s) => pad.l + (s / maxStep) * pw;
    const y = (v) => pad.t + ph - ((Math.log10(v) - l0) / (l1 - l0)) * ph;

    // grid and axes
    g.strokeStyle = "#eee9e2";
    g.fillStyle = "#8a847b";
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    const decadeStep = Math.max(1, Math.ceil((l1 - l0) / 5));
    for (let e = l0; e <= l1; e += decadeStep) {
      const yy = Math.round(y(10 ** e)) + 0.5;
      g.beginPath(); g.moveTo(pad.l, yy); g.lineTo(pad.l + pw, yy); g.stroke();
      g.fillText(niceNumber(10 ** e), pad.l - 6, yy);
    }
    g.textAlign = "center";
    g.textBaseline = "top";
    const ticks = Math.max(2, Math.min(6, Math.floor(pw / 70)));
    const unit = niceStep(maxStep / ticks);
    for (let s = 0; s <= maxStep + 1e-9; s += unit) g.fillText(String(s), x(s), pad.t + ph + 5);
    g.strokeStyle = "#cfc7bb";
    g.beginPath(); g.moveTo(pad.l + 0.5, pad.t); g.lineTo(pad.l + 0.5, pad.t + ph); g.lineTo(pad.l + pw, pad.t + ph + 0.5); g.stroke();

    // lines
    let i = 0;
    const legend = [];
    for (const [name, pts] of this.series) {
      const col = this.colour(name, i++);
      g.strokeStyle = col;
      g.lineWidth = name === "total" ? 2 : 1.5;
      g.beginPath();
      let started = false;
      for (const [s, v] of pts) {
        if (!(v > 0)) continue;
        if (!started) { g.moveTo(x(s), y(v)); started = true; } else g.lineTo(x(s), y(v));
      }
      g.stroke();
      const last = pts[pts.length - 1];
      legend.push([name, col, last ? last[1] : NaN]);
    }

    // legend
    g.textBaseline = "middle";
    g.textAlign = "left";
    let lx = pad.l;
    for (const [name, col, last] of legend) {
      const label = `${name} ${niceNumber(last)}`;
      g.fillStyle = col;
      g.fillRect(lx, 9, 12, 3);
      g.fillStyle = "#4a4640";
      g.fillText(label, lx + 16, 11);
      lx += 16 + g.measureText(label).width + 14;
    }
  }
}
