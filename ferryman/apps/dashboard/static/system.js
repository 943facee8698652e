// System: endpoints and their upstreams, the effective settings (secrets masked by the API),
// the storage's size and health.
import { api } from "./api.js";
import { formatBytes, h, put } from "./dom.js";

export async function system(main) {
  const info = await api.system();
  const storage = info.storage || {};
  const size = storage.size || {};
  put(main,
    h("div", { class: "toolbar" }, h("h1", {}, "System"), h("span", { class: "muted" }, `ferryman ${info.version || ""}`)),
    h("section", { class: "card", "data-testid": "endpoints" }, h("h2", {}, "Endpoints"),
      h("table", {},
        h("thead", {}, h("tr", {}, ["name", "listens on", "upstreams", "recorded"].map((c) => h("th", {}, c)))),
        h("tbody", {}, (info.endpoints || []).map((e) => h("tr", {},
          h("td", {}, e.name), h("td", {}, e.listen),
          h("td", {}, (e.upstreams || []).map((u, i) => h("div", { class: "target" }, u,
            upstreamState((e.upstream_states || [])[i])))),
          h("td", {}, e.record)))))),
    h("section", { class: "card", "data-testid": "storage" }, h("h2", {}, "Storage"),
      h("dl", { class: "facts" },
        fact("recording", storage.available ? "yes" : "no (database unavailable)"),
        fact("transactions", size.transactions), fact("bodies", `${size.bodies ?? "–"} (${formatBytes(size.body_bytes)})`),
        fact("database size", formatBytes(size.database_bytes)),
        fact("recorded since start", storage.recorded), fact("dropped since start", storage.dropped),
        fact("queue", storage.queue_depth))),
    h("section", { class: "card", "data-testid": "settings" }, h("h2", {}, "Effective settings"),
      h("pre", { class: "settings" }, JSON.stringify(info.settings || {}, null, 2))),
  );
}

// "fallback, weight 3, down, breaker open (30 s)": what differs from a plain healthy upstream.
function upstreamState(state) {
  if (!state) return "";
  const words = [];
  if (state.role === "fallback") words.push("fallback");
  if (state.weight !== 1) words.push(`weight ${state.weight}`);
  if (!state.healthy) words.push("down (health checks)");
  if (state.breaker && state.breaker !== "closed") {
    const wait = state.breaker === "open" ? ` (${Math.ceil(state.breaker_reopens_in)} s)` : "";
    words.push(`breaker ${state.breaker.replace("_", "-")}${wait}`);
  }
  return words.length ? h("span", { class: "muted" }, ` — ${words.join(", ")}`) : "";
}

function fact(name, value) {
  return h("div", {}, h("dt", {}, name), h("dd", {}, value === undefined || value === null ? "–" : String(value)));
}
