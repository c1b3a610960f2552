// The sign-ins chart: stacked bars per hour, drawn as SVG from the counts of
// GET /admin/audit/sign-ins.

const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) el.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child !== undefined && child !== null) {
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return el;
}

const SERIES = [
  ["succeeded", "Succeeded"],
  ["failed", "Failed"],
  ["throttled", "Throttled"],
];

const total = (b) => b.succeeded + b.failed + b.throttled;

/** The local calendar day of `iso`, as `YYYY-MM-DD`. */
export function localDay(iso) {
  const t = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}`;
}

/** The counts summed per local day, oldest first. */
export function dailyTotals(buckets) {
  const days = new Map();
  for (const b of buckets) {
    const day = localDay(b.start);
    const d = days.get(day) || { day, succeeded: 0, failed: 0, throttled: 0 };
    d.succeeded += b.succeeded;
    d.failed += b.failed;
    d.throttled += b.throttled;
    days.set(day, d);
  }
  return [...days.values()];
}

/** A round step for the y axis that gives about four lines. */
function step(max) {
  const raw = max / 4;
  const magnitude = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
  for (const m of [1, 2, 5, 10]) {
    if (m * magnitude >= raw) return Math.max(1, m * magnitude);
  }
  return Math.max(1, raw);
}

/** The chart, as an `<svg>` element. */
export function signInChart(data) {
  const buckets = data.buckets || [];
  const width = 960;
  const height = 260;
  const pad = { left: 48, right: 12, top: 12, bottom: 36 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const peak = Math.max(0, ...buckets.map(total));
  const unit = step(peak);
  const top = Math.max(unit, Math.ceil(peak / unit) * unit);
  const y = (v) => pad.top + plotH * (1 - v / top);
  const bw = plotW / Math.max(1, buckets.length);

  const sums = SERIES.map(([k]) => buckets.reduce((n, b) => n + b[k], 0));
  const summary = `${sums[0]} succeeded, ${sums[1]} failed and ${sums[2]} throttled sign-ins ` +
    `in the last ${buckets.length} hours; the busiest hour had ${peak}.`;

  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-labelledby": "chart-title chart-desc",
    id: "sign-in-chart",
    "data-total": sums[0] + sums[1] + sums[2],
    "data-succeeded": sums[0],
    class: "chart",
  },
  s("title", { id: "chart-title" }, "Sign-ins per hour"),
  s("desc", { id: "chart-desc" }, summary));

  // Horizontal grid and its labels.
  for (let v = 0; v <= top; v += unit) {
    svg.append(
      s("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: "grid" }),
      s("text", { x: pad.left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, v),
    );
  }

  buckets.forEach((b, i) => {
    const x = pad.left + i * bw;
    const start = new Date(b.start);
    const g = s("g", {
      class: "bucket",
      "data-start": b.start,
      "data-succeeded": b.succeeded,
      "data-failed": b.failed,
      "data-throttled": b.throttled,
    });
    g.append(s("title", {}, `${start.toLocaleString(undefined, {
      weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
    })}: ${b.succeeded} succeeded, ${b.failed} failed, ${b.throttled} throttled`));
    let base = 0;
    for (const [k] of SERIES) {
      const v = b[k];
      if (v > 0) {
        g.append(s("rect", {
          x: x + 0.5,
          width: Math.max(1, bw - 1),
          y: y(base + v),
          height: Math.max(1, y(base) - y(base + v)),
          class: `bar bar-${k}`,
        }));
      }
      base += v;
    }
    svg.append(g);
    // A tick and a day label at each local midnight.
    if (start.getHours() === 0) {
      svg.append(
        s("line", { x1: x, x2: x, y1: pad.top, y2: height - pad.bottom + 6, class: "day" }),
        s("text", { x: x + 4, y: height - pad.bottom + 18, class: "axis" },
          start.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short" })),
      );
    }
  });
  svg.append(s("line", {
    x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0), class: "baseline",
  }));
  return svg;
}

/** The legend, as HTML. */
export function legend() {
  const list = document.createElement("ul");
  list.className = "legend";
  for (const [k, label] of SERIES) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = `swatch bar-${k}`;
    swatch.setAttribute("aria-hidden", "true");
    item.append(swatch, label);
    list.append(item);
  }
  return list;
}
