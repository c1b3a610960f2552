// The operator console: sign in with the management key, find identities,
// look after one, and read the audit log.

import { ApiError, api, hasKey, seg, setKey } from "./api.js";
import { badge, h, section, table, time } from "./dom.js";
import { dailyTotals, legend, localDay, signInChart } from "./chart.js";

const $ = (id) => document.getElementById(id);

function showError(message) {
  $("error").textContent = message || "";
}

function say(message) {
  $("status").textContent = message || "";
}

/** Shows `nodes` as the current view and moves focus to its heading. */
function render(...nodes) {
  const view = $("view");
  view.replaceChildren(...nodes);
  const heading = view.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

/** An API call; a refused key signs the console out. */
async function call(method, path, body) {
  try {
    return await api(method, path, body);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signOut("The API key was refused. Sign in again.");
    }
    throw e;
  }
}

/** Runs `work`, showing what failed instead of throwing. */
async function attempt(work) {
  showError("");
  try {
    return await work();
  } catch (e) {
    showError(e.message || String(e));
    return undefined;
  }
}

/** Asks before a change that cannot be undone. */
function confirmAction(text, label) {
  const dialog = $("confirm");
  const ok = $("confirm-ok");
  const cancel = $("confirm-cancel");
  $("confirm-text").textContent = text;
  ok.textContent = label;
  return new Promise((resolve) => {
    const done = (answer) => {
      ok.removeEventListener("click", yes);
      cancel.removeEventListener("click", no);
      dialog.removeEventListener("cancel", no);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const yes = () => done(true);
    const no = (event) => {
      if (event) event.preventDefault();
      done(false);
    };
    ok.addEventListener("click", yes);
    cancel.addEventListener("click", no);
    dialog.addEventListener("cancel", no);
    dialog.showModal();
    cancel.focus();
  });
}

// ---------------------------------------------------------------------------
// Signing in and out.

function signedIn(yes) {
  $("sign-in-view").hidden = yes;
  $("nav").hidden = !yes;
  $("view").hidden = !yes;
}

function signOut(message) {
  setKey(null);
  $("view").replaceChildren();
  signedIn(false);
  say("");
  showError(message || "");
  if (location.hash) history.replaceState(null, "", location.pathname);
  $("api-key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = $("api-key");
  setKey(input.value);
  try {
    // Any answer but 401 proves the key (404: the audit log is off).
    await api("GET", "/admin/audit/sign-ins?hours=1");
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 404) {
      setKey(null);
      showError(e.status === 401 ? "That key was refused." : e.message);
      input.select();
      return;
    }
  }
  input.value = "";
  showError("");
  signedIn(true);
  route();
}

// ---------------------------------------------------------------------------
// Identities.

let lastSearch = "";

function providerCell(identity) {
  return h("ul", { class: "plain" }, (identity.provider_identities || []).map((p) =>
    h("li", {}, h("strong", {}, p.provider), " ", p.entity_id,
      p.user_metadata && p.user_metadata.email && p.user_metadata.email !== p.entity_id
        ? ` (${p.user_metadata.email})` : "")));
}

function actors(identity) {
  return Object.entries(identity.app_metadata || {})
    .filter(([k, v]) => k.endsWith("_id") && typeof v === "string" && v)
    .map(([k, v]) => ({ type: k.slice(0, -3), id: v }));
}

function identityLink(id) {
  return h("a", { href: `#/identities/${seg(id)}`, class: "mono" }, id);
}

async function identitiesView() {
  const results = h("div", { id: "search-results" });
  const input = h("input", {
    id: "search-q", type: "search", name: "q", required: true, maxlength: 320,
    autocomplete: "off", spellcheck: "false", value: lastSearch,
  });
  const search = async (event) => {
    if (event) event.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    lastSearch = q;
    await attempt(async () => {
      const found = await call("GET", `/admin/auth-identities/search?q=${encodeURIComponent(q)}`);
      const list = found.auth_identities;
      say(`${list.length} ${list.length === 1 ? "identity" : "identities"} found.`);
      results.replaceChildren(table([
        ["Identity", (i) => identityLink(i.id)],
        ["Sign-in methods", providerCell],
        ["Actors", (i) => actors(i).map((a) => `${a.type}: ${a.id}`).join(", ") || "none"],
        ["Created", (i) => time(i.created_at)],
      ], list, `Nothing matches “${q}”.`, { id: "search-table" }));
    });
  };
  render(
    h("h1", {}, "Identities"),
    h("form", { id: "search-form", class: "card row", role: "search", onsubmit: search },
      h("label", { for: "search-q" }, "E-mail, provider id or identity id"),
      input,
      h("button", { type: "submit", id: "search" }, "Find")),
    results,
  );
  if (lastSearch) await search();
}

async function identityView(id) {
  render(h("h1", {}, "Identity"), h("p", {}, "Loading…"));
  const base = `/admin/auth-identities/${seg(id)}`;
  const [identity, devices, factors, passkeys, audit] = await Promise.allSettled([
    call("GET", base),
    call("GET", `${base}/devices`),
    call("GET", `${base}/mfa-factors`),
    call("GET", `${base}/passkeys`),
    call("GET", `/admin/audit?auth_identity_id=${encodeURIComponent(id)}&limit=20`),
  ]);
  if (!hasKey()) return;
  if (identity.status === "rejected") {
    render(h("h1", {}, "Identity"), h("p", { class: "empty" }, identity.reason.message),
      h("p", {}, h("a", { href: "#/identities" }, "Back to the search")));
    return;
  }
  const ident = identity.value.auth_identity;
  const failed = (r) => h("p", { class: "empty" }, r.reason.message);
  const reload = () => identityView(id);

  const act = (label, text, method, path, after, name) =>
    h("button", {
      type: "button", class: "danger", "aria-label": name,
      onclick: async () => {
        if (!(await confirmAction(text, label))) return;
        await attempt(async () => {
          await call(method, path);
          say(`${label}: done.`);
          await after();
        });
      },
    }, label);

  render(
    h("h1", {}, "Identity ", h("span", { class: "mono", id: "identity-id" }, ident.id)),
    h("dl", { class: "facts card" },
      h("dt", {}, "Created"), h("dd", {}, time(ident.created_at)),
      h("dt", {}, "Updated"), h("dd", {}, time(ident.updated_at)),
      h("dt", {}, "App metadata"),
      h("dd", {}, h("pre", {}, JSON.stringify(ident.app_metadata || {}, null, 2)))),
    section("Sign-in methods", table([
      ["Provider", (p) => p.provider],
      ["Entity id", (p) => h("span", { class: "mono" }, p.entity_id)],
      ["E-mail", (p) => (p.user_metadata && p.user_metadata.email) || "—"],
      ["Created", (p) => time(p.created_at)],
    ], ident.provider_identities || [], "No sign-in methods.", { id: "providers-table" })),
    section("Actors", table([
      ["Actor type", (a) => a.type],
      ["Actor id", (a) => h("span", { class: "mono" }, a.id)],
      ["", (a) => act("Unlink", `Unlink the ${a.type} ${a.id} from this identity? Its tokens stop working.`,
        "DELETE", `${base}/actors/${seg(a.type)}`, reload, `Unlink ${a.type} ${a.id}`)],
    ], actors(ident), "No actor linked.", { id: "actors-table" })),
    section("MFA factors", factors.status === "rejected" ? failed(factors) : table([
      ["Method", (f) => f.provider],
      ["Status", (f) => badge(f.status)],
      ["Created", (f) => time(f.created_at)],
      ["Updated", (f) => time(f.updated_at)],
    ], factors.value.mfa_factors, "No MFA factor.", { id: "factors-table" })),
    section("Passkeys", passkeys.status === "rejected" ? failed(passkeys) : table([
      ["Name", (p) => p.name],
      ["Created", (p) => time(p.created_at)],
      ["Last used", (p) => time(p.last_used_at)],
      ["Synced", (p) => (p.backed_up ? "yes" : "no")],
    ], passkeys.value.passkeys, "No passkey.", { id: "passkeys-table" })),
    section("Devices", devices.status === "rejected" ? failed(devices) : table([
      ["Device", (d) => h("span", { class: "mono" }, d.id)],
      ["Browser", (d) => h("span", { class: "ua" }, d.user_agent || "—")],
      ["Network", (d) => d.network || "—"],
      ["Signed in with", (d) => d.auth_provider],
      ["Since", (d) => time(d.created_at)],
      ["Last seen", (d) => time(d.last_seen_at)],
      ["", (d) => act("End device", `End device ${d.id}? Its session and tokens stop working at once.`,
        "DELETE", `${base}/devices/${seg(d.id)}`, reload, `End device ${d.id}`)],
    ], devices.value.devices, "No device signed in.", { id: "devices-table" })),
    section("Recent activity", audit.status === "rejected" ? failed(audit) : entriesTable(audit.value.entries, "audit-table"),
      h("p", {}, h("a", { href: `#/audit?identity=${seg(ident.id)}` }, "All of this identity's entries"))),
    h("section", { class: "card danger-zone" }, h("h2", {}, "Danger zone"),
      h("div", { class: "actions" },
        act("Sign out everywhere", "End every token, session and device of this identity? Passkeys and passwords stay.",
          "POST", `${base}/revoke`, reload),
        act("Delete identity", `Delete identity ${ident.id} and all its sign-in methods? This cannot be undone.`,
          "DELETE", base, async () => {
            location.hash = "#/identities";
          }))),
  );
}

// ---------------------------------------------------------------------------
// The audit log.

function entriesTable(entries, id) {
  return table([
    ["When", (e) => time(e.at)],
    ["Action", (e) => e.action],
    ["Outcome", (e) => badge(e.outcome)],
    ["Identity", (e) => (e.auth_identity_id ? identityLink(e.auth_identity_id) : "—")],
    ["Provider", (e) => e.provider || "—"],
    ["Network", (e) => e.network || "—"],
    ["Detail", (e) => (Object.keys(e.detail || {}).length
      ? h("ul", { class: "plain detail" }, Object.entries(e.detail).map(([k, v]) =>
        h("li", {}, h("span", { class: "key" }, `${k}: `),
          h("code", {}, typeof v === "string" ? v : JSON.stringify(v)))))
      : "—")],
  ], entries, "No entries.", { id });
}

const ACTIONS = [
  "login", "register", "link", "unlink", "mfa.enrolled", "mfa.disabled", "mfa.challenge",
  "recovery_codes.created", "recovery_codes.used", "reset.requested", "reset.completed",
  "password.changed", "passkey.added", "passkey.removed", "device.ended", "token.revoked",
  "identity.revoked", "identity.deleted", "import",
];

async function chartSection() {
  const holder = h("div", { id: "chart-holder" }, h("p", {}, "Loading…"));
  const box = section("Sign-ins per hour, last 7 days", holder);
  try {
    const data = await call("GET", "/admin/audit/sign-ins?hours=168");
    const days = dailyTotals(data.buckets);
    const today = localDay(new Date().toISOString());
    holder.replaceChildren(
      legend(),
      h("div", { class: "chart-box" }, signInChart(data)),
      ...(data.partial ? [h("p", { class: "hint" }, "The oldest hours are counted in part (too many entries).")] : []),
      h("details", {},
        h("summary", {}, "Sign-ins per day"),
        table([
          ["Day", (d) => d.day],
          ["Succeeded", (d) => String(d.succeeded)],
          ["Failed", (d) => String(d.failed)],
          ["Throttled", (d) => String(d.throttled)],
        ], days, "No sign-ins.", { id: "days-table" })),
      h("p", { id: "today" }, "Today: ",
        ...(() => {
          const d = days.find((x) => x.day === today) || { succeeded: 0, failed: 0, throttled: 0 };
          return [h("span", { id: "today-succeeded" }, String(d.succeeded)), " succeeded, ",
            h("span", { id: "today-failed" }, String(d.failed)), " failed, ",
            h("span", { id: "today-throttled" }, String(d.throttled)), " throttled."];
        })()),
    );
  } catch (e) {
    holder.replaceChildren(h("p", { class: "empty" }, e.message));
  }
  return box;
}

async function auditView(params) {
  const field = (id, label, input) => h("div", { class: "field" }, h("label", { for: id }, label), input);
  const identity = h("input", { id: "filter-identity", type: "text", spellcheck: "false",
    value: params.get("identity") || "" });
  const action = h("select", { id: "filter-action" },
    h("option", { value: "" }, "Any"),
    ACTIONS.map((a) => h("option", { value: a, selected: params.get("action") === a }, a)));
  const since = h("input", { id: "filter-since", type: "datetime-local" });
  const until = h("input", { id: "filter-until", type: "datetime-local" });
  const limit = h("select", { id: "filter-limit" },
    ["50", "100", "500"].map((n) => h("option", { value: n }, n)));
  const results = h("div", { id: "audit-results" });
  const more = h("button", { type: "button", id: "audit-more", hidden: true }, "Older entries");
  let cursor = null;
  let shown = [];

  const query = () => {
    const q = new URLSearchParams();
    if (identity.value.trim()) q.set("auth_identity_id", identity.value.trim());
    if (action.value) q.set("action", action.value);
    if (since.value) q.set("since", new Date(since.value).toISOString());
    if (until.value) q.set("until", new Date(until.value).toISOString());
    q.set("limit", limit.value);
    if (cursor) q.set("cursor", cursor);
    return q;
  };
  const load = async (append) => {
    await attempt(async () => {
      if (!append) {
        cursor = null;
        shown = [];
      }
      const page = await call("GET", `/admin/audit?${query()}`);
      shown = shown.concat(page.entries);
      cursor = page.next_cursor;
      results.replaceChildren(entriesTable(shown, "entries-table"));
      more.hidden = !cursor;
      say(`${shown.length} ${shown.length === 1 ? "entry" : "entries"} shown.`);
    });
  };

  const chart = h("div", { id: "chart-section" });
  render(
    h("h1", {}, "Audit log"),
    chart,
    h("form", {
      id: "audit-filters", class: "card filters",
      onsubmit: (e) => {
        e.preventDefault();
        load(false);
      },
    },
    field("filter-identity", "Identity id", identity),
    field("filter-action", "Action", action),
    field("filter-since", "From", since),
    field("filter-until", "Before", until),
    field("filter-limit", "Per page", limit),
    h("button", { type: "submit", id: "audit-apply" }, "Apply")),
    results,
    more,
  );
  more.addEventListener("click", () => load(true));
  chart.replaceChildren(await chartSection());
  await load(false);
}

// ---------------------------------------------------------------------------
// Routing by the fragment: #/identities, #/identities/{id}, #/audit?….

async function route() {
  if (!hasKey()) return;
  showError("");
  say("");
  const hash = location.hash.replace(/^#/, "") || "/identities";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const link of document.querySelectorAll("#nav a")) {
    const here = link.getAttribute("href").slice(1).split("/")[1] === parts[0];
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (parts[0] === "identities" && parts[1]) return identityView(parts[1]);
  if (parts[0] === "audit") return auditView(params);
  return identitiesView();
}

window.addEventListener("hashchange", route);
$("sign-in-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", () => signOut("Signed out."));
signedIn(false);
$("api-key").focus();
