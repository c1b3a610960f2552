// The account page: the customer, how they sign in (linking a redirect
// provider), two-step verification (TOTP with a QR code, recovery codes),
// passkeys and devices. Every call carries the stored token; a refused
// token ends at the sign-in page (api.js).

import {
  ACTOR,
  LINKING_KEY,
  api,
  claimsOf,
  dropToken,
  el,
  getToken,
  guarded,
  providerLabel,
  setNotice,
  showError,
  showNotice,
  signedOut,
  takeNotice,
  when,
} from "./api.js";
import { createPasskey } from "./webauthn.js";

const page = { claims: null, identity: null, customer: null, providers: [], passkeys: [], factors: [] };

const authed = (method, path, body) =>
  api(method, path, body === undefined ? { auth: true } : { auth: true, body });

const providerPath = (provider, rest = "") =>
  `/auth/${ACTOR}/${encodeURIComponent(provider)}${rest}`;

function button(text, attributes, work) {
  const b = el("button", { type: "button", ...attributes }, text);
  b.addEventListener("click", () => guarded(b, work));
  return b;
}

function providerName(id) {
  const p = page.providers.find((x) => x.id === id);
  return p ? providerLabel(p) : id || "an unknown method";
}

// ---- profile ------------------------------------------------------------

async function loadCustomer() {
  const { customer } = await api("GET", "/store/customers/me", { auth: true, store: true });
  page.customer = customer;
  const name = [customer.first_name, customer.last_name].filter(Boolean).join(" ");
  document.getElementById("profile-name").textContent = name || "—";
  document.getElementById("profile-email").textContent = customer.email;
  document.getElementById("profile-id").textContent = customer.id;
}

// ---- sign-in methods -----------------------------------------------------

/** The provider identities of this account at `provider`. */
const linkedAt = (provider) =>
  ((page.identity && page.identity.provider_identities) || []).filter((p) => p.provider === provider);

function renderMethods() {
  document.getElementById("current-method").textContent = providerName(page.claims.auth_provider);
  const list = document.getElementById("method-list");
  list.replaceChildren();
  for (const p of page.providers) {
    const current = p.id === page.claims.auth_provider;
    const linked = linkedAt(p.id);
    const item = el("li", {
      "data-test": `method-${p.id}`,
      "data-linked": linked.length > 0 ? "true" : "false",
    });
    item.append(el("span", { class: "grow" }, providerLabel(p)));
    if (current) item.append(el("span", { class: "tag" }, "this sign-in"));
    if (p.identifier === "passkey") {
      const n = page.passkeys.length;
      item.append(el("span", { class: "muted" }, n === 1 ? "1 passkey" : `${n} passkeys`));
    } else if (linked.length) {
      // What the account is known by there: the e-mail, else the provider's id.
      const known = linked
        .map((l) => (l.user_metadata && l.user_metadata.email) || l.entity_id)
        .join(", ");
      item.append(el("span", { class: "muted" }, known), el("span", { class: "tag ok" }, "linked"));
    } else if (p.flow === "redirect") {
      item.append(
        button(`Link ${providerLabel(p)}`, { "data-test": `link-${p.id}` }, () => link(p)),
      );
    } else {
      item.append(el("span", { class: "muted" }, "not set up"));
    }
    list.append(item);
  }
}

/** The account's sign-in methods, read again (after a link, say). */
async function loadIdentity() {
  const { auth_identity } = await authed("GET", "/auth/identity");
  page.identity = auth_identity;
  renderMethods();
}

/** Links a redirect provider: its login started with this account's token. */
async function link(provider) {
  const callback_url = `${window.location.origin}/callback/${encodeURIComponent(provider.id)}`;
  const { location } = await authed("POST", providerPath(provider.id), { callback_url });
  sessionStorage.setItem(LINKING_KEY, provider.id);
  window.location.assign(location);
}

// ---- two-step verification ------------------------------------------------

const FACTOR_NAMES = { totp: "Authenticator app", passkey: "Passkey (second step)" };

async function loadFactors() {
  const { mfa_factors } = await authed("GET", "/auth/mfa/factors");
  page.factors = mfa_factors.filter((f) => f.status !== "disabled");
  const enabled = page.factors.filter((f) => f.status === "enabled");
  document.getElementById("mfa-status").textContent = enabled.length ? "On" : "Off";
  const list = document.getElementById("mfa-factors");
  list.replaceChildren();
  for (const f of page.factors) {
    const item = el("li", {
      "data-test": "mfa-factor",
      "data-factor-id": f.id,
      "data-status": f.status,
    });
    item.append(
      el("span", { class: "grow" }, FACTOR_NAMES[f.provider] || f.provider),
      el("span", { class: f.status === "enabled" ? "tag ok" : "tag" }, f.status),
      el("span", { class: "muted" }, `since ${when(f.created_at)}`),
      button(f.status === "enabled" ? "Turn off" : "Remove", { "data-test": "mfa-disable" }, () =>
        disableFactor(f),
      ),
    );
    list.append(item);
  }
  const hasTotp = enabled.some((f) => f.provider === "totp");
  document.getElementById("mfa-enrol").hidden = hasTotp;
  document.getElementById("recovery").hidden = enabled.length === 0;
}

let disabling = null;

async function disableFactor(factor, body) {
  try {
    await api("DELETE", `/auth/mfa/factors/${encodeURIComponent(factor.id)}`, {
      auth: true,
      body,
    });
  } catch (e) {
    if (/code is required/i.test(e.message)) {
      // The `challenge` disable policy: ask for a code.
      disabling = factor;
      const form = document.getElementById("mfa-disable-form");
      form.hidden = false;
      form.elements.code.focus();
      return;
    }
    throw e;
  }
  disabling = null;
  document.getElementById("mfa-disable-form").hidden = true;
  document.getElementById("recovery-panel").hidden = true;
  showNotice(factor.status === "enabled" ? "Two-step verification is off." : "Removed.");
  await loadFactors();
}

async function enrol() {
  // A set-up left unfinished holds the place of the new one.
  for (const f of page.factors.filter((x) => x.provider === "totp" && x.status === "pending")) {
    await authed("DELETE", `/auth/mfa/factors/${encodeURIComponent(f.id)}`);
  }
  const created = await authed("POST", "/auth/mfa/factors", { provider: "totp" });
  const r = await fetch("/storefront/qr", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ text: created.otpauth_url }),
  });
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).message || "No QR code.");
  const svg = await r.text();
  const qr = document.getElementById("mfa-qr");
  qr.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
  document.getElementById("mfa-secret").textContent = created.secret.replace(/(.{4})(?=.)/g, "$1 ");
  const panel = document.getElementById("mfa-enrol-panel");
  panel.dataset.factorId = created.mfa_factor.id;
  panel.hidden = false;
  document.getElementById("mfa-enrol").hidden = true;
  document.getElementById("mfa-verify-code").focus();
  await loadFactors();
  document.getElementById("mfa-enrol").hidden = true;
}

async function verifyEnrolment(form) {
  const panel = document.getElementById("mfa-enrol-panel");
  const id = panel.dataset.factorId;
  const code = form.elements.code.value.replace(/\s+/g, "");
  await authed("POST", `/auth/mfa/factors/${encodeURIComponent(id)}/verify`, { code });
  form.reset();
  panel.hidden = true;
  document.getElementById("mfa-secret").textContent = "";
  document.getElementById("mfa-qr").removeAttribute("src");
  showNotice("Two-step verification is on. Make recovery codes now, in case you lose the app.");
  await loadFactors();
  document.getElementById("recovery-generate").focus();
}

async function recoveryCodes() {
  const { recovery_codes } = await authed("POST", "/auth/mfa/recovery-codes", {});
  const list = document.getElementById("recovery-codes");
  list.replaceChildren(
    ...recovery_codes.map((code) => el("li", { "data-test": "recovery-code" }, el("code", {}, code))),
  );
  document.getElementById("recovery-panel").hidden = false;
}

// ---- passkeys --------------------------------------------------------------

async function loadPasskeys() {
  const { passkeys } = await authed("GET", "/auth/passkeys");
  page.passkeys = passkeys;
  const list = document.getElementById("passkey-list");
  list.replaceChildren();
  for (const p of passkeys) {
    const inputId = `passkey-name-${p.id}`;
    const form = el("form", { class: "inline", "data-test": "passkey-rename-form" });
    form.append(
      el("label", { for: inputId, class: "visually-hidden" }, `New name for ${p.name}`),
      el("input", { id: inputId, name: "name", value: p.name, required: true, "data-test": "passkey-rename-input" }),
      el("button", { type: "submit", "data-test": "passkey-rename" }, "Rename"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      guarded(form.querySelector("button"), async () => {
        const name = form.elements.name.value.trim();
        await authed("PATCH", `/auth/passkeys/${encodeURIComponent(p.id)}`, { name });
        showNotice(`Passkey renamed to “${name}”.`);
        await loadPasskeys();
      });
    });
    const item = el("li", { "data-test": "passkey", "data-passkey-id": p.id });
    item.append(
      el(
        "div",
        { class: "grow" },
        el("strong", { "data-test": "passkey-name" }, p.name),
        el("br"),
        el("span", { class: "muted" }, `added ${when(p.created_at)}, last used ${when(p.last_used_at)}`),
      ),
      form,
      button("Remove", { "data-test": "passkey-remove" }, async () => {
        await authed("DELETE", `/auth/passkeys/${encodeURIComponent(p.id)}`);
        showNotice(`Passkey “${p.name}” removed.`);
        await loadPasskeys();
      }),
    );
    list.append(item);
  }
  document.getElementById("passkey-none").hidden = passkeys.length > 0;
  renderMethods();
}

async function addPasskey() {
  const provider = page.providers.find((p) => p.identifier === "passkey");
  if (!provider) throw new Error("Passkeys are not offered here.");
  const path = providerPath(provider.id, "/register");
  const { options } = await authed("POST", path, { email: page.customer.email });
  const credential = await createPasskey(options);
  // The answer's token stays on this device: this page keeps its own.
  await authed("POST", path, { credential });
  await Promise.all([loadPasskeys(), loadDevices(), loadIdentity()]);
  showNotice("Passkey added: you can now sign in with it.");
}

// ---- devices ---------------------------------------------------------------

function describeAgent(ua) {
  if (!ua) return "Unknown browser";
  const browser =
    (/Edg\//.test(ua) && "Edge") ||
    (/(Chrome|Chromium)\//.test(ua) && "Chrome") ||
    (/Firefox\//.test(ua) && "Firefox") ||
    (/Safari\//.test(ua) && "Safari") ||
    "A browser";
  const system =
    (/Windows/.test(ua) && "Windows") ||
    (/Android/.test(ua) && "Android") ||
    (/(iPhone|iPad)/.test(ua) && "iOS") ||
    (/Mac OS X/.test(ua) && "macOS") ||
    (/Linux/.test(ua) && "Linux") ||
    "";
  return system ? `${browser} on ${system}` : browser;
}

async function loadDevices() {
  const { devices } = await authed("GET", "/auth/devices");
  const list = document.getElementById("device-list");
  list.replaceChildren();
  for (const d of devices) {
    const item = el("li", {
      "data-test": "device",
      "data-device-id": d.id,
      "data-current": d.current ? "true" : "false",
    });
    item.append(
      el(
        "div",
        { class: "grow" },
        el("strong", {}, describeAgent(d.user_agent)),
        d.current ? el("span", { class: "tag ok", "data-test": "device-current" }, "this device") : null,
        el("br"),
        el(
          "span",
          { class: "muted" },
          `${providerName(d.auth_provider)} · ${d.network || "unknown network"} · signed in ${when(d.created_at)} · last seen ${when(d.last_seen_at)}`,
        ),
      ),
    );
    if (d.current) {
      item.append(button("Sign out", { "data-test": "device-signout" }, signOut));
    } else {
      item.append(
        button("Sign out", { "data-test": "device-signout" }, async () => {
          await authed("DELETE", `/auth/devices/${encodeURIComponent(d.id)}`);
          showNotice("That device is signed out.");
          await loadDevices();
        }),
      );
    }
    list.append(item);
  }
  document.getElementById("devices-signout-others").hidden = devices.length < 2;
}

async function signOutOthers() {
  const { deleted } = await authed("DELETE", "/auth/devices?other=true");
  showNotice(
    deleted.length === 1 ? "Signed out of 1 other device." : `Signed out of ${deleted.length} other devices.`,
  );
  await loadDevices();
}

// ---- signing out ----------------------------------------------------------

async function signOut() {
  const token = getToken();
  if (token) {
    // Ends this device: the token is refused from now on, everywhere.
    await api("POST", "/auth/token/revoke", { token }).catch(() => {});
  }
  dropToken();
  setNotice("You are signed out.");
  window.location.assign("/");
}

// ---- the page ----------------------------------------------------------------

function wire() {
  const on = (id, work) => {
    const b = document.getElementById(id);
    b.addEventListener("click", () => guarded(b, work));
  };
  on("signout", signOut);
  on("mfa-enrol", enrol);
  on("recovery-generate", recoveryCodes);
  on("passkey-add", addPasskey);
  on("devices-signout-others", signOutOthers);
  document.getElementById("mfa-enrol-cancel").addEventListener("click", () => {
    document.getElementById("mfa-enrol-panel").hidden = true;
    document.getElementById("mfa-enrol").hidden = false;
    document.getElementById("mfa-enrol").focus();
  });
  const verify = document.getElementById("mfa-verify-form");
  verify.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(verify.querySelector('button[type="submit"]'), () => verifyEnrolment(verify));
  });
  const disable = document.getElementById("mfa-disable-form");
  disable.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(disable.querySelector('button[type="submit"]'), async () => {
      if (!disabling) return;
      await disableFactor(disabling, {
        method: disable.elements.method.value,
        code: disable.elements.code.value.replace(/\s+/g, ""),
      });
      disable.reset();
    });
  });
  document.getElementById("mfa-disable-cancel").addEventListener("click", () => {
    disabling = null;
    disable.hidden = true;
  });
}

async function start() {
  const token = getToken();
  page.claims = token && claimsOf(token);
  if (!page.claims || !page.claims.actor_id) {
    signedOut("Please sign in.");
    return;
  }
  wire();
  const notice = takeNotice();
  if (notice) showNotice(notice);
  const main = document.getElementById("main");
  await guarded(null, async () => {
    const { providers } = await api("GET", `/auth/${ACTOR}/providers`);
    page.providers = providers;
    await loadIdentity();
    await loadCustomer();
    await Promise.all([loadFactors(), loadPasskeys(), loadDevices()]);
    main.dataset.loaded = "true";
  });
  main.setAttribute("aria-busy", "false");
}

start().catch((e) => showError(e));
