// A small SVG chart of the queue over the last hour: waiting booths (solid) and the
// longest wait in minutes (dashed), each on its own scale. Plain SVG, redrawn in place.

const NS = "http://www.w3.org/2000/svg";
const W = 600;
const H = 170;
const PAD = { left: 34, right: 40, top: 12, bottom: 20 };
const HOUR = 3600;

function el(name, attrs) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function niceCeil(v) {
  if (v <= 5) return 5;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export class QueueChart {
  constructor(svg) {
    this.svg = svg;
    this.points = []; // {t, waiting, oldest_wait_s}, oldest first
    svg.replaceChildren();
    svg.append(
      el("line", { class: "axis", x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom }),
      el("line", { class: "axis", x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom }),
      el("line", { class: "axis", x1: W - PAD.right, y1: PAD.top, x2: W - PAD.right, y2: H - PAD.bottom }),
    );
    this.waiting = el("polyline", { class: "waiting", points: "" });
    this.wait = el("polyline", { class: "wait", points: "" });
    this.labels = {
      waitingMax: el("text", { x: PAD.left - 4, y: PAD.top + 8, "text-anchor": "end" }),
      waitMax: el("text", { x: W - PAD.right + 4, y: PAD.top + 8 }),
      start: el("text", { x: PAD.left, y: H - 4 }),
      end: el("text", { x: W - PAD.right, y: H - 4, "text-anchor": "end" }),
      zero: el("text", { x: PAD.left - 4, y: H - PAD.bottom, "text-anchor": "end" }),
    };
    this.labels.zero.textContent = "0";
    this.labels.end.textContent = "now";
    svg.append(this.waiting, this.wait, ...Object.values(this.labels));
  }

  // The server's samples (welcome): the page adds its own as snapshots arrive.
  setHistory(points) {
    this.points = points.map((p) => ({ t: p.t, waiting: p.waiting, oldest_wait_s: p.oldest_wait_s }));
  }

  // Add a sample at most every `step` seconds (the latest value replaces a closer one).
  add(t, waiting, oldest, step = 5) {
    const last = this.points[this.points.length - 1];
    if (last && t - last.t < step) {
      if (this.points.length > 1 && t - this.points[this.points.length - 2].t < step) {
        Object.assign(last, { t, waiting, oldest_wait_s: oldest });
        return;
      }
    }
    this.points.push({ t, waiting, oldest_wait_s: oldest });
    while (this.points.length && this.points[0].t < t - HOUR) this.points.shift();
  }

  draw(now) {
    const pts = this.points.filter((p) => p.t >= now - HOUR);
    const t0 = Math.min(now - 60, pts.length ? pts[0].t : now - 60);
    const span = Math.max(60, now - t0);
    const maxWaiting = niceCeil(Math.max(1, ...pts.map((p) => p.waiting)));
    const maxWait = niceCeil(Math.max(1, ...pts.map((p) => p.oldest_wait_s / 60)));
    const x = (t) => PAD.left + ((t - t0) / span) * (W - PAD.left - PAD.right);
    const y = (v, max) => H - PAD.bottom - (v / max) * (H - PAD.top - PAD.bottom);
    // Steps: a value holds until the next sample, and the last one until now.
    const line = (value, max) => {
      const out = [];
      pts.forEach((p, i) => {
        if (i > 0) out.push(`${x(p.t).toFixed(1)},${y(value(pts[i - 1]), max).toFixed(1)}`);
        out.push(`${x(p.t).toFixed(1)},${y(value(p), max).toFixed(1)}`);
      });
      if (pts.length) out.push(`${x(now).toFixed(1)},${y(value(pts[pts.length - 1]), max).toFixed(1)}`);
      return out.join(" ");
    };
    this.waiting.setAttribute("points", line((p) => p.waiting, maxWaiting));
    this.wait.setAttribute("points", line((p) => p.oldest_wait_s / 60, maxWait));
    this.labels.waitingMax.textContent = String(maxWaiting);
    this.labels.waitMax.textContent = `${maxWait}m`;
    this.labels.start.textContent = `−${Math.round(span / 60)} min`;
  }
}
