// Transactions: a paginated list with facets, search, a time range, live updates and HAR export.
// The filters live in the URL's hash (#/transactions?endpoint=api&status=5xx), so a filtered
// list can be bookmarked and the back button works.
import { api, harUrl, onTransaction } from "./api.js";
import { clear, formatBytes, formatMs, formatTime, h, put, statusClass, statusText } from "./dom.js";

const MULTI = ["endpoint", "method", "status", "cache", "tag"];
const RANGES = { "": "any time", "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800 };
const PAGE = 50;

// The API's filters from the page's query (the range becomes "since").
export function apiFilters(query) {
  const params = new URLSearchParams();
  for (const key of MULTI) for (const value of query.getAll(key)) params.append(key, value);
  for (const key of ["favourite", "q", "since", "until"]) {
    if (query.get(key)) params.set(key, query.get(key));
  }
  const range = query.get("range");
  if (range && typeof RANGES[range] === "number" && !query.get("since")) {
    params.set("since", String(Math.floor(Date.now() / 1000 - RANGES[range])));
  }
  return params;
}

function navigate(query) {
  location.hash = `#/transactions${String(query) ? `?${query}` : ""}`;
}

function toggled(query, key, value) {
  const next = new URLSearchParams(query);
  const values = next.getAll(key);
  next.delete(key);
  for (const v of values) if (v !== value) next.append(key, v);
  if (!values.includes(value)) next.append(key, value);
  return next;
}

// Whether a live transaction belongs in the list the filters show.
function matches(item, query) {
  const any = (key, test) => { const v = query.getAll(key); return !v.length || v.some(test); };
  const status = item.status || 0;
  if (!any("endpoint", (v) => v === item.endpoint)) return false;
  if (!any("method", (v) => v.toUpperCase() === item.method)) return false;
  if (!any("status", (v) => (v === "error" ? !status || item.error : v.endsWith("xx") ? Math.floor(status / 100) === Number(v[0]) : Number(v) === status))) return false;
  if (!any("cache", (v) => (v === "none" ? !item.cache : v.toUpperCase() === item.cache))) return false;
  if (!query.getAll("tag").every((t) => { const [n, ...rest] = t.split("="); return (item.tags || {})[n.toLowerCase()] === rest.join("="); })) return false;
  if (query.get("favourite") === "true" || query.get("until")) return false;
  const q = (query.get("q") || "").toLowerCase();
  if (q && !`${item.target} ${item.upstream || ""}`.toLowerCase().includes(q)) return false;
  return true;
}

export function row(item, live) {
  const link = `#/transactions/${encodeURIComponent(item.id)}`;
  const tags = Object.entries(item.tags || {}).map(([n, v]) => h("span", { class: "tag" }, `${n}=${v}`));
  const tr = h("tr", { class: live ? "live-row" : null, "data-id": item.id },
    h("td", { class: "time" }, formatTime(item.started)),
    h("td", {}, item.endpoint),
    h("td", { class: "method" }, item.method),
    h("td", { class: "target" }, h("a", { href: link }, item.target), tags),
    h("td", { class: `status ${statusClass(item.status, item.error)}`, title: item.error || null }, statusText(item.status, item.error)),
    h("td", { class: "cache", "data-testid": "cache-cell" }, item.cache ? h("span", { class: `cache-badge c-${item.cache.toLowerCase()}` }, item.cache) : "–",
      item.attempts > 1 ? h("span", { class: "attempts-badge", title: `sent ${item.attempts} times` }, ` ↻${item.attempts}`) : null),
    h("td", { class: "num" }, formatMs(item.duration_ms)),
    h("td", { class: "num" }, formatBytes(item.response_size)),
    h("td", { class: "fav" }, item.favourite ? "★" : ""));
  tr.addEventListener("click", (event) => { if (!event.target.closest("a")) location.hash = link; });
  return tr;
}

export async function transactions(main, query, cleanup) {
  const filters = apiFilters(query);
  const [facets, page] = await Promise.all([api.facets(filters), api.transactions(withLimit(filters))]);

  const search = h("input", { type: "search", placeholder: "search URLs and bodies", value: query.get("q") || "", "aria-label": "search", "data-testid": "search" });
  const form = h("form", { class: "search" }, search, h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams(query);
    if (search.value) next.set("q", search.value); else next.delete("q");
    navigate(next);
  });
  const range = h("select", { "aria-label": "time range", "data-testid": "range" },
    Object.entries(RANGES).map(([key, label]) => h("option", { value: key, selected: (query.get("range") || "") === key }, typeof label === "number" ? `last ${key}` : label)));
  range.addEventListener("change", () => {
    const next = new URLSearchParams(query);
    if (range.value) next.set("range", range.value); else next.delete("range");
    navigate(next);
  });
  const har = h("a", { class: "button", href: harUrl(filters), download: "ferryman.har", "data-testid": "har" }, "Export HAR");

  const tbody = h("tbody", {}, page.items.map((item) => row(item, false)));
  const count = h("span", { class: "muted", "data-testid": "count" }, `${facets.total} transactions`);
  let cursor = page.next;
  const more = h("button", { type: "button", class: "more", "data-testid": "more" }, "Load more");
  more.hidden = !cursor;
  more.addEventListener("click", async () => {
    more.disabled = true;
    const params = withLimit(filters);
    params.set("cursor", cursor);
    const next = await api.transactions(params);
    for (const item of next.items) tbody.append(row(item, false));
    cursor = next.next;
    more.hidden = !cursor;
    more.disabled = false;
  });
  let live = 0;
  cleanup.push(onTransaction((item) => {
    if (!matches(item, query) || tbody.querySelector(`tr[data-id="${CSS.escape(item.id)}"]`)) return;
    tbody.prepend(row(item, true));
    live += 1;
    count.textContent = `${facets.total + live} transactions`;
  }));

  put(main,
    h("div", { class: "toolbar" }, h("h1", {}, "Transactions"), count, form, range, har),
    h("div", { class: "list" },
      facetPanel(facets, query),
      h("div", { class: "table-wrap" },
        h("table", { class: "transactions", "data-testid": "transactions" },
          h("thead", {}, h("tr", {}, ["time", "endpoint", "method", "target", "status", "cache", "duration", "size", "★"].map((c) => h("th", {}, c)))),
          tbody),
        page.items.length ? null : h("p", { class: "muted empty" }, "No transaction matches."),
        more)));
}

function withLimit(filters) {
  const params = new URLSearchParams(filters);
  params.set("limit", String(PAGE));
  return params;
}

function facetPanel(facets, query) {
  const group = (title, key, entries) => h("section", { class: "facet", "data-facet": key },
    h("h3", {}, title),
    entries.length ? entries.map(([value, count]) => {
      const checked = query.getAll(key).includes(value);
      const box = h("input", { type: "checkbox", checked });
      box.addEventListener("change", () => navigate(toggled(query, key, value)));
      return h("label", { class: "facet-value" }, box, h("span", {}, value), h("span", { class: "count" }, String(count)));
    }) : h("p", { class: "muted" }, "–"));
  // Values selected but absent from the counts (nothing left with them) stay visible to unselect.
  const entries = (key, counts) => {
    const list = Object.entries(counts);
    for (const v of query.getAll(key)) if (!(v in counts)) list.push([v, 0]);
    return list;
  };
  const tags = {};
  for (const t of facets.tag) tags[`${t.name}=${t.value}`] = t.count;
  const favourite = h("input", { type: "checkbox", checked: query.get("favourite") === "true" });
  favourite.addEventListener("change", () => {
    const next = new URLSearchParams(query);
    if (favourite.checked) next.set("favourite", "true"); else next.delete("favourite");
    navigate(next);
  });
  const reset = h("a", { href: "#/transactions", class: "reset" }, "clear filters");
  return h("aside", { class: "facets", "data-testid": "facets" },
    group("Endpoint", "endpoint", entries("endpoint", facets.endpoint)),
    group("Method", "method", entries("method", facets.method)),
    group("Status", "status", entries("status", facets.status).sort()),
    group("Cache", "cache", entries("cache", facets.cache || {})),
    group("Tags", "tag", entries("tag", tags)),
    h("section", { class: "facet" }, h("h3", {}, "Favourite"),
      h("label", { class: "facet-value" }, favourite, h("span", {}, "favourites only"), h("span", { class: "count" }, String(facets.favourite)))),
    reset);
}

export function clearNode(node) { return clear(node); }
