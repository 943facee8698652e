// Overview: requests per minute, error rate and latency percentiles over time, per endpoint;
// the cache's hit ratio and the rate-limited requests; the slowest and the most failing routes.
import { api, onTransaction } from "./api.js";
import { lineChart } from "./charts.js";
import { formatMs, h, put } from "./dom.js";

const RANGES = { "15m": [900, 60], "1h": [3600, 60], "6h": [21600, 300], "24h": [86400, 900] };

export async function overview(main, query, cleanup) {
  const range = RANGES[query.get("range")] ? query.get("range") : "1h";
  const [seconds, bucket] = RANGES[range];
  const now = Date.now() / 1000;
  const since = now - seconds;
  const stats = await api.stats(new URLSearchParams({ since: String(since), bucket: String(bucket) }));
  const picker = h("select", { "aria-label": "time range", "data-testid": "range" },
    Object.keys(RANGES).map((key) => h("option", { value: key, selected: key === range }, `last ${key}`)));
  picker.addEventListener("change", () => { location.hash = `#/?range=${picker.value}`; });

  const byEndpoint = new Map();
  for (const point of stats.series) {
    if (!byEndpoint.has(point.endpoint)) byEndpoint.set(point.endpoint, []);
    byEndpoint.get(point.endpoint).push(point);
  }
  const endpoints = [...byEndpoint.keys()].sort();
  const middle = stats.series.some((p) => "p95_ms" in p) ? "p95" : "p90";
  const per = (key, scale = 1) => endpoints.map((name) => ({
    name,
    points: byEndpoint.get(name).map((p) => [p.start + bucket / 2, p[key] === null ? null : p[key] * scale]),
  }));
  const charts = [
    lineChart({ title: "Requests per minute", series: per("requests", 60 / bucket), from: since, to: now,
      format: (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1)), testid: "chart-rpm" }),
    lineChart({ title: "Error rate", series: per("error_rate", 100), from: since, to: now,
      format: (v) => `${v.toFixed(0)}%`, testid: "chart-errors" }),
  ];
  for (const name of endpoints) {
    const points = byEndpoint.get(name);
    charts.push(lineChart({
      title: `Latency: ${name}`,
      series: ["p50", middle, "p99"].map((p) => ({ name: p, points: points.map((q) => [q.start + bucket / 2, q[`${p}_ms`]]) })),
      from: since, to: now, format: formatMs, testid: `chart-latency-${name}`,
    }));
  }
  const total = stats.total;
  const numbers = h("div", { class: "numbers", "data-testid": "totals" },
    number("requests", total ? String(total.requests) : "0", "total-requests"),
    number("errors", total ? `${total.errors} (${(total.error_rate * 100).toFixed(1)}%)` : "0", "total-errors"),
    number("p50", formatMs(total && total.p50_ms)),
    number(middle, formatMs(total && total[`${middle}_ms`])),
    number("p99", formatMs(total && total.p99_ms)),
    number("cache hit ratio", stats.cache.hit_ratio === null ? "–" : `${(stats.cache.hit_ratio * 100).toFixed(1)}%`, "cache-hit-ratio",
      stats.cache.looked ? Object.entries(stats.cache.statuses).sort().map(([s, n]) => `${s} ${n}`).join(" · ") : "the cache looked at none"),
    number("rate limited (429)", String(stats.rate_limited), "rate-limited",
      stats.rate_limited ? `${stats.limited_by_proxy} by ferryman's limits` : null));
  // New transactions refresh the page, at most every 5 s.
  let timer = null;
  cleanup.push(onTransaction(() => {
    timer = timer || setTimeout(() => window.dispatchEvent(new HashChangeEvent("hashchange")), 5000);
  }));
  cleanup.push(() => clearTimeout(timer));
  put(main,
    h("div", { class: "toolbar" }, h("h1", {}, "Overview"), picker),
    stats.truncated ? h("p", { class: "warn" }, "Too many transactions in this range: the newest are shown.") : null,
    numbers,
    h("div", { class: "charts" }, charts),
    h("div", { class: "two" },
      routes("Slowest routes", stats.slowest, middle, "slowest"),
      routes("Most failing routes", stats.failing, middle, "failing")),
  );
}

function number(label, value, testid, detail) {
  return h("div", { class: "card number", "data-testid": testid }, h("span", { class: "value" }, value), h("span", { class: "label" }, label),
    detail ? h("span", { class: "detail muted" }, detail) : null);
}

function routes(title, list, middle, testid) {
  const rows = list.map((r) => {
    const params = new URLSearchParams({ endpoint: r.endpoint, method: r.method, q: r.path });
    return h("tr", {},
      h("td", {}, r.endpoint), h("td", {}, r.method),
      h("td", { class: "target" }, h("a", { href: `#/transactions?${params}` }, r.path)),
      h("td", { class: "num" }, String(r.requests)), h("td", { class: "num" }, String(r.errors)),
      h("td", { class: "num" }, formatMs(r.p50_ms)), h("td", { class: "num" }, formatMs(r[`${middle}_ms`])));
  });
  return h("section", { class: "card", "data-testid": testid }, h("h2", {}, title),
    rows.length
      ? h("table", {}, h("thead", {}, h("tr", {}, ["endpoint", "method", "path", "requests", "errors", "p50", middle].map((c) => h("th", {}, c)))), h("tbody", {}, rows))
      : h("p", { class: "muted" }, "none"));
}
