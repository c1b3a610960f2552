// The storefront's pages in headless Chromium, as a shopper uses them:
// e-mail and password (sign up, sign out, sign in, a password reset), a
// passkey added on the account page and used to sign in, a device signed
// out from another browser, TOTP enrolment and its challenge (and a
// recovery code), and Google through the fake identity provider.
//
// Environment: BASE_URL (http://localhost:PORT), TEST_EMAIL, GOOGLE_EMAIL,
// EVENTS_FILE, SHOTS_DIR, CHROME (see tests/browser.rs).

import {
  at,
  checkPage,
  claims,
  click,
  env,
  expect,
  fill,
  hidden,
  newPage,
  noError,
  nextTotp,
  run,
  shot,
  step,
  text,
  textMatches,
  virtualAuthenticator,
  visible,
  waitForEvent,
} from "./lib.mjs";

const FIRST = "Ada";
const LAST = "Lovelace";
let password = "violet kettle 42 orbit";
const NEW_PASSWORD = "amber lantern 77 comet";

/** The account page has loaded everything. */
async function accountLoaded(page, email) {
  await at(page, "/account");
  await visible(page, 'main[data-loaded="true"]');
  await textMatches(page, "#profile-email", new RegExp(`^${email.replace(/[.+]/g, "\\$&")}$`));
  await noError(page);
  checkPage(page);
}

async function signInWithPassword(page, email, pass) {
  await page.goto(`${env.baseUrl}/`);
  await fill(page, "#signin-email", email);
  await fill(page, "#signin-password", pass);
  await click(page, "#signin-submit");
}

async function signOut(page) {
  await click(page, "#signout");
  await at(page, "/");
  await textMatches(page, "#notice", /signed out/i);
  expect((await claims(page)) === null, "the token is still stored after signing out");
}

await run("storefront pages", async ({ browser }) => {
  const page = await newPage(browser);
  let customerId = null;

  await step("the sign-in page loads with every way to sign in", async () => {
    const response = await page.goto(`${env.baseUrl}/`);
    expect(response.status() === 200, `GET / answered ${response.status()}`);
    const csp = response.headers()["content-security-policy"] || "";
    expect(/script-src 'self'/.test(csp), `no strict CSP on the page: ${csp}`);
    await visible(page, "#signin-form");
    await visible(page, "#signup-form");
    await visible(page, '[data-test="provider-google"]');
    await visible(page, "#passkey-signin");
    await visible(page, "#passkey-signup-form");
    await hidden(page, "#error");
    checkPage(page);
    await shot(page, "storefront-sign-in.png");
  });

  await step("sign up with e-mail and password, verifying the e-mail", async () => {
    await fill(page, "#signup-first-name", FIRST);
    await fill(page, "#signup-last-name", LAST);
    await fill(page, "#signup-email", env.testEmail);
    await fill(page, "#signup-password", password);
    await click(page, "#signup-submit");
    // The harness asks e-mail and password customers to verify their e-mail.
    await visible(page, "#step-verification");
    await textMatches(page, "#verification-entity", new RegExp(env.testEmail.replace(/[.+]/g, "\\$&")));
    await shot(page, "storefront-verification.png");
    await click(page, "#verification-request");
    await textMatches(page, "#notice", /We sent a code/);
    const event = await waitForEvent(
      "auth.verification_requested",
      (e) => e.data.entity_id === env.testEmail,
    );
    await fill(page, "#verification-code", event.data.code);
    await click(page, "#verification-submit");
    await accountLoaded(page, env.testEmail);
    await textMatches(page, "#profile-name", /^Ada Lovelace$/);
    customerId = await text(page, "#profile-id");
    expect(/^cus_/.test(customerId), `the customer id is ${customerId}`);
    const c = await claims(page);
    expect(c.actor_id === customerId, `the token's actor_id is ${c.actor_id}, not ${customerId}`);
    await textMatches(page, "#current-method", /E-mail and password/);
    await textMatches(page, "#mfa-status", /^Off$/);
    await visible(page, '[data-test="device"][data-current="true"]');
    await shot(page, "storefront-account.png");
  });

  await step("sign out", async () => {
    await signOut(page);
    await shot(page, "storefront-signed-out.png");
  });

  await step("a wrong password is refused on the page", async () => {
    await signInWithPassword(page, env.testEmail, "not the password at all");
    await textMatches(page, "#error", /Invalid email or password/);
    await at(page, "/");
    checkPage(page);
    await shot(page, "storefront-sign-in-error.png");
  });

  await step("sign in with e-mail and password", async () => {
    await signInWithPassword(page, env.testEmail, password);
    await accountLoaded(page, env.testEmail);
    expect((await text(page, "#profile-id")) === customerId, "signed in to another customer");
  });

  await step("reset the password from the e-mailed link", async () => {
    await signOut(page);
    await click(page, "#reset-request summary");
    await fill(page, "#reset-email", env.testEmail);
    await click(page, "#reset-request-submit");
    await textMatches(page, "#notice", /we sent it a link/);
    await shot(page, "storefront-reset-requested.png");
    const event = await waitForEvent("auth.password_reset", (e) => e.data.entity_id === env.testEmail);
    await page.goto(`${env.baseUrl}/reset#token=${encodeURIComponent(event.data.token)}`);
    await visible(page, "#reset-form");
    expect(!page.url().includes("token"), `the token stayed in the address: ${page.url()}`);
    await fill(page, "#reset-password", NEW_PASSWORD);
    await fill(page, "#reset-password-again", NEW_PASSWORD);
    await shot(page, "storefront-reset.png");
    await click(page, "#reset-submit");
    await at(page, "/");
    await textMatches(page, "#notice", /password was changed/);
    password = NEW_PASSWORD;
    await signInWithPassword(page, env.testEmail, password);
    await accountLoaded(page, env.testEmail);
  });

  // The virtual authenticator belongs to this page: it keeps the passkey
  // across navigations.
  await virtualAuthenticator(page);

  await step("add a passkey on the account page", async () => {
    await visible(page, "#passkey-none");
    // The account's sign-in methods come from GET /auth/identity.
    await visible(page, '[data-test="method-emailpass"][data-linked="true"]');
    await visible(page, '[data-test="method-passkey"][data-linked="false"]');
    await visible(page, '[data-test="link-google"]');
    const devices = await page.$$eval('[data-test="device"]', (l) => l.length);
    await click(page, "#passkey-add");
    await textMatches(page, "#notice", /Passkey added/);
    await visible(page, '[data-test="passkey"]');
    const count = await page.$$eval('[data-test="passkey"]', (l) => l.length);
    expect(count === 1, `${count} passkeys listed`);
    await textMatches(page, '[data-test="method-passkey"]', /1 passkey/);
    await visible(page, '[data-test="method-passkey"][data-linked="true"]');
    const after = await page.$$eval('[data-test="device"]', (l) => l.length);
    expect(after === devices, `adding a passkey left ${after} devices, not ${devices}`);
    await noError(page);
    checkPage(page);
  });

  await step("rename the passkey", async () => {
    await fill(page, '[data-test="passkey-rename-input"]', "Test laptop");
    await click(page, '[data-test="passkey-rename"]');
    await textMatches(page, '[data-test="passkey-name"]', /^Test laptop$/);
    await shot(page, "storefront-passkeys.png");
  });

  await step("sign in with the passkey, no e-mail typed", async () => {
    await signOut(page);
    await click(page, "#passkey-signin");
    await accountLoaded(page, env.testEmail);
    expect((await text(page, "#profile-id")) === customerId, "the passkey signed in another customer");
    await textMatches(page, "#current-method", /Passkey/);
  });

  await step("end another browser's device from the account page", async () => {
    const other = await browser.createBrowserContext();
    const page2 = await newPage(other);
    try {
      await signInWithPassword(page2, env.testEmail, password);
      await accountLoaded(page2, env.testEmail);
      const device = (await claims(page2)).device_id;
      expect(device, "the other browser's token has no device_id");

      await page.reload();
      await accountLoaded(page, env.testEmail);
      const row = `[data-test="device"][data-device-id="${device}"]`;
      await visible(page, row);
      expect(
        (await page.$eval(row, (e) => e.dataset.current)) === "false",
        "the other browser's device is marked as this one",
      );
      await shot(page, "storefront-devices.png");
      await click(page, `${row} [data-test="device-signout"]`);
      await textMatches(page, "#notice", /device is signed out/);
      await hidden(page, row);

      await page2.reload();
      await at(page2, "/");
      await textMatches(page2, "#notice", /session has ended/i);
      expect((await claims(page2)) === null, "the other browser kept its token");
      checkPage(page2);
      await shot(page2, "storefront-signed-out-elsewhere.png");
    } finally {
      await other.close();
    }
    // This browser is still signed in.
    await page.reload();
    await accountLoaded(page, env.testEmail);
  });

  await step("sign up with Google through the identity provider", async () => {
    expect(env.googleEmail, "GOOGLE_EMAIL is not set");
    await signOut(page);
    await click(page, '[data-test="provider-google"]');
    // The fake identity provider sends the browser straight back to
    // /callback/google, which hands the answer to the sign-in page: a new
    // identity, so its customer is made from the token's e-mail.
    await accountLoaded(page, env.googleEmail);
    const googleCustomer = await text(page, "#profile-id");
    expect(googleCustomer !== customerId, "Google signed in to the e-mail account");
    await textMatches(page, "#current-method", /Google/);
    await textMatches(page, "#profile-name", /^Test User$/);
    await shot(page, "storefront-google-account.png");
  });

  await step("sign in with Google again: the same customer", async () => {
    const before = await text(page, "#profile-id");
    await signOut(page);
    await click(page, '[data-test="provider-google"]');
    await accountLoaded(page, env.googleEmail);
    expect((await text(page, "#profile-id")) === before, "a second customer was made");
    await signOut(page);
    checkPage(page);
  });

  let secret = null;
  let lastStep = 0;
  let recoveryCode = null;

  await step("turn on two-step verification with an authenticator app", async () => {
    await signInWithPassword(page, env.testEmail, password);
    await accountLoaded(page, env.testEmail);
    await click(page, "#mfa-enrol");
    await visible(page, "#mfa-enrol-panel");
    await page.waitForFunction(() => {
      const img = document.getElementById("mfa-qr");
      return img.complete && img.naturalWidth > 0 && img.src.startsWith("data:image/svg+xml");
    });
    secret = (await text(page, "#mfa-secret")).replace(/\s+/g, "");
    expect(/^[A-Z2-7]{16,}$/.test(secret), `the secret shown is ${secret}`);
    await shot(page, "storefront-mfa-enrol.png");
    const { code, step: used } = await nextTotp(secret, lastStep);
    await fill(page, "#mfa-verify-code", code);
    await click(page, "#mfa-verify-submit");
    lastStep = used;
    await textMatches(page, "#mfa-status", /^On$/);
    await hidden(page, "#mfa-enrol-panel");
    await visible(page, '[data-test="mfa-factor"][data-status="enabled"]');
    await noError(page);
    checkPage(page);
  });

  await step("make recovery codes", async () => {
    await click(page, "#recovery-generate");
    await visible(page, '[data-test="recovery-code"]');
    const codes = await page.$$eval('[data-test="recovery-code"]', (l) => l.map((e) => e.textContent.trim()));
    expect(codes.length === 10, `${codes.length} recovery codes`);
    recoveryCode = codes[0];
    await shot(page, "storefront-recovery-codes.png");
  });

  await step("the next sign-in asks for a TOTP code", async () => {
    await signOut(page);
    await signInWithPassword(page, env.testEmail, password);
    await visible(page, "#step-mfa");
    await visible(page, "#mfa-choice-totp");
    await visible(page, "#mfa-choice-recovery_code");
    await shot(page, "storefront-mfa-challenge.png");
    // A wrong code first: shown, and the step stays.
    const { code: right } = await nextTotp(secret, lastStep);
    const wrong = String((Number(right) + 500000) % 1000000).padStart(6, "0");
    await fill(page, "#mfa-code", wrong);
    await click(page, "#mfa-submit");
    await textMatches(page, "#error", /Invalid MFA challenge code/);
    await visible(page, "#step-mfa");
    await shot(page, "storefront-mfa-error.png");
    const { code, step: used } = await nextTotp(secret, lastStep);
    await fill(page, "#mfa-code", code);
    await click(page, "#mfa-submit");
    lastStep = used;
    await accountLoaded(page, env.testEmail);
    const c = await claims(page);
    expect(c.mfa_challenge_completed_at, "the token does not say the challenge was completed");
  });

  await step("a passkey sign-in answers the challenge with a recovery code", async () => {
    await signOut(page);
    await click(page, "#passkey-signin");
    await visible(page, "#step-mfa");
    await click(page, "#mfa-method-recovery_code");
    await textMatches(page, "#mfa-code-label", /Recovery code/);
    await fill(page, "#mfa-code", recoveryCode);
    await click(page, "#mfa-submit");
    await accountLoaded(page, env.testEmail);
    expect((await text(page, "#profile-id")) === customerId, "signed in to another customer");
    // Left signed in: a later script of the same run (the operator console's)
    // finds this account with a live device.
  });
});
