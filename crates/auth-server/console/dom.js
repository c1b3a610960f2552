// Building the page from data without ever parsing it as HTML.

/** An element: `h("a", {href, class, onclick}, child, …)`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "text") {
      el.textContent = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** A time as the operator reads it (local), or a dash. */
export function when(iso) {
  if (!iso) return "—";
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return String(iso);
  const thisYear = t.getFullYear() === new Date().getFullYear();
  return t.toLocaleString(undefined, {
    year: thisYear ? undefined : "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
}

/** A `<time>` element for `iso`. */
export function time(iso) {
  return h("time", { datetime: iso || undefined }, when(iso));
}

/**
 * A table: `columns` are `[label, row => cell]`; an empty `rows` shows
 * `empty` instead.
 */
export function table(columns, rows, empty, attrs = {}) {
  if (!rows.length) return h("p", { class: "empty", ...attrs }, empty);
  return h("div", { class: "scroll" },
    h("table", attrs,
      h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, rows.map((row) =>
        h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row) ?? "—")))))));
}

/** A section with a heading. */
export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

/** A badge for an outcome or status. */
export function badge(text) {
  return h("span", { class: `badge badge-${String(text).replace(/[^a-z_]/g, "")}` }, text);
}
