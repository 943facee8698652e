// The dashboard: a single page with hash routes, each page a module building its own DOM.
//   #/                      overview       #/transactions?filters   the list
//   #/transactions/<id>     one of them    #/system                 the system
import { detail } from "./detail.js";
import { clear, h } from "./dom.js";
import { overview } from "./overview.js";
import { system } from "./system.js";
import { transactions } from "./transactions.js";

const main = document.getElementById("main");
let cleanup = [];
let generation = 0;

async function route() {
  for (const undo of cleanup) undo();
  cleanup = [];
  const mine = ++generation;
  const [path, search] = (location.hash.replace(/^#/, "") || "/").split("?");
  const query = new URLSearchParams(search || "");
  const page = document.createElement("div");
  page.className = "page";
  let name = "overview";
  try {
    const match = path.match(/^\/transactions\/([0-9a-f]+)$/);
    if (match) { name = "transactions"; await detail(page, match[1]); }
    else if (path === "/transactions") { name = "transactions"; await transactions(page, query, cleanup); }
    else if (path === "/system") { name = "system"; await system(page); }
    else await overview(page, query, cleanup);
  } catch (error) {
    clear(page).append(h("div", { class: "card error" }, h("h1", {}, "Cannot show this page"), h("p", {}, String(error.message || error))));
  }
  if (mine !== generation) return; // a newer navigation won
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.page === name);
  clear(main).append(page);
  main.dataset.page = name;
  main.dataset.ready = String(mine);
}

window.addEventListener("hashchange", route);
route();
