// Helpers of the browser scenarios: Chromium through puppeteer-core, named
// steps that fail clearly, screenshots, the events file, page queries, and
// TOTP codes (RFC 6238) from a secret.

import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import puppeteer from "puppeteer-core";

export const VIEWPORT = { width: 1100, height: 800 };

/** A required environment variable. */
export function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`the environment variable ${name} must be set`);
  return value;
}

export const env = {
  baseUrl: need("BASE_URL").replace(/\/$/, ""),
  testEmail: process.env.TEST_EMAIL || "ada@example.com",
  googleEmail: process.env.GOOGLE_EMAIL || "",
  adminKey: process.env.ADMIN_KEY || "",
  publishableKey: process.env.PUBLISHABLE_KEY || "",
  eventsFile: process.env.EVENTS_FILE || "",
  shotsDir: process.env.SHOTS_DIR || "",
  chrome: process.env.CHROME || "/usr/bin/chromium",
};

// ---- the browser --------------------------------------------------------------

/** Launches headless Chromium with a fresh profile; `close()` removes it. */
export async function launch() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "storefront-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: env.chrome,
    headless: true,
    userDataDir,
    defaultViewport: VIEWPORT,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--window-size=${VIEWPORT.width},${VIEWPORT.height}`,
    ],
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => {});
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A new page of `context` (a browser or a browser context) at the test's
 * viewport. Script errors and Content-Security-Policy violations are kept
 * in `page.problems`; `checkPage` fails a step on them.
 */
export async function newPage(context) {
  const page = await context.newPage();
  await page.setViewport(VIEWPORT);
  page.setDefaultTimeout(15000);
  page.problems = [];
  page.on("pageerror", (e) => page.problems.push(`script error: ${e.message}`));
  page.on("console", (m) => {
    const text = m.text();
    if (m.type() !== "error") return;
    // A refused request (401, 400) is logged by Chromium; the page shows it.
    if (/Failed to load resource/.test(text)) return;
    page.problems.push(`console error: ${text}`);
  });
  return page;
}

/** Fails on script errors and CSP violations seen on `page` so far. */
export function checkPage(page) {
  if (page.problems.length) {
    const problems = page.problems.splice(0);
    throw new Error(`the page reported:\n  ${problems.join("\n  ")}`);
  }
}

/** Adds a DevTools virtual authenticator (a platform passkey) to `page`. */
export async function virtualAuthenticator(page) {
  const cdp = await page.createCDPSession();
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

// ---- steps and screenshots ---------------------------------------------------------

let stepCount = 0;
let current = null;

/** Runs one named step; a failure names it. */
export async function step(name, work) {
  stepCount += 1;
  current = name;
  const started = Date.now();
  process.stdout.write(`- ${name} … `);
  try {
    await work();
  } catch (e) {
    process.stdout.write("FAILED\n");
    const error = e instanceof Error ? e : new Error(String(e));
    error.step = name;
    throw error;
  }
  process.stdout.write(`ok (${Date.now() - started} ms)\n`);
}

/**
 * Writes a PNG of `page` into SHOTS_DIR (when set) as `name`: the whole page,
 * or with `{ fullPage: false }` what the viewport shows.
 */
export async function shot(page, name, { fullPage = true } = {}) {
  if (!env.shotsDir) return;
  fs.mkdirSync(env.shotsDir, { recursive: true });
  await page.screenshot({ path: path.join(env.shotsDir, name), fullPage });
}

/**
 * Runs a scenario: `scenario({browser})`, then closes the browser. The exit
 * code is 0 only if every step passed.
 */
export async function run(title, scenario) {
  console.log(`${title} against ${env.baseUrl}`);
  const { browser, close } = await launch();
  let failed = false;
  try {
    await scenario({ browser });
    console.log(`${stepCount} steps passed`);
  } catch (e) {
    failed = true;
    console.error(`\nstep "${e.step || current}" failed: ${e.stack || e.message}`);
    for (const p of browser.pages ? await browser.pages().catch(() => []) : []) {
      console.error(`  open page: ${p.url()}`);
    }
  } finally {
    await close();
  }
  process.exitCode = failed ? 1 : 0;
}

// ---- the events file ---------------------------------------------------------------

/** Every event in EVENTS_FILE so far: `{id, name, occurred_at, data}`. */
export function readEvents(file = env.eventsFile) {
  if (!file) throw new Error("EVENTS_FILE is not set");
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line));
}

/** Waits for an event named `name` for which `where(event)` holds; the newest such. */
export async function waitForEvent(name, where = () => true, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = readEvents().filter((e) => e.name === name && where(e));
    if (found.length) return found[found.length - 1];
    if (Date.now() > deadline) throw new Error(`no ${name} event within ${timeoutMs} ms`);
    await sleep(100);
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- page queries -----------------------------------------------------------------

/** Asserts `condition`, with `message` when it fails. */
export function expect(condition, message) {
  if (!condition) throw new Error(message);
}

/** The trimmed text of `selector`, or null when there is no such element. */
export async function text(page, selector) {
  return page.$eval(selector, (e) => e.textContent.trim()).catch(() => null);
}

/** Waits for `selector` to be shown (not hidden by itself or an ancestor). */
export async function visible(page, selector, timeout) {
  try {
    return await page.waitForSelector(selector, { visible: true, timeout });
  } catch {
    throw new Error(`${selector} was not shown on ${page.url()}${await shown(page)}`);
  }
}

/** Waits for `selector` to be hidden or gone. */
export async function hidden(page, selector, timeout) {
  try {
    await page.waitForSelector(selector, { hidden: true, timeout });
  } catch {
    throw new Error(`${selector} was still shown on ${page.url()}${await shown(page)}`);
  }
}

/** Waits until `selector`'s text matches `pattern`; answers the text. */
export async function textMatches(page, selector, pattern, timeout = 15000) {
  try {
    await page.waitForFunction(
      (sel, source, flags) => {
        const e = document.querySelector(sel);
        return !!e && !e.closest("[hidden]") && new RegExp(source, flags).test(e.textContent);
      },
      { timeout },
      selector,
      pattern.source,
      pattern.flags,
    );
  } catch {
    throw new Error(
      `${selector} did not read ${pattern} on ${page.url()}: it reads ${JSON.stringify(
        await text(page, selector),
      )}${await shown(page)}`,
    );
  }
  return text(page, selector);
}

/** Waits for the page to be at `pathname`. */
export async function at(page, pathname, timeout = 15000) {
  try {
    await page.waitForFunction((p) => window.location.pathname === p, { timeout }, pathname);
  } catch {
    throw new Error(`expected to be at ${pathname}, but the page is at ${page.url()}${await shown(page)}`);
  }
}

/** What the page's error and notice regions say, for failure messages. */
async function shown(page) {
  const error = await page
    .$eval("#error", (e) => (e.hidden ? "" : e.textContent.trim()))
    .catch(() => "");
  const notice = await page
    .$eval("#notice", (e) => (e.hidden ? "" : e.textContent.trim()))
    .catch(() => "");
  return `${error ? `\n  the page's error: ${error}` : ""}${notice ? `\n  the page's notice: ${notice}` : ""}`;
}

/** Fails if the page shows an error. */
export async function noError(page) {
  const error = await page.$eval("#error", (e) => (e.hidden ? "" : e.textContent.trim()));
  expect(!error, `the page shows an error: ${error}`);
}

/** Replaces the value of the input `selector` with `value`, as typed. */
export async function fill(page, selector, value) {
  await visible(page, selector);
  await page.$eval(selector, (e) => {
    e.value = "";
  });
  await page.type(selector, value);
}

/** Clicks `selector` once it is shown. */
export async function click(page, selector) {
  const handle = await visible(page, selector);
  await handle.click();
}

/** The stored token's claims on `page` (null when signed out). */
export async function claims(page) {
  return page.evaluate(() => {
    const token = localStorage.getItem("storefront.token");
    if (!token) return null;
    const b64 = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)));
  });
}

// ---- TOTP (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits) -----------------------------------

/** RFC 4648 base32 (spaces and padding ignored). */
export function base32Decode(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const clean = text.toUpperCase().replace(/[\s=]/g, "");
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of clean) {
    const i = alphabet.indexOf(c);
    if (i < 0) throw new Error(`not base32: ${JSON.stringify(c)}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** The TOTP code of `secret` (base32) at time step `counter`. */
export function totp(secret, counter, digits = 6) {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = crypto.createHmac("sha1", base32Decode(secret)).update(message).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, "0");
}

/** The current time step (30 s). */
export const timeStep = () => Math.floor(Date.now() / 1000 / 30);

/**
 * A code the server takes once after `lastStep` was spent: each step is
 * accepted once per factor and only after the last one spent, with one step
 * of tolerance either side. Waits for the clock when it has to.
 */
export async function nextTotp(secret, lastStep) {
  const wanted = Math.max(timeStep(), lastStep + 1);
  while (wanted > timeStep() + 1) await sleep(500);
  return { code: totp(secret, wanted), step: wanted };
}
