// The storage's JSON API (/api), as the pages use it. Same origin: the browser sends the basic
// auth credentials it was given for the page.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function call(method, path, params) {
  const url = path + (params && String(params) ? `?${params}` : "");
  const response = await fetch(url, { method, headers: { Accept: "application/json" } });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, (body && body.message) || response.statusText);
  }
  return body;
}

export const api = {
  stats: (params) => call("GET", "/api/stats", params),
  facets: (params) => call("GET", "/api/facets", params),
  transactions: (params) => call("GET", "/api/transactions", params),
  transaction: (id) => call("GET", `/api/transactions/${encodeURIComponent(id)}`),
  favourite: (id, on) =>
    call(on ? "PUT" : "DELETE", `/api/transactions/${encodeURIComponent(id)}/favourite`),
  replay: (id) => call("POST", `/api/transactions/${encodeURIComponent(id)}/replay`),
  system: () => call("GET", "/api/system"),
};

export function harUrl(params) {
  const query = String(params);
  return "/api/transactions.har" + (query ? `?${query}` : "");
}

// One EventSource for the whole page; pages subscribe and unsubscribe.
const listeners = new Set();
let source = null;

export function onTransaction(listener) {
  listeners.add(listener);
  connect();
  return () => listeners.delete(listener);
}

function connect() {
  if (source) return;
  const indicator = document.getElementById("live");
  source = new EventSource("/api/transactions/stream");
  source.addEventListener("open", () => indicator && indicator.classList.remove("off"));
  source.addEventListener("error", () => indicator && indicator.classList.add("off"));
  source.addEventListener("transaction", (event) => {
    let item;
    try {
      item = JSON.parse(event.data);
    } catch {
      return;
    }
    for (const listener of listeners) listener(item);
  });
}
