// The operator console in headless Chromium: sign in with the management
// key, find the storefront scenario's customer (TEST_EMAIL), see its devices
// and audit entries, end a device, and read today's sign-ins off the chart.
// Run after storefront.mjs against the same server (tests/browser.rs).
//
// Env: BASE_URL, ADMIN_KEY, TEST_EMAIL, SHOTS_DIR, CHROME.

import { checkPage, env, expect, need, newPage, run, shot, step, text } from "./lib.mjs";

const BASE = env.baseUrl;
const KEY = need("ADMIN_KEY");
const EMAIL = need("TEST_EMAIL");

/** Rows of the table `selector` (0 when it shows its empty message). */
const rows = (page, selector) =>
  page.$$eval(`${selector} tbody tr`, (trs) => trs.length).catch(() => 0);

/** The management API, as the test's own check beside the page. */
async function admin(path) {
  const r = await fetch(`${BASE}${path}`, { headers: { "x-api-key": KEY } });
  expect(r.ok, `GET ${path} answered ${r.status}`);
  return r.json();
}

await run("operator console", async ({ browser }) => {
  const page = await newPage(browser);
  await step("the sign-in page opens, focused on the key", async () => {
    await page.goto(`${BASE}/admin/`, { waitUntil: "networkidle0" });
    expect(await page.$eval("#api-key", (el) => el === document.activeElement),
      "the key field does not have the focus");
    await shot(page, "console-sign-in.png");
  });

  await step("a wrong key is refused", async () => {
    await page.keyboard.type("not-the-key-at-all-0000");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelector("#error").textContent.includes("refused"));
    expect(await page.$eval("#nav", (el) => el.hidden), "the sections show without a key");
  });

  await step("the key signs in (typed, Enter)", async () => {
    await page.$eval("#api-key", (el) => { el.value = ""; });
    await page.focus("#api-key");
    await page.keyboard.type(KEY);
    await page.keyboard.press("Enter");
    await page.waitForSelector("#search-q", { visible: true });
    expect(!(await text(page, "#error")), `an error shows: ${await text(page, "#error")}`);
  });

  let identityId = "";
  await step("the storefront's customer is found by e-mail", async () => {
    await page.focus("#search-q");
    await page.keyboard.type(EMAIL.toUpperCase());
    await page.keyboard.press("Enter");
    await page.waitForSelector("#search-table a");
    identityId = (await text(page, "#search-table a")) || "";
    expect(identityId.startsWith("authid_"), `no identity link: ${identityId}`);
    const found = await admin(`/admin/auth-identities/search?q=${encodeURIComponent(EMAIL)}`);
    expect(found.auth_identities.some((i) => i.id === identityId),
      "the page shows an identity the API does not find");
    await shot(page, "console-search.png");
  });

  let devicesBefore = 0;
  await step("its page shows devices, methods and audit entries (keyboard)", async () => {
    await page.focus("#search-table a");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#identity-id");
    expect(await text(page, "#identity-id") === identityId, "another identity opened");
    await page.waitForSelector("#devices-table");
    devicesBefore = await rows(page, "#devices-table");
    const api = (await admin(`/admin/auth-identities/${identityId}/devices`)).devices.length;
    expect(devicesBefore >= 1 && devicesBefore === api,
      `devices shown ${devicesBefore}, the API has ${api}`);
    expect(((await text(page, "#providers-table")) || "").includes("emailpass"), "emailpass is not listed");
    const audit = (await text(page, "#audit-table")) || "";
    expect(audit.includes("login") && audit.includes("succeeded"), `no login in the audit entries: ${audit}`);
    await shot(page, "console-identity.png");
    await shot(page, "console-identity-view.png", { fullPage: false });
  });

  await step("a device is ended behind a confirmation", async () => {
    const button = (await page.$$("#devices-table tbody button"))[0];
    await button.focus();
    await page.keyboard.press("Enter");
    await page.waitForSelector("#confirm[open]");
    // Escape cancels: nothing ends.
    await page.keyboard.press("Escape");
    await page.waitForSelector("#confirm:not([open])");
    expect((await admin(`/admin/auth-identities/${identityId}/devices`)).devices.length === devicesBefore,
      "Escape ended a device");
    await button.focus();
    await page.keyboard.press("Enter");
    await page.waitForSelector("#confirm[open]");
    await shot(page, "console-confirm.png");
    await page.click("#confirm-ok");
    await page.waitForFunction(
      (n) => document.querySelectorAll("#devices-table tbody tr").length === n - 1
        || (n === 1 && !document.querySelector("#devices-table")),
      {}, devicesBefore);
    const left = (await admin(`/admin/auth-identities/${identityId}/devices`)).devices.length;
    expect(left === devicesBefore - 1, `${left} devices left of ${devicesBefore}`);
  });

  await step("the chart has today's sign-ins", async () => {
    await page.click("#nav-audit");
    await page.waitForSelector("#sign-in-chart");
    await page.waitForSelector("#entries-table");
    const succeededToday = Number(await text(page, "#today-succeeded"));
    const counts = await admin("/admin/audit/sign-ins?hours=168");
    const now = counts.buckets[counts.buckets.length - 1];
    expect(now.succeeded >= 1, "the API counts no sign-in this hour");
    expect(succeededToday >= now.succeeded,
      `the page says ${succeededToday} today, the API ${now.succeeded} this hour`);
    const drawn = await page.$$eval("#sign-in-chart .bucket", (gs) => gs.map((g) => ({
      start: g.dataset.start, succeeded: Number(g.dataset.succeeded), bars: g.querySelectorAll("rect").length,
    })));
    expect(drawn.length === 168, `${drawn.length} hours drawn`);
    const last = drawn[drawn.length - 1];
    expect(last.start === now.start && last.succeeded === now.succeeded && last.bars >= 1,
      `the current hour is drawn as ${JSON.stringify(last)}, the API says ${JSON.stringify(now)}`);
    await shot(page, "console-audit.png");
  });

  await step("the audit log filters by action", async () => {
    await page.select("#filter-action", "device.ended");
    await page.focus("#audit-apply");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => {
      const t = document.querySelector("#entries-table");
      return t && [...t.querySelectorAll("tbody tr")].every((r) => r.textContent.includes("device.ended"));
    });
    expect(await rows(page, "#entries-table") >= 1, "no device.ended entry");
  });

  await step("signing out forgets the key", async () => {
    await page.click("#sign-out");
    await page.waitForSelector("#api-key", { visible: true });
    expect(await page.$eval("#view", (el) => el.children.length === 0), "the view still shows data");
  });

  checkPage(page);
});
