// One transaction: heads, bodies (JSON folded, images shown, binary as hex), the timing
// waterfall, copy as curl, favourite and replay.
import { api } from "./api.js";
import { waterfall } from "./charts.js";
import { formatBytes, formatMs, h, put, statusClass, statusText } from "./dom.js";

const REDACTED = "[redacted]";
// Headers curl sets itself, or that describe the connection rather than the request.
const CURL_SKIP = new Set(["host", "content-length", "connection", "transfer-encoding", "keep-alive", "te", "upgrade", "proxy-connection"]);
const HEX_LIMIT = 64 * 1024;
const TEXT_LIMIT = 512 * 1024;

export async function detail(main, id) {
  const t = await api.transaction(id);
  const favourite = h("button", { type: "button", class: "fav-toggle", "aria-pressed": String(t.favourite), "data-testid": "favourite" }, t.favourite ? "★ Favourite" : "☆ Favourite");
  favourite.addEventListener("click", async () => {
    const on = favourite.getAttribute("aria-pressed") !== "true";
    await api.favourite(t.id, on);
    favourite.setAttribute("aria-pressed", String(on));
    favourite.textContent = on ? "★ Favourite" : "☆ Favourite";
  });
  const curlText = h("pre", { class: "curl", "data-testid": "curl", hidden: true });
  const copy = h("button", { type: "button", "data-testid": "copy-curl" }, "Copy as curl");
  copy.addEventListener("click", async () => {
    const command = curl(t);
    curlText.textContent = command;
    curlText.hidden = false;
    try {
      await navigator.clipboard.writeText(command);
      copy.textContent = "Copied";
    } catch {
      // Not a secure context (a host beyond loopback over http): select it for Ctrl-C instead.
      const range = document.createRange();
      range.selectNodeContents(curlText);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      copy.textContent = "Select and copy";
    }
  });
  const replayResult = h("span", { class: "replay-result", "data-testid": "replay-result" });
  const replay = h("button", { type: "button", "data-testid": "replay" }, "Replay");
  replay.addEventListener("click", async () => {
    replay.disabled = true;
    replayResult.textContent = "sending…";
    try {
      const result = await api.replay(t.id);
      replayResult.textContent = "";
      replayResult.append(`answered ${result.status}: `,
        h("a", { href: `#/transactions/${encodeURIComponent(result.id)}`, "data-testid": "replay-link" }, "the new transaction"),
        result.omitted_headers.length ? ` (not sent, redacted: ${result.omitted_headers.join(", ")})` : "");
    } catch (error) {
      replayResult.textContent = `replay failed: ${error.message}`;
    } finally {
      replay.disabled = false;
    }
  });

  const tags = Object.entries(t.tags || {}).map(([n, v]) => h("span", { class: "tag" }, `${n}=${v}`));
  put(main,
    h("div", { class: "toolbar" },
      h("a", { href: "#/transactions", class: "back" }, "← Transactions"),
      h("h1", { class: "title" },
        h("span", { class: "method" }, t.method), " ", h("span", { class: "target", "data-testid": "target" }, t.target)),
      h("span", { class: `status big ${statusClass(t.status, t.error)}`, "data-testid": "status" }, statusText(t.status, t.error), t.reason ? ` ${t.reason}` : "")),
    h("div", { class: "actions" }, favourite, copy, replay, replayResult),
    curlText,
    h("dl", { class: "facts card" },
      fact("endpoint", t.endpoint), fact("upstream", t.upstream || "–"), fact("started", t.started_at),
      fact("duration", formatMs(t.duration_ms)), fact("client", t.client || "–"), fact("HTTP", t.http_version || "–"),
      fact("connection", t.reused ? "reused" : "new"), t.cache ? fact("cache", t.cache) : null,
      t.error ? fact("error", t.error) : null,
      t.attempts > 1 ? h("div", { class: "wide", "data-testid": "attempts" }, h("dt", {}, "attempts"),
        h("dd", {}, `${t.attempts}: `, h("ol", { class: "attempts" },
          (t.failed_attempts || []).map((a) => h("li", {}, `${a.upstream} `, h("span", { class: "s-error" }, a.failure))),
          h("li", {}, `${t.upstream || "–"} `, t.error ? h("span", { class: "s-error" }, "failed") : `answered ${t.status}`)))) : null,
      tags.length ? h("div", {}, h("dt", {}, "tags"), h("dd", {}, tags)) : null),
    h("section", { class: "card" }, h("h2", {}, "Timings"), waterfall(t.timings)),
    h("div", { class: "two" },
      message("Request", t.request, t.request_size, "request"),
      t.response ? message("Response", t.response, t.response_size, "response") : h("section", { class: "card" }, h("h2", {}, "Response"), h("p", { class: "muted" }, t.error || "no answer"))),
  );
}

function fact(name, value) {
  return h("div", {}, h("dt", {}, name), h("dd", {}, value));
}

function message(title, part, size, testid) {
  const rows = (part.headers || []).map(([name, value]) => h("tr", {}, h("th", {}, name), h("td", { class: value === REDACTED ? "redacted" : null }, value)));
  return h("section", { class: "card message", "data-testid": testid },
    h("h2", {}, title),
    h("table", { class: "headers", "data-testid": `${testid}-headers` }, h("tbody", {}, rows)),
    h("h3", {}, "Body ", h("span", { class: "muted" }, formatBytes(size))),
    body(part.body, size, part.headers || []));
}

function headerValue(headers, name) {
  const found = headers.find(([key]) => key.toLowerCase() === name);
  return found ? found[1] : null;
}

function bytesOf(b) {
  if (b.encoding === "base64") return Uint8Array.from(atob(b.text), (c) => c.charCodeAt(0));
  return new TextEncoder().encode(b.text);
}

function body(b, size, headers) {
  const view = h("div", { class: "body", "data-testid": "body" });
  if (!b) {
    view.append(h("p", { class: "muted" }, size ? "not stored" : "empty"));
    return view;
  }
  if (b.truncated) view.append(h("p", { class: "warn" }, `truncated: the first ${formatBytes(bytesOf(b).length)} of ${formatBytes(b.size)} were stored`));
  const type = (b.content_type || headerValue(headers, "content-type") || "").toLowerCase();
  const encoding = (headerValue(headers, "content-encoding") || "identity").toLowerCase();
  if (type.startsWith("image/") && encoding === "identity" && !b.truncated) {
    const url = URL.createObjectURL(new Blob([bytesOf(b)], { type: type.split(";")[0] }));
    view.append(h("img", { src: url, alt: "the body, as an image", class: "body-image" }));
    return view;
  }
  if (b.encoding === "utf-8") {
    if (type.includes("json") || /^\s*[{[]/.test(b.text)) {
      try {
        view.append(h("div", { class: "json" }, json(JSON.parse(b.text), null, 0)));
        return view;
      } catch {
        // not JSON after all: shown as text
      }
    }
    const text = b.text.length > TEXT_LIMIT ? `${b.text.slice(0, TEXT_LIMIT)}\n… (${b.text.length - TEXT_LIMIT} more characters)` : b.text;
    view.append(h("pre", { class: "text" }, text));
    return view;
  }
  view.append(h("pre", { class: "hex" }, hexdump(bytesOf(b))));
  return view;
}

// JSON as nested <details> elements: objects and arrays fold.
function json(value, key, depth) {
  const label = key === null ? null : h("span", { class: "j-key" }, `${JSON.stringify(key)}: `);
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    const [open, close] = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
    const details = h("details", { open: depth < 3 },
      h("summary", {}, label, open, h("span", { class: "j-count muted" }, ` ${entries.length} ${Array.isArray(value) ? "items" : "keys"} `), close),
      h("div", { class: "j-children" }, entries.map(([k, v]) => json(v, Array.isArray(value) ? null : k, depth + 1))));
    return details;
  }
  const kind = value === null ? "null" : typeof value;
  return h("div", { class: "j-leaf" }, label, h("span", { class: `j-${kind}` }, JSON.stringify(value)));
}

function hexdump(bytes) {
  const lines = [];
  const n = Math.min(bytes.length, HEX_LIMIT);
  for (let offset = 0; offset < n; offset += 16) {
    const chunk = bytes.slice(offset, Math.min(offset + 16, n));
    const hex = [...chunk].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = [...chunk].map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${offset.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  if (bytes.length > n) lines.push(`… ${bytes.length - n} more bytes`);
  return lines.join("\n");
}

// A shell word: single quotes, with ' as '\''.
function quote(text) {
  return `'${String(text).replaceAll("'", `'\\''`)}'`;
}

// The URL the client called: its Host header (the proxy's address) and the target.
export function proxyUrl(t) {
  if (/^https?:\/\//i.test(t.target)) return t.target;
  const host = headerValue(t.request.headers || [], "host") || location.host;
  return `http://${host}${t.target}`;
}

export function curl(t) {
  const method = t.method === "HEAD" ? ["--head"] : t.method === "GET" ? [] : ["-X", quote(t.method)];
  const parts = ["curl", ...method, quote(proxyUrl(t))];
  const omitted = [];
  for (const [name, value] of t.request.headers || []) {
    if (CURL_SKIP.has(name.toLowerCase())) continue;
    if (value === REDACTED) { omitted.push(name); continue; }
    parts.push("-H", quote(`${name}: ${value}`));
  }
  const b = t.request.body;
  let prefix = "";
  if (b && b.size) {
    if (b.encoding === "utf-8") parts.push("--data-binary", quote(b.text));
    else { prefix = `printf %s ${quote(b.text)} | base64 -d | `; parts.push("--data-binary", "@-"); }
  }
  const note = omitted.length ? `# redacted when stored, not sent: ${omitted.join(", ")}\n` : "";
  return note + prefix + parts.join(" ");
}
