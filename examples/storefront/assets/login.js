// The steps of a login after its first answer, on the sign-in page: the
// verification step, the MFA step, creating the customer for a new
// identity, and keeping the final token.

import {
  ApiError,
  api,
  claimsOf,
  setToken,
  showError,
  showNotice,
  showStep,
  guarded,
} from "./api.js";
import { getPasskey } from "./webauthn.js";

/** Where the callback page leaves a login's answer for this page. */
export const PENDING_KEY = "storefront.pending";

const state = {
  // The step token a verification or MFA step is answered with.
  stepToken: null,
  challenge: null,
  verification: null,
  // The token of a new identity waiting for its customer.
  registration: null,
  // What the person typed: email, first_name, last_name.
  profile: {},
};

function busy(text) {
  document.getElementById("busy-text").textContent = text;
  showStep("step-busy");
}

/** Back to the first step, forgetting the login under way. */
export function restart() {
  state.stepToken = null;
  state.challenge = null;
  state.verification = null;
  state.registration = null;
  state.profile = {};
  showStep("step-start");
}

/**
 * Goes on from a login's answer: `{location}` (a redirect provider),
 * `{verification_required}`, `{mfa_required}`, or `{token}` (a customer's,
 * or a new identity's, which gets its customer first).
 */
export async function proceed(answer, profile = {}) {
  state.profile = { ...state.profile, ...profile };
  if (!answer || typeof answer !== "object") throw new Error("The server gave no answer.");
  if (typeof answer.location === "string") {
    busy("Taking you to the sign-in page of your provider…");
    window.location.assign(answer.location);
    return;
  }
  if (answer.verification_required) {
    showVerification(answer);
    return;
  }
  if (answer.mfa_required) {
    showMfa(answer);
    return;
  }
  if (typeof answer.token === "string") {
    const claims = claimsOf(answer.token);
    if (!claims) throw new Error("The server answered a token this page cannot read.");
    if (!claims.actor_id) {
      await needCustomer(answer.token, claims);
      return;
    }
    setToken(answer.token);
    busy("Signed in. Opening your account…");
    window.location.assign("/account");
    return;
  }
  throw new Error("The server answered something this page does not know.");
}

/** Refreshes a token: the next answer of the login (or the final token). */
async function refresh(token) {
  return api("POST", "/auth/token/refresh", { token });
}

// ---- a new identity: its customer -------------------------------------

async function needCustomer(token, claims) {
  const meta = claims.user_metadata || {};
  const email = state.profile.email || (typeof meta.email === "string" ? meta.email : "");
  const names = {
    first_name: state.profile.first_name || meta.given_name || undefined,
    last_name: state.profile.last_name || meta.family_name || undefined,
  };
  if (email) {
    await createCustomer(token, { email, ...names });
    return;
  }
  state.registration = token;
  document.getElementById("customer-first-name").value = names.first_name || "";
  document.getElementById("customer-last-name").value = names.last_name || "";
  showStep("step-customer");
}

async function createCustomer(token, fields) {
  busy("Creating your account…");
  const body = { email: fields.email };
  if (fields.first_name) body.first_name = fields.first_name;
  if (fields.last_name) body.last_name = fields.last_name;
  try {
    await api("POST", "/store/customers", { token, store: true, body });
  } catch (e) {
    // Linked in the meantime (another tab): the refresh below finds it.
    const linked = e instanceof ApiError && /already authenticated as a customer/i.test(e.message);
    if (!linked) {
      state.registration = token;
      showStep("step-customer");
      throw e;
    }
  }
  // The refresh may answer a step still owed (verification, MFA) instead.
  const answer = await refresh(token);
  const step = answer.verification_required || answer.mfa_required;
  if (!step && answer.token && !claimsOf(answer.token)?.actor_id) {
    throw new Error("The account was created, but the new token has no customer yet.");
  }
  state.registration = null;
  await proceed(answer);
}

// ---- the verification step --------------------------------------------

function showVerification(answer) {
  state.stepToken = answer.token;
  state.verification = answer.verification || null;
  const entity =
    (answer.verification && answer.verification.entity_id) ||
    state.profile.email ||
    claimsOf(answer.token)?.user_metadata?.email ||
    "";
  state.verification = {
    entity_id: entity,
    entity_type: (answer.verification && answer.verification.entity_type) || "email",
  };
  document.getElementById("verification-entity").textContent = entity || "your e-mail";
  showStep("step-verification");
}

async function requestVerification() {
  if (!state.verification || !state.verification.entity_id) {
    throw new Error("There is no e-mail to verify: start again.");
  }
  await api("POST", "/auth/verification/request", {
    token: state.stepToken,
    body: state.verification,
  });
  showNotice(`We sent a code to ${state.verification.entity_id}.`);
  document.getElementById("verification-code").focus();
}

async function confirmVerification(form) {
  const code = form.elements.code.value.trim();
  await api("POST", "/auth/verification/confirm", { body: { code } });
  showNotice("Thank you: your e-mail is verified.");
  form.reset();
  await proceed(await refresh(state.stepToken));
}

// ---- the MFA step -----------------------------------------------------

function showMfa(answer) {
  state.stepToken = answer.token;
  state.challenge = answer.mfa_challenge || {};
  const methods = state.challenge.methods || [];
  let first = null;
  for (const method of ["totp", "recovery_code"]) {
    const choice = document.getElementById(`mfa-choice-${method}`);
    const on = methods.includes(method);
    choice.hidden = !on;
    document.getElementById(`mfa-method-${method}`).checked = false;
    if (on && !first) first = method;
  }
  const form = document.getElementById("mfa-form");
  form.hidden = !first;
  if (first) document.getElementById(`mfa-method-${first}`).checked = true;
  document.getElementById("mfa-methods").hidden = methods.filter((m) => m !== "passkey").length < 2;
  document.getElementById("mfa-passkey").hidden = !(
    methods.includes("passkey") && state.challenge.passkey_options
  );
  labelCode();
  showStep("step-mfa");
}

function labelCode() {
  const method = document.querySelector('#mfa-form input[name="method"]:checked')?.value;
  const label = document.getElementById("mfa-code-label");
  const input = document.getElementById("mfa-code");
  if (method === "recovery_code") {
    label.textContent = "Recovery code";
    input.inputMode = "text";
  } else {
    label.textContent = "6-digit code from your authenticator app";
    input.inputMode = "numeric";
  }
}

async function verifyChallenge(body) {
  const id = encodeURIComponent(state.challenge.id);
  try {
    return await api("POST", `/auth/mfa/challenges/${id}/verify`, {
      token: state.stepToken,
      body,
    });
  } catch (e) {
    if (e instanceof ApiError && /has expired/i.test(e.message)) {
      // A new challenge for the same login.
      showMfa(await refresh(state.stepToken));
      throw new Error("That challenge expired; here is a new one. Please try again.");
    }
    throw e;
  }
}

async function answerWithCode(form) {
  const method = form.querySelector('input[name="method"]:checked')?.value || "totp";
  const code = form.elements.code.value.replace(/\s+/g, "");
  const answer = await verifyChallenge({ method, code });
  form.reset();
  await proceed(answer);
}

async function answerWithPasskey() {
  const credential = await getPasskey(state.challenge.passkey_options);
  await proceed(await verifyChallenge({ method: "passkey", credential }));
}

// ---- wiring ------------------------------------------------------------

/** `guarded`, and a failure while "busy" goes back to the first step. */
export function attempt(control, work) {
  return guarded(control, async () => {
    try {
      return await work();
    } catch (e) {
      if (!document.getElementById("step-busy").hidden) restart();
      throw e;
    }
  });
}

/** A form's submit runs `work(form)` through `attempt`. */
export function submit(form, work) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(form.querySelector('button[type="submit"]'), () => work(form));
  });
}

export function wireSteps() {
  submit(document.getElementById("mfa-form"), answerWithCode);
  for (const radio of document.querySelectorAll('#mfa-form input[name="method"]')) {
    radio.addEventListener("change", labelCode);
  }
  const passkey = document.getElementById("mfa-passkey");
  passkey.addEventListener("click", () => attempt(passkey, answerWithPasskey));
  const request = document.getElementById("verification-request");
  request.addEventListener("click", () => attempt(request, requestVerification));
  submit(document.getElementById("verification-form"), confirmVerification);
  submit(document.getElementById("customer-form"), async (form) => {
    const token = state.registration;
    if (!token) throw new Error("Start again: the sign-in has ended.");
    await createCustomer(token, {
      email: form.elements.email.value.trim(),
      first_name: form.elements.first_name.value.trim(),
      last_name: form.elements.last_name.value.trim(),
    });
  });
  for (const cancel of document.querySelectorAll("[data-cancel]")) {
    cancel.addEventListener("click", () => {
      showError(null);
      showNotice(null);
      restart();
    });
  }
}
