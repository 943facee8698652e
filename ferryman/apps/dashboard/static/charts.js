// Small SVG charts drawn here (no library): lines over time with a legend, and bars.
import { h, s } from "./dom.js";

const W = 600;
const H = 210;
const PAD = { left: 56, right: 22, top: 12, bottom: 26 };

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

function clock(epoch) {
  const d = new Date(epoch * 1000);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

// series: [{name, points: [[epoch, value], ...]}]; the x range spans [from, to].
export function lineChart({ title, series, from, to, format = String, testid }) {
  const values = series.flatMap((line) => line.points.map((p) => p[1])).filter((v) => v !== null);
  const top = niceMax(Math.max(0, ...values));
  const x0 = from ?? Math.min(...series.flatMap((l) => l.points.map((p) => p[0])));
  const x1 = Math.max(to ?? 0, x0 + 60);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (t) => PAD.left + ((t - x0) / (x1 - x0)) * plotW;
  const y = (v) => PAD.top + plotH - (v / top) * plotH;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    svg.append(
      s("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "grid" }),
      s("text", { x: PAD.left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, format(v)),
    );
  }
  for (let i = 0; i <= 4; i++) {
    const t = x0 + ((x1 - x0) * i) / 4;
    svg.append(s("text", { x: x(t), y: H - 6, class: "tick", "text-anchor": "middle" }, clock(t)));
  }
  series.forEach((line, index) => {
    const points = line.points.filter((p) => p[1] !== null);
    if (!points.length) return;
    const d = points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
    svg.append(s("path", { d: d.join(" "), class: `line c${index % 8}` }));
    for (const p of points) {
      svg.append(
        s("circle", { cx: x(p[0]), cy: y(p[1]), r: 2.5, class: `dot c${index % 8}` },
          s("title", {}, `${line.name} ${clock(p[0])}: ${format(p[1])}`)),
      );
    }
  });
  const legend = h("div", { class: "legend" },
    series.map((line, index) => h("span", { class: `key c${index % 8}` }, line.name)));
  const empty = values.length ? null : h("p", { class: "muted empty" }, "no data in this range");
  return h("figure", { class: "card chart-card", "data-testid": testid },
    h("figcaption", {}, title), svg, legend, empty);
}

// A timing waterfall: phases one after the other on a common scale.
export function waterfall(timings) {
  const phases = ["blocked", "connect", "send", "wait", "receive"];
  const known = phases.filter((p) => typeof timings[p] === "number" && timings[p] >= 0);
  const total = Math.max(timings.total || 0, known.reduce((sum, p) => sum + timings[p], 0)) || 1;
  let offset = 0;
  const rows = known.map((phase) => {
    const ms = timings[phase];
    const bar = h("div", { class: `bar p-${phase}` });
    bar.style.marginLeft = `${(offset / total) * 100}%`;
    bar.style.width = `${Math.max((ms / total) * 100, 0.4)}%`;
    offset += ms;
    return h("div", { class: "wf-row" },
      h("span", { class: "wf-name" }, phase),
      h("div", { class: "wf-track" }, bar),
      h("span", { class: "wf-ms" }, `${ms.toFixed(2)} ms`));
  });
  return h("div", { class: "waterfall", "data-testid": "waterfall" }, rows,
    h("div", { class: "wf-row total" }, h("span", { class: "wf-name" }, "total"),
      h("div", { class: "wf-track" }),
      h("span", { class: "wf-ms" }, timings.total == null ? "–" : `${timings.total.toFixed(2)} ms`)),
    timings.ttfb == null ? null : h("p", { class: "muted" }, `time to first byte ${timings.ttfb.toFixed(2)} ms`));
}
