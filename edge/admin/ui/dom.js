// DOM helpers. Every value from the gateway (config, keys, routes, errors)
// becomes text through textContent or a text node: nothing from the admin
// API is ever parsed as HTML, so a route named "<img onerror=...>" is
// shown, not run.

// h makes an element: h("td", {class: "num"}, "42", child). Attributes
// are set with setAttribute (on* handlers are refused: use the on option);
// strings and numbers become text nodes.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "on") {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k.startsWith("on")) {
      throw new Error("h: use {on: {...}} for event handlers");
    } else if (k === "text") {
      el.textContent = String(v);
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// replace empties el and appends children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// table builds a scrollable table: heads is a list of [label, class]
// or labels; rows are lists of cells (strings, nodes, or [content, class]).
export function table(heads, rows, attrs) {
  return h("div", { class: "table-wrap" },
    h("table", attrs || {},
      h("thead", {}, h("tr", {}, heads.map((x) => Array.isArray(x) ? h("th", { class: x[1], scope: "col" }, x[0]) : h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => Array.isArray(c) ? h("td", { class: c[1] }, c[0]) : h("td", {}, c)))))));
}

// fmt formats a number for a figure: "–" for none.
export function fmt(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en");
  return v.toFixed(digits);
}

// ms formats seconds as milliseconds.
export function ms(sec) {
  if (sec === null || sec === undefined) return "–";
  const m = sec * 1000;
  return (m < 10 ? m.toFixed(2) : m < 100 ? m.toFixed(1) : Math.round(m).toString()) + " ms";
}

let toastTimer;
// toast shows a short message in the polite live region.
export function toast(msg) {
  const el = document.getElementById("toast");
  el.textContent = msg;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.textContent = ""; }, 5000);
}

// badge is a small coloured label; kind is ok, warn or bad.
export function badge(text, kind) {
  return h("span", { class: "badge " + (kind || "") }, text);
}

// keepFocus runs fn, which re-renders part of the page, and gives the
// focus back to the element with the same id, so a keyboard user is not
// thrown to the top by a live update.
export function keepFocus(fn) {
  const id = document.activeElement && document.activeElement.id;
  fn();
  if (id && document.activeElement && document.activeElement.id !== id) {
    const el = document.getElementById(id);
    if (el) el.focus();
  }
}

// poll calls fn now and every ms until the returned stop is called.
export function poll(fn, ms) {
  let stopped = false, timer = null;
  const run = async () => {
    if (stopped) return;
    try { await fn(); } finally { if (!stopped) timer = setTimeout(run, ms); }
  };
  run();
  return () => { stopped = true; clearTimeout(timer); };
}

// slug makes a string safe for an id.
export function slug(s) {
  return String(s).replace(/[^A-Za-z0-9_-]/g, "_");
}
