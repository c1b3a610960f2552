// The storefront's client of the auth server and the store routes: the
// token kept in localStorage, fetch with JSON, the errors shown on the page.

const TOKEN_KEY = "storefront.token";
const NOTICE_KEY = "storefront.notice";

export const ACTOR = "customer";

/** Set while a redirect provider is being linked from the account page: its id. */
export const LINKING_KEY = "storefront.linking";

/** An answer of the API that is not a success: `{type, message}`. */
export class ApiError extends Error {
  constructor(status, body) {
    const message =
      (body && typeof body.message === "string" && body.message) ||
      `The server answered ${status}.`;
    super(message);
    this.status = status;
    this.type = (body && body.type) || "unknown_error";
    this.body = body;
  }
}

let configPromise = null;

/** `/storefront/config`: `{publishable_key, actor_type}`, fetched once. */
export function config() {
  if (!configPromise) {
    configPromise = fetch("/storefront/config", { headers: { accept: "application/json" } }).then(
      async (r) => {
        if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
        return r.json();
      },
    );
  }
  return configPromise;
}

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token) {
  localStorage.setItem(TOKEN_KEY, token);
}

export function dropToken() {
  localStorage.removeItem(TOKEN_KEY);
}

/** A message for the next page (the sign-in page shows it). */
export function setNotice(message) {
  sessionStorage.setItem(NOTICE_KEY, message);
}

export function takeNotice() {
  const notice = sessionStorage.getItem(NOTICE_KEY);
  sessionStorage.removeItem(NOTICE_KEY);
  return notice;
}

function base64UrlDecode(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** A JWT's claims (not verified: the server does that). */
export function claimsOf(token) {
  try {
    return JSON.parse(base64UrlDecode(token.split(".")[1]));
  } catch {
    return null;
  }
}

/**
 * Calls the API. Options: `body` (sent as JSON), `token` (a bearer token),
 * `auth: true` (send the stored token; a 401 refusing it drops it and goes
 * back to the sign-in page), `store: true` (send the publishable key).
 * Answers the parsed body; throws an ApiError for any status but 2xx.
 */
export async function api(method, path, options = {}) {
  const headers = { accept: "application/json" };
  let token = options.token;
  if (options.auth) {
    token = getToken();
    if (!token) {
      signedOut("Please sign in.");
      throw new ApiError(401, { message: "Unauthorized" });
    }
  }
  if (token) headers.authorization = `Bearer ${token}`;
  if (options.store) headers["x-publishable-api-key"] = (await config()).publishable_key;
  const init = { method, headers, credentials: "same-origin" };
  if (options.body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let body = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = { message: text };
    }
  }
  // A refused credential is a bare `{message}`; a provider's refusal (a
  // passkey ceremony that failed, say) has a `type` and is only shown.
  if (r.status === 401 && options.auth && !(body && body.type)) {
    signedOut("Your session has ended. Please sign in again.");
  }
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

/** Drops the token and goes to the sign-in page, which shows `message`. */
export function signedOut(message) {
  dropToken();
  setNotice(message);
  window.location.assign("/");
}

/** The page's alert region: shows an error (or clears it with null). */
export function showError(error) {
  const el = document.getElementById("error");
  if (!el) return;
  if (!error) {
    el.textContent = "";
    el.hidden = true;
    return;
  }
  const message = error instanceof Error ? error.message : String(error);
  el.textContent = message;
  el.hidden = false;
}

/** The page's status region (polite). */
export function showNotice(message) {
  const el = document.getElementById("notice");
  if (!el) return;
  el.textContent = message || "";
  el.hidden = !message;
}

/**
 * Runs `work` for a form or a button: clears the error, disables the
 * control while it runs, and shows what it throws (an ApiError's message).
 */
export async function guarded(control, work) {
  showError(null);
  if (control) control.disabled = true;
  try {
    return await work();
  } catch (e) {
    showError(e);
    return undefined;
  } finally {
    if (control) control.disabled = false;
  }
}

/** Shows exactly one of the page's step sections. */
export function showStep(id) {
  for (const section of document.querySelectorAll("[data-step]")) {
    section.hidden = section.id !== id;
  }
  const section = document.getElementById(id);
  const first = section && section.querySelector("input:not([type=hidden]), button");
  if (first) first.focus();
}

/** A text node helper: an element with text and attributes. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attributes)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A date for people: "6 Dec 2026, 10:42". */
export function when(iso) {
  if (!iso) return "never";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

const LABELS = { emailpass: "E-mail and password", google: "Google", github: "GitHub", passkey: "Passkey" };

/** What people call a provider: a short name by its kind, else its display name. */
export function providerLabel(provider) {
  return LABELS[provider.identifier] || provider.display_name || provider.id;
}
