// The sign-in page: e-mail and password, redirect providers (Google…),
// passkeys, the password reset request, and the steps of login.js.

import {
  ACTOR,
  LINKING_KEY,
  api,
  claimsOf,
  dropToken,
  el,
  getToken,
  providerLabel,
  showError,
  showNotice,
  takeNotice,
} from "./api.js";
import { createPasskey, getPasskey } from "./webauthn.js";
import { PENDING_KEY, attempt, proceed, restart, submit, wireSteps } from "./login.js";

/** The configured providers by kind: `{emailpass, passkey, redirect: [...]}`. */
const providers = { emailpass: null, passkey: null, redirect: [] };

const path = (provider, rest = "") =>
  `/auth/${ACTOR}/${encodeURIComponent(provider)}${rest}`;

async function loadProviders() {
  const { providers: list } = await api("GET", `/auth/${ACTOR}/providers`);
  for (const p of list) {
    if (p.identifier === "emailpass" && !providers.emailpass) providers.emailpass = p;
    else if (p.identifier === "passkey" && !providers.passkey) providers.passkey = p;
    else if (p.flow === "redirect") providers.redirect.push(p);
  }
  for (const form of document.querySelectorAll('[data-provider-form="emailpass"]')) {
    form.hidden = !providers.emailpass;
  }
  document.getElementById("passkey-signin").hidden = !providers.passkey;
  document.getElementById("passkey-signup-form").hidden = !providers.passkey;
  const social = document.getElementById("social-providers");
  social.replaceChildren();
  for (const p of providers.redirect) {
    const button = el(
      "button",
      { type: "button", class: "provider", "data-test": `provider-${p.id}`, "data-provider": p.id },
      `Continue with ${providerLabel(p)}`,
    );
    button.addEventListener("click", () => attempt(button, () => startRedirect(p)));
    social.append(button);
  }
  document.getElementById("alt-signin").hidden = !providers.passkey && providers.redirect.length === 0;
}

/** Starts a redirect login: the provider's page, then `/callback/{id}`. */
async function startRedirect(provider) {
  dropToken();
  sessionStorage.removeItem(LINKING_KEY);
  const callback_url = `${window.location.origin}/callback/${encodeURIComponent(provider.id)}`;
  await proceed(await api("POST", path(provider.id), { body: { callback_url } }));
}

async function signIn(form) {
  dropToken();
  const email = form.elements.email.value.trim();
  const password = form.elements.password.value;
  const answer = await api("POST", path(providers.emailpass.id), { body: { email, password } });
  form.elements.password.value = "";
  await proceed(answer, { email });
}

async function signUp(form) {
  dropToken();
  const profile = {
    email: form.elements.email.value.trim(),
    first_name: form.elements.first_name.value.trim(),
    last_name: form.elements.last_name.value.trim(),
  };
  const answer = await api("POST", path(providers.emailpass.id, "/register"), {
    body: { email: profile.email, password: form.elements.password.value },
  });
  form.elements.password.value = "";
  await proceed(answer, profile);
}

async function passkeySignUp(form) {
  dropToken();
  const email = form.elements.email.value.trim();
  const id = providers.passkey.id;
  const { options } = await api("POST", path(id, "/register"), { body: { email } });
  const credential = await createPasskey(options);
  await proceed(await api("POST", path(id, "/register"), { body: { credential } }), { email });
}

async function passkeySignIn() {
  dropToken();
  const id = providers.passkey.id;
  const { options } = await api("POST", path(id), { body: {} });
  const credential = await getPasskey(options);
  await proceed(await api("POST", path(id, "/callback"), { body: { credential } }));
}

async function requestReset(form) {
  const identifier = form.elements.identifier.value.trim();
  await api("POST", path(providers.emailpass.id, "/reset-password"), { body: { identifier } });
  form.reset();
  showNotice(
    `If an account uses ${identifier}, we sent it a link to choose a new password. The link works for 15 minutes.`,
  );
}

function start() {
  wireSteps();
  submit(document.getElementById("signin-form"), signIn);
  submit(document.getElementById("signup-form"), signUp);
  submit(document.getElementById("passkey-signup-form"), passkeySignUp);
  submit(document.getElementById("reset-request-form"), requestReset);
  const passkey = document.getElementById("passkey-signin");
  passkey.addEventListener("click", () => attempt(passkey, passkeySignIn));

  const notice = takeNotice();
  if (notice) showNotice(notice);

  // A login the callback page began: go on with it here.
  const pending = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  if (pending) {
    attempt(null, () => proceed(JSON.parse(pending)));
  } else {
    // Already signed in: the account page.
    const token = getToken();
    const claims = token && claimsOf(token);
    if (claims && claims.actor_id && claims.exp * 1000 > Date.now()) {
      window.location.replace("/account");
      return;
    }
    restart();
  }
  loadProviders().catch((e) => showError(e));
}

start();
