// Browser test of the donor and admin pages: headless Chromium (Debian's, no download)
// driven by playwright-core, accessibility checked with axe-core, card payments confirmed
// through localstripe's API. See README.md for how to run it.
//
// Prints `ok - NAME` or `not ok - NAME: REASON` per step, then `N passed, M failed`;
// exits 1 if any step failed.

import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import path from 'node:path';
import os from 'node:os';

const require = createRequire(import.meta.url);
const AXE_PATH = require.resolve('axe-core/axe.min.js');

const APP = (process.env.APP_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const STRIPE = (process.env.STRIPE_URL || 'http://127.0.0.1:8420').replace(/\/+$/, '');
const STRIPE_KEY = process.env.STRIPE_SECRET_KEY || 'sk_test_crowdledger';
const ADMIN_EMAIL = process.env.ADMIN_EMAIL || '';
const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD || '';
// A second admin, who approves the refunds the first one asks above the threshold.
const SECOND_ADMIN_EMAIL = process.env.SECOND_ADMIN_EMAIL || '';
// Where the test's SMTP server (aiosmtpd) writes each message it receives, as JSON.
const SMTP_DIR = process.env.SMTP_DIR || '';
const SHOT_DIR = path.resolve(process.env.SHOT_DIR || path.join(os.tmpdir(), 'crowdledger-shots'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const DONOR_VIEWPORT = { width: 360, height: 800 };
const CJK = /[\u3400-\u9fff]/;

mkdirSync(SHOT_DIR, { recursive: true });

let passed = 0;
let failed = 0;

function oneLine(s) {
  return String(s).replace(/\s+/g, ' ').trim().slice(0, 600);
}

async function step(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`not ok - ${name}: ${oneLine(err && err.message ? err.message : err)}`);
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

// ---- HTTP helpers (the app and localstripe) ------------------------------------------

async function httpJson(url, init = {}) {
  const r = await fetch(url, init);
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (_) {
    json = null;
  }
  return { status: r.status, json, text };
}

const stripeAuth = `Basic ${Buffer.from(`${STRIPE_KEY}:`).toString('base64')}`;

async function stripe(method, p, form) {
  const r = await httpJson(`${STRIPE}${p}`, {
    method,
    headers: { Authorization: stripeAuth, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: form ? new URLSearchParams(form).toString() : undefined,
  });
  if (r.status >= 300) throw new Error(`localstripe ${method} ${p} -> ${r.status} ${oneLine(r.text)}`);
  return r.json;
}

/** Every PaymentIntent id at localstripe (paged, whatever its sort order). */
async function paymentIntentIds() {
  const ids = [];
  let after = null;
  for (let page = 0; page < 100; page += 1) {
    const q = new URLSearchParams({ limit: '100' });
    if (after) q.set('starting_after', after);
    const list = await stripe('GET', `/v1/payment_intents?${q}`);
    const data = (list && list.data) || [];
    for (const pi of data) ids.push(pi.id);
    if (!list.has_more || data.length === 0) break;
    after = data[data.length - 1].id;
  }
  return ids;
}

async function fundDoc() {
  const r = await httpJson(`${APP}/api/fund`, { headers: { Accept: 'application/json' } });
  if (r.status !== 200 || !r.json) throw new Error(`GET /api/fund -> ${r.status} ${oneLine(r.text)}`);
  return r.json;
}

// ---- Second factors (RFC 6238, as an authenticator app computes them) -------------------

/** Each account's second factor as this run knows it: the secret, the last 30-second step
 *  whose code was used (the server accepts each code once), and unused recovery codes. */
const factors = new Map();

function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/=+$/, '').toUpperCase()) {
    value = ((value << 5) | alphabet.indexOf(c)) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

function totpAt(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1000000;
  return String(n).padStart(6, '0');
}

const nowStep = () => Math.floor(Date.now() / 1000 / 30);

/** A code the server has not seen: the app's code of a step not used yet (one step either
 *  side of now is accepted), else a recovery code. */
function nextCode(email) {
  const f = factors.get(email);
  if (!f) throw new Error(`no second factor known for ${email}`);
  const now = nowStep();
  const s = Math.max(f.lastStep + 1, now - 1);
  if (s <= now + 1) {
    f.lastStep = s;
    return totpAt(f.secret, s);
  }
  const code = f.codes.pop();
  if (!code) throw new Error(`no recovery code left for ${email}`);
  return code;
}

async function postJson(p, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  return httpJson(`${APP}${p}`, { method: 'POST', headers, body: JSON.stringify(body) });
}

/** Signs in through the API: the password, then enrolment (first time) or a code. */
async function apiLogin(email) {
  const r = await postJson('/api/auth/login', { email, password: ADMIN_PASSWORD });
  if (r.status !== 200 || !r.json) throw new Error(`POST /api/auth/login -> ${r.status} ${oneLine(r.text)}`);
  if (r.json.mfa_required) {
    const m = await postJson('/api/auth/mfa', { mfa_token: r.json.mfa_token, code: nextCode(email) });
    if (m.status !== 200 || !m.json) throw new Error(`POST /api/auth/mfa -> ${m.status} ${oneLine(m.text)}`);
    return m.json.access_token;
  }
  if (r.json.enrolment_required) {
    const enrolling = r.json.access_token;
    const e = await postJson('/api/auth/2fa/enrol', {}, enrolling);
    if (e.status !== 200) throw new Error(`enrol -> ${e.status} ${oneLine(e.text)}`);
    const step = nowStep();
    const c = await postJson('/api/auth/2fa/confirm', { code: totpAt(e.json.secret, step) }, enrolling);
    if (c.status !== 200) throw new Error(`confirm -> ${c.status} ${oneLine(c.text)}`);
    factors.set(email, { secret: e.json.secret, lastStep: step, codes: c.json.recovery_codes.slice() });
    return c.json.access_token;
  }
  return r.json.access_token;
}

let adminSession = null;

/** The first admin's API token, signed in again every few minutes (dangerous actions need a
 *  password or code from the last ten). */
async function adminToken() {
  if (!adminSession || Date.now() - adminSession.at > 4 * 60 * 1000) {
    adminSession = { token: await apiLogin(ADMIN_EMAIL), at: Date.now() };
  }
  return adminSession.token;
}

/** Signs in on the admin page: the password, then a code when the page asks for one. */
async function pageSignIn(page, email) {
  await page.fill('#login-email', email);
  await page.fill('#login-password', ADMIN_PASSWORD);
  await page.click('#login-submit');
  await page.locator('#dashboard:visible, #mfa-section:visible, #enrol-section:visible').first().waitFor({ timeout: 10000 });
  if (await page.locator('#enrol-section').isVisible()) {
    // First sign-in of an admin: enrol as the page asks (see the second admin's step).
    await page.locator('#enrol-secret', { hasText: /[A-Z2-7]{32}/ }).waitFor({ timeout: 10000 });
    const secret = (await page.locator('#enrol-secret').innerText()).trim();
    const step = nowStep();
    await page.fill('#enrol-code', totpAt(secret, step));
    await page.click('#enrol-submit');
    await page.locator('#recovery-box').waitFor({ state: 'visible', timeout: 10000 });
    const codes = (await page.locator('#recovery-codes li').allInnerTexts()).map((c) => c.trim());
    factors.set(email, { secret, lastStep: step, codes });
    await page.click('#recovery-done');
  }
  if (await page.locator('#mfa-section').isVisible()) {
    const code = nextCode(email);
    await page.fill('#mfa-code', code);
    await page.click('#mfa-submit');
    await page.locator('#dashboard').waitFor({ state: 'visible', timeout: 10000 }).catch(async () => {
      throw new Error(`code ${code} not accepted: #mfa-error "${oneLine(await page.locator('#mfa-error').innerText())}"`);
    });
  }
}

async function adminPut(token, p, body) {
  const r = await httpJson(`${APP}${p}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  if (r.status >= 300) throw new Error(`PUT ${p} -> ${r.status} ${oneLine(r.text)}`);
  return r.json;
}

// ---- Browser --------------------------------------------------------------------------

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-quic',
  ],
});

/** A page that records script errors and CSP refusals. */
async function newPage(contextOptions = {}) {
  const context = await browser.newContext({ viewport: DONOR_VIEWPORT, ...contextOptions });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    const text = m.text();
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(text)) {
      page.problems.push(`CSP: ${text}`);
    }
  });
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOT_DIR, name), fullPage: true });
}

async function i18n(page) {
  return page.evaluate(() => JSON.parse(document.body.dataset.i18n || '{}'));
}

async function visibleText(page, selector) {
  return oneLine(await page.locator(selector).innerText());
}

async function fillDonor(page, amount) {
  await page.fill('#amount-custom', amount);
  await page.fill('#donor-name', 'Browser Test 测试');
  await page.fill('#email', 'browser-test@example.org');
}

// ---- Preflight: the steps below need intake open --------------------------------------

try {
  const f = await fundDoc();
  if (!f.intake || !f.intake.accepting) {
    const token = await adminToken();
    await adminPut(token, '/api/admin/intake', { accepting: true, message: '' });
    console.log('# intake was not open; reopened it through the API before the steps');
  }
} catch (e) {
  console.log(`# preflight: ${oneLine(e.message)}`);
}

// 1. The donor page in both languages.
await step('donor page renders in English and Chinese', async () => {
  const fund = await fundDoc();
  for (const lang of ['en', 'zh-CN']) {
    const page = await newPage();
    try {
      const resp = await page.goto(`${APP}/?lang=${lang}`);
      assert(resp && resp.status() === 200, `GET /?lang=${lang} -> ${resp && resp.status()}`);
      await page.waitForLoadState('load');
      const htmlLang = await page.getAttribute('html', 'lang');
      assert(htmlLang === lang, `<html lang> is ${JSON.stringify(htmlLang)} on /?lang=${lang}`);
      assert((await page.locator('h1').count()) === 1, 'the page must have exactly one <h1>');
      const h1 = await visibleText(page, 'h1');
      assert(h1.includes(fund.name), `h1 "${h1}" lacks the fund name "${fund.name}"`);
      assert((await page.locator('main').count()) === 1, 'no <main> landmark');
      const other = lang === 'en' ? 'zh-CN' : 'en';
      const switchLink = page.locator(`a[href="?lang=${other}"]`);
      assert((await switchLink.count()) === 1, `no language switch link to ?lang=${other}`);
      const bodyText = await page.locator('body').innerText();
      if (lang === 'zh-CN') assert(CJK.test(bodyText), 'no Chinese text on the zh-CN page');
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
      assert(overflow <= DONOR_VIEWPORT.width, `page is ${overflow}px wide at a 360px viewport`);
      const fontSize = await page.evaluate(() => parseFloat(getComputedStyle(document.body).fontSize));
      assert(fontSize >= 20, `body text is ${fontSize}px`);
      if (await page.locator('#donate-form').count()) {
        const h = await page.locator('#submit').evaluate((b) => b.getBoundingClientRect().height);
        assert(h >= 48, `submit button is ${h}px tall`);
        assert(await page.locator('#submit').isEnabled(), 'submit button stays disabled (script not running?)');
      }
      await shot(page, `donor-${lang}.png`);
      assert(page.problems.length === 0, page.problems.join(' | '));
    } finally {
      await page.context().close();
    }
  }
});

// 2. An invalid amount is refused in the page language and reaches no PaymentIntent.
await step('invalid amount shows a localized error and creates no PaymentIntent', async () => {
  const before = (await paymentIntentIds()).length;
  for (const lang of ['en', 'zh-CN']) {
    const page = await newPage();
    try {
      await page.goto(`${APP}/?lang=${lang}`);
      assert(await page.locator('#donate-form').count(), 'no #donate-form (intake not open?)');
      await fillDonor(page, '0.001');
      await page.click('#submit');
      await page.locator('#error-amount').waitFor({ state: 'visible', timeout: 5000 });
      const text = await visibleText(page, '#error-amount');
      const t = await i18n(page);
      const prefix = String(t.error_invalid_amount || '').split('{')[0].trim();
      assert(prefix && text.includes(prefix), `#error-amount says "${text}", expected "${t.error_invalid_amount}"`);
      if (lang === 'zh-CN') assert(CJK.test(text), `#error-amount is not Chinese: "${text}"`);
      const invalid = await page.getAttribute('#amount-custom', 'aria-invalid');
      assert(invalid === 'true', '#amount-custom lacks aria-invalid="true"');
      const described = (await page.getAttribute('#amount-custom', 'aria-describedby')) || '';
      assert(described.split(/\s+/).includes('error-amount'), '#amount-custom is not described by #error-amount');
      assert(await page.locator('#card-step').isHidden(), '#card-step shown after an invalid amount');
      // The server must refuse it too, whatever the page lets through.
      const server = await page.evaluate(async (l) => {
        const r = await fetch('/api/donations', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'Idempotency-Key': `browser-test-invalid-${l}-${Date.now()}` },
          body: JSON.stringify({ amount: '0.001', donor_name: 'X', email: 'x@example.org', anonymous: false, locale: l }),
        });
        let j = null;
        try {
          j = await r.json();
        } catch (_) {
          j = null;
        }
        return { status: r.status, code: j && j.code, field: j && j.field };
      }, lang);
      assert(
        server.status === 422 && server.code === 'invalid_amount',
        `POST /api/donations amount "0.001" -> ${server.status} ${server.code}`,
      );
    } finally {
      await page.context().close();
    }
  }
  const after = (await paymentIntentIds()).length;
  assert(after === before, `localstripe has ${after - before} new PaymentIntent(s)`);
});

// 3. A valid gift: card step, PaymentIntent confirmed at localstripe, thank-you view.
await step('valid gift reaches the card step and the thank-you view', async () => {
  const before = new Set(await paymentIntentIds());
  const page = await newPage();
  try {
    await page.goto(`${APP}/?lang=en`);
    assert(await page.locator('#donate-form').count(), 'no #donate-form (intake not open?)');
    await fillDonor(page, '25');
    await page.click('#submit');
    try {
      await page.locator('#card-step').waitFor({ state: 'visible', timeout: 15000 });
    } catch (_) {
      const err = await page.locator('#error-form').innerText().catch(() => '');
      const amountErr = await page.locator('#error-amount').innerText().catch(() => '');
      throw new Error(`#card-step not shown; #error-form "${oneLine(err)}" #error-amount "${oneLine(amountErr)}"`);
    }
    assert(await page.locator('#donate-form').isHidden(), '#donate-form still visible on the card step');
    const payText = await visibleText(page, '#pay');
    assert(/25/.test(payText), `#pay says "${payText}"`);
    // Give Stripe.js a moment to mount its card element, for the picture.
    await page.locator('#card-element input, #card-element iframe').first().waitFor({ timeout: 5000 }).catch(() => {});
    await shot(page, 'card-step.png');
    const fresh = (await paymentIntentIds()).filter((id) => !before.has(id));
    assert(fresh.length === 1, `expected 1 new PaymentIntent at localstripe, found ${fresh.length}`);
    const pi = fresh[0];
    const intent = await stripe('GET', `/v1/payment_intents/${pi}`);
    assert(Number(intent.amount) === 2500, `PaymentIntent amount is ${intent.amount}, expected 2500`);
    await stripe('POST', `/v1/payment_intents/${pi}`, { payment_method: 'pm_card_visa' });
    const confirmed = await stripe('POST', `/v1/payment_intents/${pi}/confirm`);
    assert(confirmed.status === 'succeeded', `confirm left the PaymentIntent ${confirmed.status}`);
    try {
      await page.locator('#thanks').waitFor({ state: 'visible', timeout: 15000 });
    } catch (_) {
      const cardErr = await page.locator('#card-error').innerText().catch(() => '');
      throw new Error(`#thanks not visible 15 s after the payment succeeded; #card-error "${oneLine(cardErr)}"`);
    }
    const thanks = await visibleText(page, '#thanks');
    assert(thanks.includes('browser-test@example.org'), `#thanks does not name the email: "${thanks}"`);
    assert(await page.locator('#card-step').isHidden(), '#card-step still visible with #thanks');
    await shot(page, 'thanks.png');
    // Stripe.js (here localstripe's stand-in) is not ours: what it trips over is only noted.
    for (const p of page.problems) console.log(`# note (card step): ${oneLine(p)}`);
  } finally {
    await page.context().close();
  }
});

// 3b. Cover the fee: the label names the exact amount as the donor chooses, and Stripe is
//     asked for the gift plus that fee (both languages, 360 px).
await step('a donor covers the card fee and is charged the exact amount (both languages)', async () => {
  for (const lang of ['en', 'zh-CN']) {
    const before = new Set(await paymentIntentIds());
    const page = await newPage();
    try {
      await page.goto(`${APP}/?lang=${lang}`);
      await fillDonor(page, '100');
      const label = await page.locator('#cover-fee-label').innerText();
      assert(label.includes('3.30') && label.includes('100'), `${lang}: the label says "${oneLine(label)}"`);
      if (lang === 'zh-CN') assert(CJK.test(label), 'Chinese label');
      await page.check('#cover-fee');
      await page.click('#submit');
      await page.locator('#card-step').waitFor({ state: 'visible', timeout: 15000 });
      const payText = await visibleText(page, '#pay');
      assert(/103\.30/.test(payText), `${lang}: #pay says "${payText}"`);
      const fresh = (await paymentIntentIds()).filter((id) => !before.has(id));
      assert(fresh.length === 1, `${lang}: ${fresh.length} new PaymentIntents`);
      const intent = await stripe('GET', `/v1/payment_intents/${fresh[0]}`);
      assert(Number(intent.amount) === 10330, `${lang}: PaymentIntent amount is ${intent.amount}`);
      assert(page.problems.length === 0, page.problems.join(' | '));
    } finally {
      await page.context().close();
    }
  }
});

// 3c. Every way to pay, through the Payment Element (localstripe serves a double of it,
//     tests/peers/payment-element.js), in both languages: a card typed into the element; a
//     bank debit that is processing and then arrives, and one the bank refuses after
//     processing (the donor is emailed); Alipay (its page, then /donate/return); WeChat Pay
//     (the QR code shown over the page, then scanned). axe on the method tabs, the bank
//     debit's processing message, the QR dialog and the return page.

/** axe in a page as it is (the page's CSP stays on: the script is evaluated by the browser's
 *  devtools protocol, not added as a tag). Serious and critical violations, as text. */
async function axeHere(page, label) {
  await page.evaluate(readFileSync(AXE_PATH, 'utf8'));
  const violations = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, targets: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  for (const v of violations) console.log(`#   axe ${label}: ${v.impact} ${v.id} [${v.targets.join(', ')}]`);
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${label}: ${v.id}`);
}

/** The donor form filled and sent; the Payment Element's tabs shown. The page and its intent. */
async function giftToPaymentStep(lang, amount) {
  const before = new Set(await paymentIntentIds());
  const page = await newPage();
  await page.goto(`${APP}/?lang=${lang}`);
  await fillDonor(page, amount);
  await page.click('#submit');
  await page.locator('#card-step').waitFor({ state: 'visible', timeout: 15000 });
  await page.locator('#card-element [role=tab]').first().waitFor({ timeout: 15000 });
  const fresh = (await paymentIntentIds()).filter((id) => !before.has(id));
  assert(fresh.length === 1, `${lang}: ${fresh.length} new PaymentIntents`);
  return { page, pi: fresh[0] };
}

async function raisedMinor() {
  return Math.round(Number((await fundDoc()).raised) * 100);
}

async function waitRaised(want, what) {
  for (let i = 0; i < 150; i += 1) {
    if ((await raisedMinor()) === want) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: raised is ${await raisedMinor()}, expected ${want} (minor units)`);
}

await step('every way to pay through the Payment Element: card, bank debit, Alipay, WeChat Pay (both languages, axe)', async () => {
  const bad = [];
  for (const lang of ['en', 'zh-CN']) {
    // A card, typed into the element.
    {
      const { page } = await giftToPaymentStep(lang, '11');
      try {
        const tabs = await page.locator('#card-element [role=tab]').evaluateAll((els) => els.map((e) => e.dataset.method));
        assert(
          ['card', 'us_bank_account', 'alipay', 'wechat_pay'].every((m) => tabs.includes(m)),
          `${lang}: the element offers ${tabs.join(', ')}`,
        );
        if (lang === 'zh-CN') {
          const label = await visibleText(page, '#card-element [role=tab][data-method=alipay]');
          assert(CJK.test(label), `${lang}: the Alipay tab says "${label}"`);
        }
        bad.push(...(await axeHere(page, `${lang} payment tabs`)));
        const before = await raisedMinor();
        await page.fill('#card-element input[name=number]', '4242424242424242');
        await page.fill('#card-element input[name=expiry]', '12/30');
        await page.fill('#card-element input[name=cvc]', '123');
        await page.click('#pay');
        await page.locator('#thanks').waitFor({ state: 'visible', timeout: 15000 }).catch(async () => {
          throw new Error(`${lang} card: no thanks; #card-error "${oneLine(await page.locator('#card-error').innerText())}"`);
        });
        await waitRaised(before + 1100, `${lang} card`);
        if (lang === 'en') await shot(page, 'payment-element-card-thanks.png');
      } finally {
        await page.context().close();
      }
    }
    // A bank debit: processing, then it arrives; another refused after processing.
    for (const outcome of ['succeeded', 'failed']) {
      const amount = outcome === 'succeeded' ? '12' : '13';
      const { page, pi } = await giftToPaymentStep(lang, amount);
      try {
        const t = await i18n(page);
        await page.click('#card-element [role=tab][data-method=us_bank_account]');
        await page.check('#card-element input[name=mandate]');
        const before = await raisedMinor();
        await page.click('#pay');
        await page.locator('#card-status', { hasText: t.payment_processing }).waitFor({ timeout: 15000 });
        if (outcome === 'succeeded') bad.push(...(await axeHere(page, `${lang} bank debit processing`)));
        if (lang === 'zh-CN') assert(CJK.test(await visibleText(page, '#card-status')), 'Chinese processing message');
        if (lang === 'en' && outcome === 'succeeded') await shot(page, 'payment-element-bank-processing.png');
        await new Promise((r) => setTimeout(r, 500));
        assert((await raisedMinor()) === before, `${lang}: money on its way counted`);
        await stripe('POST', `/_test/payment_intents/${pi}/settle`, { outcome });
        if (outcome === 'succeeded') {
          await waitRaised(before + Number(amount) * 100, `${lang} bank debit`);
        } else {
          const intent = await stripe('GET', `/v1/payment_intents/${pi}`);
          assert(intent.status === 'requires_payment_method', `${lang}: refused debit is ${intent.status}`);
          await new Promise((r) => setTimeout(r, 1500));
          assert((await raisedMinor()) === before, `${lang}: a refused debit counted`);
          // The donor is told, in their language.
          const told = lang === 'en' ? /did not go through/ : /未能完成/;
          let mail = false;
          for (let i = 0; i < 100 && !mail && SMTP_DIR; i += 1) {
            mail = readdirSync(SMTP_DIR)
              .filter((n) => n.endsWith('.json'))
              .some((n) => told.test(String(JSON.parse(readFileSync(path.join(SMTP_DIR, n), 'utf8')).subject || '')));
            if (!mail) await new Promise((r) => setTimeout(r, 100));
          }
          assert(mail, `${lang}: no email telling the donor the bank debit failed`);
        }
      } finally {
        await page.context().close();
      }
    }
    // Alipay: off to its page, authorised, back to /donate/return.
    {
      const { page, pi } = await giftToPaymentStep(lang, '14');
      try {
        const before = await raisedMinor();
        await page.click('#card-element [role=tab][data-method=alipay]');
        await page.click('#pay');
        await page.waitForURL((u) => u.toString().startsWith(`${STRIPE}/_test/alipay/${pi}`), { timeout: 15000 });
        await page.click('a#authorize');
        await page.waitForURL((u) => u.toString().startsWith(`${APP}/donate/return?`), { timeout: 15000 });
        const back = new URL(page.url());
        assert(back.searchParams.get('redirect_status') === 'succeeded', `${lang}: back with ${back.search}`);
        assert(back.searchParams.get('lang') === lang, `${lang}: the return page lost the language (${back.search})`);
        // The page refreshes itself until the ledger has the payment.
        await page.locator('#return-status[data-shown=succeeded]').waitFor({ timeout: 20000 });
        const text = await visibleText(page, '#return-status');
        if (lang === 'zh-CN') assert(CJK.test(text), `Chinese return page: "${text}"`);
        await waitRaised(before + 1400, `${lang} Alipay`);
        bad.push(...(await axeHere(page, `${lang} return page`)));
        if (lang === 'en') await shot(page, 'donate-return.png');
        assert(page.problems.length === 0, page.problems.join(' | '));
      } finally {
        await page.context().close();
      }
    }
    // WeChat Pay: the QR code over the page; scanned (the test hook), the page thanks.
    {
      const { page, pi } = await giftToPaymentStep(lang, '15');
      try {
        const before = await raisedMinor();
        await page.click('#card-element [role=tab][data-method=wechat_pay]');
        await page.click('#pay');
        const dialog = page.locator('[data-localstripe=wechat-pay-dialog]');
        await dialog.waitFor({ state: 'visible', timeout: 15000 });
        const alt = await dialog.locator('img').getAttribute('alt');
        assert(alt && (lang === 'en' ? /QR/.test(alt) : CJK.test(alt)), `${lang}: QR image alt "${alt}"`);
        assert(await dialog.locator('img').isVisible(), `${lang}: QR code not shown`);
        bad.push(...(await axeHere(page, `${lang} WeChat Pay QR`)));
        if (lang === 'en') await shot(page, 'payment-element-wechat-qr.png');
        await stripe('POST', `/_test/payment_intents/${pi}/settle`, { outcome: 'succeeded' });
        await page.locator('#thanks').waitFor({ state: 'visible', timeout: 15000 });
        assert(await dialog.count() === 0 || !(await dialog.isVisible()), `${lang}: the QR dialog stayed`);
        await waitRaised(before + 1500, `${lang} WeChat Pay`);
      } finally {
        await page.context().close();
      }
    }
  }
  assert(bad.length === 0, bad.join(', '));
});

await step('a way to pay the Stripe account has not switched on: refused, said so in both languages, nothing kept', async () => {
  const bad = [];
  const before = (await paymentIntentIds()).length;
  const raised = await raisedMinor();
  await stripe('POST', '/_test/payment_method_types', { active: 'card,link' });
  try {
    for (const lang of ['en', 'zh-CN']) {
      const page = await newPage();
      try {
        await page.goto(`${APP}/?lang=${lang}`);
        await fillDonor(page, '16');
        await page.click('#submit');
        await page.locator('#error-form').waitFor({ state: 'visible', timeout: 15000 });
        const text = await visibleText(page, '#error-form');
        const t = await i18n(page);
        const hasCheck = (await page.locator('#give-by-check').count()) > 0;
        const want = hasCheck ? t.error_payment_refused_check : t.error_payment_refused;
        assert(want && text === oneLine(want), `${lang}: #error-form says "${text}", expected "${want}"`);
        if (lang === 'zh-CN') assert(CJK.test(text), `${lang}: not Chinese: "${text}"`);
        assert(await page.locator('#card-step').isHidden(), `${lang}: the payment step opened`);
        bad.push(...(await axeHere(page, `${lang} refused method`)));
      } finally {
        await page.context().close();
      }
    }
  } finally {
    await stripe('POST', '/_test/payment_method_types', { active: 'card,link,us_bank_account,alipay,wechat_pay' });
  }
  const after = (await paymentIntentIds()).length;
  assert(after === before, `localstripe has ${after - before} new PaymentIntent(s)`);
  assert((await raisedMinor()) === raised, 'raised moved');
  assert(bad.length === 0, bad.join(', '));
});

// 4. Accessibility (axe-core) in both languages. The page's CSP forbids the inline script
//    that addScriptTag injects, so this context bypasses CSP.
async function axeCheck(label, url, prepare) {
  const page = await newPage({ bypassCSP: true });
  try {
    await page.goto(url);
    if (prepare) await prepare(page);
    await page.addScriptTag({ path: AXE_PATH });
    const violations = await page.evaluate(async () => {
      // eslint-disable-next-line no-undef
      const r = await axe.run(document, { resultTypes: ['violations'] });
      return r.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        targets: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
      }));
    });
    const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    console.log(`axe ${label}: ${violations.length} violations (serious+critical: ${bad.length})`);
    for (const v of violations) {
      console.log(`#   ${v.impact} ${v.id}: ${v.help} [${v.targets.join(', ')}]`);
    }
    return bad;
  } finally {
    await page.context().close();
  }
}

await step('accessibility: no serious or critical axe violations on the donor page', async () => {
  const bad = [];
  for (const lang of ['en', 'zh-CN']) {
    const found = await axeCheck(lang, `${APP}/?lang=${lang}`);
    bad.push(...found.map((v) => `${lang}: ${v.id} (${v.impact})`));
  }
  assert(bad.length === 0, bad.join(', '));
});

// 5. Admin: pause with a message, reopen, then a target at or below raised closes intake.
await step('admin pauses, reopens and closes intake by target', async () => {
  assert(ADMIN_EMAIL && ADMIN_PASSWORD, 'ADMIN_EMAIL and ADMIN_PASSWORD must be set');
  const admin = await newPage({ viewport: { width: 1024, height: 900 } });
  const donor = await newPage();
  const originalTarget = (await fundDoc()).target;
  try {
    await admin.goto(`${APP}/admin?lang=en`);
    await pageSignIn(admin, ADMIN_EMAIL);
    try {
      await admin.locator('#dashboard').waitFor({ state: 'visible', timeout: 10000 });
    } catch (_) {
      throw new Error(`no dashboard after login; #login-error "${oneLine(await admin.locator('#login-error').innerText())}"`);
    }
    const t = await i18n(admin);
    await admin.locator('#intake-state', { hasText: t.state_open }).waitFor({ timeout: 10000 });
    // The gifts of step 3c, by how they were paid, with the methods offered beside the switch.
    for (const m of ['us_bank_account', 'alipay', 'wechat_pay']) {
      await admin.locator(`#by-method-body tr[data-method=${m}]`).waitFor({ timeout: 10000 });
      assert(await admin.locator(`#intake-section li[data-method=${m}]`).count() === 1, `${m} not listed as offered`);
    }
    const alipayRow = await visibleText(admin, '#by-method-body tr[data-method=alipay]');
    assert(alipayRow.includes('Alipay') && alipayRow.includes('28'), `the Alipay line says "${alipayRow}"`);

    // Pause with a message.
    const message = `Paused by the browser test ${Date.now()}`;
    await admin.fill('#intake-message-input', message);
    await admin.click('#pause');
    await admin.locator('#intake-state', { hasText: t.state_paused }).waitFor({ timeout: 10000 }).catch(async () => {
      throw new Error(`intake not paused; #intake-error "${oneLine(await admin.locator('#intake-error').innerText())}"`);
    });
    await donor.goto(`${APP}/?lang=en`);
    const box = donor.locator('#intake-message');
    assert(await box.isVisible(), 'no #intake-message on the donor page after Pause');
    const boxText = await visibleText(donor, '#intake-message');
    assert(boxText.includes(message), `#intake-message says "${boxText}"`);
    assert((await donor.locator('#donate-form').count()) === 0, '#donate-form still on the page while paused');
    await admin.waitForTimeout(1000); // let the charts arrive for the picture
    await shot(admin, 'admin.png');

    // Reopen.
    await admin.click('#reopen');
    await admin.locator('#intake-state', { hasText: t.state_open }).waitFor({ timeout: 10000 }).catch(async () => {
      throw new Error(`intake not reopened; #intake-error "${oneLine(await admin.locator('#intake-error').innerText())}"`);
    });
    await donor.goto(`${APP}/?lang=en`);
    assert((await donor.locator('#donate-form').count()) === 1, 'no #donate-form after Reopen');

    // A target at or below raised closes intake.
    await admin.fill('#fund-target', '1.00');
    await admin.click('#save-fund');
    await admin.locator('#intake-state', { hasText: t.state_closed }).waitFor({ timeout: 10000 }).catch(async () => {
      const raised = (await fundDoc()).raised;
      throw new Error(
        `intake not closed by target 1.00 (raised ${raised}); #fund-error "${oneLine(await admin.locator('#fund-error').innerText())}"`,
      );
    });
    await donor.goto(`${APP}/?lang=en`);
    assert(await donor.locator('#intake-message').isVisible(), 'no #intake-message after the target was reached');
    const closedText = await visibleText(donor, '#intake-message');
    assert(!closedText.includes(message), `#intake-message still shows the pause message after reopening: "${closedText}"`);
    assert((await donor.locator('#donate-form').count()) === 0, '#donate-form still on the page after the target was reached');
    await shot(donor, 'donor-closed.png');
    assert(admin.problems.length === 0, admin.problems.join(' | '));
  } finally {
    // Leave the fund as found: the original target, intake open.
    try {
      const token = await adminToken();
      await adminPut(token, '/api/admin/fund', { target: originalTarget });
      await adminPut(token, '/api/admin/intake', { accepting: true, message: '' });
    } catch (e) {
      console.log(`# cleanup: ${oneLine(e.message)}`);
    }
    await admin.context().close();
    await donor.context().close();
  }
});

// 6. Accessibility of the signed-in admin page.
await step('accessibility: no serious or critical axe violations on the admin dashboard', async () => {
  const bad = await axeCheck('admin', `${APP}/admin?lang=en`, async (page) => {
    await pageSignIn(page, ADMIN_EMAIL);
    await page.locator('#dashboard').waitFor({ state: 'visible', timeout: 10000 });
    await page.waitForTimeout(1000);
  });
  assert(bad.length === 0, bad.map((v) => `${v.id} (${v.impact})`).join(', '));
});

// 7. Hostile text: markup stored through the API in every field that reaches a page is shown
//    as text and never runs. The contexts bypass the CSP, so a failure of escaping would
//    execute here instead of being hidden by the policy; the DOM is checked too.
const HOSTILE = {
  script: '<script>window.__pwned=1</script>',
  img: '"><img src=x onerror=window.__pwned=1>',
  alert: '<img src=x onerror=alert(1)>',
  svg: '</title><svg onload=window.__pwned=1>',
  jsUrl: 'javascript:window.__pwned=1',
  attr: "' onmouseover='window.__pwned=1",
};

/** Opens `url` with CSP bypassed and records dialogs; `prepare` runs before the checks. */
async function hostilePage(url, viewport, prepare) {
  const page = await newPage({ bypassCSP: true, viewport });
  page.dialogs = [];
  page.on('dialog', async (d) => {
    page.dialogs.push(d.message());
    await d.dismiss().catch(() => {});
  });
  await page.goto(url);
  if (prepare) await prepare(page);
  await page.waitForTimeout(300);
  return page;
}

/** Nothing injected ran or exists: no dialog, no __pwned, no element made from the text. */
async function assertInert(page, where) {
  assert(page.dialogs.length === 0, `${where}: a dialog opened: ${page.dialogs.join(' | ')}`);
  const found = await page.evaluate(() => {
    const all = Array.from(document.querySelectorAll('*'));
    return {
      pwned: typeof window.__pwned !== 'undefined',
      imgX: document.querySelectorAll('img[src="x"]').length,
      svgOnload: document.querySelectorAll('svg[onload]').length,
      inlineScripts: document.querySelectorAll('script:not([src])').length,
      handlers: all.filter((el) => Array.from(el.attributes).some((a) => a.name.toLowerCase().startsWith('on'))).map((el) => el.tagName),
      jsLinks: document.querySelectorAll('a[href^="javascript" i], [src^="javascript" i]').length,
    };
  });
  assert(!found.pwned, `${where}: window.__pwned is set`);
  assert(found.imgX === 0, `${where}: ${found.imgX} injected <img src=x>`);
  assert(found.svgOnload === 0, `${where}: injected <svg onload>`);
  assert(found.inlineScripts === 0, `${where}: ${found.inlineScripts} inline <script>`);
  assert(found.handlers.length === 0, `${where}: inline event handlers on ${found.handlers.join(', ')}`);
  assert(found.jsLinks === 0, `${where}: a javascript: link`);
}

async function adminApi(token, method, p, body) {
  const r = await httpJson(`${APP}${p}`, {
    method,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status >= 300) throw new Error(`${method} ${p} -> ${r.status} ${oneLine(r.text)}`);
  return r.json;
}

await step('hostile text in every field is shown as text and never runs', async () => {
  assert(ADMIN_EMAIL && ADMIN_PASSWORD, 'ADMIN_EMAIL and ADMIN_PASSWORD must be set');
  const token = await adminToken();
  const before = await fundDoc();
  const fundName = `${HOSTILE.svg} ${HOSTILE.script}`;
  const donor = `${HOSTILE.script}${HOSTILE.img}${HOSTILE.alert}`;
  const message = `${HOSTILE.script} ${HOSTILE.jsUrl} ${HOSTILE.attr}`;
  const label = HOSTILE.img;
  const email = 'x"onmouseover=window.__pwned=1@example.org';
  try {
    await adminApi(token, 'PUT', '/api/admin/fund', { name: fundName });
    await adminApi(token, 'POST', '/api/admin/periods', {
      label, starts_on: '2020-10-01', ends_on: '2020-10-31', budget: '1.00',
    });
    const gift = await adminApi(token, 'POST', '/api/donations/offline', {
      amount: '3.00', donor_name: donor, email, method: 'other', reference: HOSTILE.jsUrl,
    });
    await adminApi(token, 'POST', `/api/admin/donations/${gift.donation_id}/refund`, {
      amount: '1.00', reason: HOSTILE.svg,
    });
    await adminApi(token, 'PUT', '/api/admin/intake', { accepting: false, message });

    // The donor page while paused: the message, the fund name, the period label.
    for (const lang of ['en', 'zh-CN']) {
      const page = await hostilePage(`${APP}/?lang=${lang}`);
      try {
        await assertInert(page, `donor page (${lang}, paused)`);
        const notice = await page.locator('#intake-message').innerText();
        assert(notice.includes(HOSTILE.script) && notice.includes(HOSTILE.attr), `#intake-message shows "${oneLine(notice)}"`);
        const h1 = await page.locator('h1').innerText();
        assert(h1.includes(fundName), `h1 shows "${oneLine(h1)}"`);
        assert((await page.title()).includes(HOSTILE.svg), `title is "${await page.title()}"`);
        const periods = await page.locator('#periods').innerText();
        assert(periods.includes(label), `#periods lacks the label as text: "${oneLine(periods)}"`);
      } finally {
        await page.context().close();
      }
    }

    // The admin page, signed in: fund, intake message, periods, donations, a refund form,
    // the charts.
    const admin = await hostilePage(`${APP}/admin?lang=en`, { width: 1024, height: 900 }, async (page) => {
      await pageSignIn(page, ADMIN_EMAIL);
      await page.locator('#dashboard').waitFor({ state: 'visible', timeout: 10000 });
      await page.locator(`#donations-body tr[data-id="${gift.donation_id}"]`).waitFor({ timeout: 10000 });
      await page.locator('#periods-body td.wrap-cell').first().waitFor({ timeout: 10000 });
      await page.locator('#chart-periods svg').waitFor({ timeout: 10000 }).catch(() => {});
      const refund = page.locator('#donations-body button[aria-expanded]').first();
      if (await refund.count()) await refund.click();
    });
    try {
      await assertInert(admin, 'admin page');
      assert((await admin.inputValue('#fund-name')) === fundName, 'the fund name field holds the text');
      const current = await admin.locator('#intake-current-message').innerText();
      assert(current.includes(HOSTILE.script), `#intake-current-message shows "${oneLine(current)}"`);
      const periodRows = await admin.locator('#periods-body').innerText();
      assert(periodRows.includes(label), `the periods table lacks the label as text: "${oneLine(periodRows)}"`);
      const rows = await admin.locator('#donations-body').innerText();
      for (const part of [HOSTILE.script, HOSTILE.img, HOSTILE.alert, HOSTILE.jsUrl, email]) {
        assert(rows.includes(part), `the donations table lacks ${JSON.stringify(part)} as text`);
      }
      const chart = await admin.locator('#chart-periods').evaluate((n) => ({
        text: n.textContent || '',
        imgs: n.querySelectorAll('img').length,
      }));
      assert(chart.imgs === 0, 'an <img> inside the periods chart');
      await shot(admin, 'hostile-admin.png');
    } finally {
      await admin.context().close();
    }

    // Reopened: the form carries the fund name in a data attribute.
    await adminApi(token, 'PUT', '/api/admin/intake', { accepting: true, message: '' });
    const open = await hostilePage(`${APP}/?lang=en`);
    try {
      await assertInert(open, 'donor page (open)');
      const data = await open.getAttribute('#donate-form', 'data-fund-name');
      assert(data === fundName, `data-fund-name is ${JSON.stringify(data)}`);
      await shot(open, 'hostile-donor.png');
    } finally {
      await open.context().close();
    }
  } finally {
    try {
      await adminApi(token, 'PUT', '/api/admin/fund', { name: before.name });
      await adminApi(token, 'PUT', '/api/admin/intake', { accepting: true, message: '' });
    } catch (e) {
      console.log(`# cleanup: ${oneLine(e.message)}`);
    }
  }
});

// 8. Two-person approval: a refund above the threshold (1000.00 by default) asked by one
//    admin waits; the second admin sees it in the admin page, rejects it (Chinese page), then
//    approves the next one (English page); axe on the page with a request waiting.
async function askLargeRefund(token, donationId) {
  const r = await httpJson(`${APP}/api/admin/donations/${donationId}/refund`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ amount: '1100.00', reason: 'the donor asked' }),
  });
  assert(r.status === 202 && r.json && r.json.state === 'pending_approval', `refund -> ${r.status} ${oneLine(r.text)}`);
  return r.json.refund_request;
}

async function signInSecondAdmin(page, lang) {
  await page.goto(`${APP}/admin?lang=${lang}`);
  await pageSignIn(page, SECOND_ADMIN_EMAIL);
  await page.locator('#approvals-section').waitFor({ state: 'visible', timeout: 10000 });
}

await step('a second admin enrols a second factor in the admin page and signs in with it', async () => {
  assert(SECOND_ADMIN_EMAIL, 'SECOND_ADMIN_EMAIL must be set');
  const page = await newPage({ viewport: { width: 1024, height: 900 } });
  try {
    await page.goto(`${APP}/admin?lang=en`);
    await page.fill('#login-email', SECOND_ADMIN_EMAIL);
    await page.fill('#login-password', ADMIN_PASSWORD);
    await page.click('#login-submit');
    // REQUIRE_2FA=admin (the default): an admin without a second factor can only enrol.
    await page.locator('#enrol-section').waitFor({ state: 'visible', timeout: 10000 });
    assert(await page.locator('#dashboard').isHidden(), 'no dashboard before enrolment');
    await page.locator('#enrol-secret', { hasText: /[A-Z2-7]{32}/ }).waitFor({ timeout: 10000 });
    const secret = (await page.locator('#enrol-secret').innerText()).trim();
    const qr = await page.locator('#enrol-qr').evaluate((img) => ({ src: img.src, w: img.naturalWidth }));
    assert(qr.src.startsWith('data:image/svg+xml') && qr.w > 0, `QR code shown (${qr.src.slice(0, 40)}, ${qr.w}px)`);
    // A wrong first code is refused and changes nothing.
    await page.fill('#enrol-code', String((Number(totpAt(secret, nowStep())) + 1) % 1000000).padStart(6, '0'));
    await page.click('#enrol-submit');
    await page.locator('#enrol-error').filter({ hasText: /\S/ }).waitFor({ timeout: 10000 });
    const step = nowStep();
    await page.fill('#enrol-code', totpAt(secret, step));
    await page.click('#enrol-submit');
    await page.locator('#recovery-box').waitFor({ state: 'visible', timeout: 10000 }).catch(async () => {
      throw new Error(`no recovery codes; #enrol-error "${oneLine(await page.locator('#enrol-error').innerText())}"`);
    });
    const codes = (await page.locator('#recovery-codes li').allInnerTexts()).map((c) => c.trim());
    assert(codes.length === 10 && new Set(codes).size === 10, `ten recovery codes: ${codes.join(' ')}`);
    factors.set(SECOND_ADMIN_EMAIL, { secret, lastStep: step, codes });
    await shot(page, 'enrol-en.png');
    await page.click('#recovery-done');
    await page.locator('#approvals-section').waitFor({ state: 'visible', timeout: 10000 });
    const t = await i18n(page);
    await page.locator('#account-mfa', { hasText: t.account_mfa_on }).waitFor({ timeout: 10000 });
    assert(page.problems.length === 0, page.problems.join(' | '));
  } finally {
    await page.context().close();
  }
  // The next sign-in asks for a code: a wrong one is refused, a recovery code works once.
  const zh = await newPage({ viewport: { width: 1024, height: 900 } });
  try {
    await zh.goto(`${APP}/admin?lang=zh-CN`);
    const t = await i18n(zh);
    await zh.fill('#login-email', SECOND_ADMIN_EMAIL);
    await zh.fill('#login-password', ADMIN_PASSWORD);
    await zh.click('#login-submit');
    await zh.locator('#mfa-section').waitFor({ state: 'visible', timeout: 10000 });
    assert(CJK.test(await zh.locator('#mfa-heading').innerText()), 'Chinese second-factor heading');
    await zh.fill('#mfa-code', '000000');
    await zh.click('#mfa-submit');
    await zh.locator('#mfa-error', { hasText: t.mfa_wrong }).waitFor({ timeout: 10000 });
    const recovery = factors.get(SECOND_ADMIN_EMAIL).codes.pop();
    await zh.fill('#mfa-code', recovery);
    await zh.click('#mfa-submit');
    await zh.locator('#approvals-section').waitFor({ state: 'visible', timeout: 10000 });
    const again = await postJson('/api/auth/login', { email: SECOND_ADMIN_EMAIL, password: ADMIN_PASSWORD });
    const reused = await postJson('/api/auth/mfa', { mfa_token: again.json.mfa_token, code: recovery });
    assert(reused.status === 401, `a used recovery code is refused (got ${reused.status})`);
    assert(zh.problems.length === 0, zh.problems.join(' | '));
  } finally {
    await zh.context().close();
  }
});

await step('a second admin rejects and approves large refunds in the admin page (both languages)', async () => {
  assert(SECOND_ADMIN_EMAIL, 'SECOND_ADMIN_EMAIL must be set');
  const token = await adminToken();
  const gift = await adminApi(token, 'POST', '/api/donations/offline', {
    amount: '1200.00', donor_name: '王小明', method: 'check', reference: 'chk-approve',
  });
  const before = await fundDoc();
  for (const [lang, verb] of [['zh-CN', 'reject'], ['en', 'approve']]) {
    const request = await askLargeRefund(token, gift.donation_id);
    const page = await newPage({ viewport: { width: 1024, height: 900 } });
    try {
      await signInSecondAdmin(page, lang);
      const t = await i18n(page);
      const row = page.locator(`#approvals-body tr[data-id="${request}"]`);
      await row.waitFor({ timeout: 10000 });
      const text = await row.innerText();
      assert(text.includes(ADMIN_EMAIL) && text.includes('the donor asked'), `row shows "${oneLine(text)}"`);
      await row.getByRole('button', { name: `${t[verb]}: #${request}` }).click();
      const done = verb === 'approve' ? t.approved_done : t.rejected_done;
      await page.locator('#approvals-status', { hasText: done }).waitFor({ timeout: 10000 }).catch(async () => {
        throw new Error(`no "${done}"; #approvals-error "${oneLine(await page.locator('#approvals-error').innerText())}"`);
      });
      await page
        .locator(`#approvals-body tr[data-id="${request}"]`)
        .waitFor({ state: 'detached', timeout: 10000 })
        .catch(() => {
          throw new Error('the decided request stayed in the list');
        });
      await page.locator('#audit-body', { hasText: verb === 'approve' ? 'refund.approved' : 'refund.rejected' }).waitFor({ timeout: 10000 }).catch(() => {});
      const audit = await page.locator('#audit-body').innerText();
      assert(audit.includes(verb === 'approve' ? 'refund.approved' : 'refund.rejected'), `audit shows "${oneLine(audit).slice(-200)}"`);
      if (lang === 'zh-CN') assert(CJK.test(await page.locator('#approvals-heading').innerText()), 'Chinese heading');
      await shot(page, `approvals-${lang}.png`);
      assert(page.problems.length === 0, page.problems.join(' | '));
    } finally {
      await page.context().close();
    }
  }
  const after = await fundDoc();
  const lowered = Math.round((Number(before.raised) - Number(after.raised)) * 100);
  assert(lowered === 110000, `raised went from ${before.raised} to ${after.raised}`);
  // A request waiting, seen by axe.
  const waiting = await askLargeRefund(token, gift.donation_id).catch(() => null);
  assert(waiting === null, 'only 100.00 is left: a third 1100.00 refund is refused');
});

await step('accessibility: no serious or critical axe violations with a refund waiting for approval', async () => {
  const token = await adminToken();
  const gift = await adminApi(token, 'POST', '/api/donations/offline', {
    amount: '1500.00', donor_name: 'Ann Lee', method: 'check', reference: 'chk-axe',
  });
  const request = await askLargeRefund(token, gift.donation_id);
  const bad = await axeCheck('admin approvals', `${APP}/admin?lang=en`, async (page) => {
    await signInSecondAdmin(page, 'en');
    await page.locator(`#approvals-body tr[data-id="${request}"]`).waitFor({ timeout: 10000 });
  });
  assert(bad.length === 0, bad.map((v) => `${v.id} (${v.impact})`).join(', '));
  await adminApi(token, 'POST', `/api/admin/approvals/${request}/reject`).catch(() => {});
});

// 9. A donor finds their gifts at /receipts on a phone (360 px), in both languages: the code
//    comes by email (read from the SMTP server's messages), the gifts show with a resend button
//    and the year's statement; axe on each page.
function codeFor(email, seen) {
  for (const name of readdirSync(SMTP_DIR).filter((n) => n.endsWith('.json'))) {
    const m = JSON.parse(readFileSync(path.join(SMTP_DIR, name), 'utf8'));
    const text = String(m.text || '');
    if ((m.to || [])[0] === email && text.includes('/receipts/link?t=') && !seen.has(name)) {
      seen.add(name);
      return (text.match(/\b\d{6}\b/) || [])[0];
    }
  }
  return undefined;
}

async function waitForCode(email, seen) {
  for (let i = 0; i < 100; i += 1) {
    const code = codeFor(email, seen);
    if (code) return code;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no code email to ${email}`);
}

await step('a donor finds their gifts and resends a receipt at /receipts (both languages, 360 px, axe)', async () => {
  assert(SMTP_DIR, 'SMTP_DIR must be set');
  const token = await adminToken();
  const email = 'mei.lookup@example.org';
  await adminApi(token, 'POST', '/api/donations/offline', {
    amount: '88.50', donor_name: '陈美', email, method: 'check', reference: 'chk-lookup', received_on: '2026-01-15',
  });
  const seen = new Set();
  const bad = [];
  for (const lang of ['zh-CN', 'en']) {
    const page = await newPage({ bypassCSP: false });
    try {
      await page.goto(`${APP}/receipts?lang=${lang}`);
      const t = await i18n(page);
      await page.fill('#lookup-email', email);
      await page.click('#lookup-send');
      await page.locator('#lookup-code').waitFor({ timeout: 10000 });
      const sent = await page.locator('#code-sent').innerText();
      assert(sent === t.receipts_code_sent, `the same answer for every address: "${oneLine(sent)}"`);
      const code = await waitForCode(email, seen);
      await page.fill('#lookup-code', code);
      await page.click('#lookup-verify');
      await page.locator('#gift-list').waitFor({ timeout: 10000 });
      const rows = await page.locator('#gift-list').innerText();
      assert(rows.includes('88.50'), `the gift shows: "${oneLine(rows)}"`);
      if (lang === 'zh-CN') assert(CJK.test(await page.locator('h1').innerText()), 'Chinese heading');
      await page.getByRole('button', { name: new RegExp(`^${t.receipts_resend}`) }).first().click();
      await page.locator('#receipts-notice', { hasText: t.receipts_resent }).waitFor({ timeout: 10000 });
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert(width <= 360 + 1, `no sideways scrolling of the page at 360 px (scrollWidth ${width})`);
      await shot(page, `receipts-${lang}.png`);
      await page.click(`a[href="/receipts/statement/2026?lang=${lang}"]`);
      await page.locator('#statement-total', { hasText: '88.50' }).waitFor({ timeout: 10000 });
      assert(page.problems.length === 0, page.problems.join(' | '));
    } finally {
      await page.context().close();
    }
    const found = await axeCheck(`receipts ${lang}`, `${APP}/receipts?lang=${lang}`);
    bad.push(...found.map((v) => `${lang}: ${v.id} (${v.impact})`));
  }
  // And the signed-in list of gifts.
  const found = await axeCheck('receipts gifts', `${APP}/receipts?lang=en`, async (page) => {
    await page.fill('#lookup-email', email);
    await page.click('#lookup-send');
    await page.locator('#lookup-code').waitFor({ timeout: 10000 });
    await page.fill('#lookup-code', await waitForCode(email, seen));
    await page.click('#lookup-verify');
    await page.locator('#gift-list').waitFor({ timeout: 10000 });
  });
  bad.push(...found.map((v) => `gifts: ${v.id} (${v.impact})`));
  assert(bad.length === 0, bad.join(', '));
});

// 9. Money out: a payment to counsel recorded in the admin page shows on the public ledger,
//    in both languages, without its internal reference; the receipt's link highlights an entry.
await step('a payment to counsel recorded in the admin page shows on /ledger (both languages, axe)', async () => {
  const payee = 'Wong & Partners LLP';
  const page = await newPage({ viewport: { width: 1024, height: 900 } });
  try {
    await page.goto(`${APP}/admin?lang=en`);
    await pageSignIn(page, ADMIN_EMAIL);
    await page.locator('#dashboard').waitFor({ state: 'visible', timeout: 10000 });
    const t = await i18n(page);
    await page.fill('#disbursement-amount', '250.00');
    await page.fill('#disbursement-payee', payee);
    await page.fill('#disbursement-public-memo', 'Counsel fees, August hearing');
    await page.fill('#disbursement-reference', 'WIRE-SECRET-7');
    await page.fill('#disbursement-memo', 'INTERNAL-NOTE-7');
    await page.click('#disbursement-submit');
    await page.locator('#disbursements-status', { hasText: t.disbursement_done }).waitFor({ timeout: 10000 }).catch(async () => {
      throw new Error(`not recorded; #disbursements-error "${oneLine(await page.locator('#disbursements-error').innerText())}"`);
    });
    await page.locator('#disbursements-body', { hasText: payee }).waitFor({ timeout: 10000 });
    await shot(page, 'disbursements-en.png');
    assert(page.problems.length === 0, page.problems.join(' | '));
  } finally {
    await page.context().close();
  }
  const head = (await httpJson(`${APP}/api/public/head`)).json;
  for (const lang of ['en', 'zh-CN']) {
    const p = await newPage();
    try {
      await p.goto(`${APP}/ledger?lang=${lang}&seq=${head.seq}`);
      const row = p.locator(`#entry-${head.seq}`);
      await row.waitFor({ timeout: 10000 });
      const text = await row.innerText();
      assert(text.includes(payee) && text.includes('Counsel fees, August hearing'), `row: "${oneLine(text)}"`);
      assert((await row.getAttribute('class')) === 'highlight', 'the linked entry is highlighted');
      const body = await p.locator('body').innerText();
      assert(!body.includes('WIRE-SECRET-7') && !body.includes('INTERNAL-NOTE-7'), 'internal fields stay private');
      assert(body.includes(head.hash), 'the head hash is shown');
      if (lang === 'zh-CN') assert(CJK.test(await p.locator('h1').innerText()), 'Chinese heading');
      await shot(p, `ledger-${lang}.png`);
      assert(p.problems.length === 0, p.problems.join(' | '));
    } finally {
      await p.context().close();
    }
  }
  const bad = [];
  for (const lang of ['en', 'zh-CN']) {
    const found = await axeCheck(`ledger ${lang}`, `${APP}/ledger?lang=${lang}`);
    bad.push(...found.map((v) => `${lang}: ${v.id} (${v.impact})`));
  }
  assert(bad.length === 0, bad.join(', '));
});

await browser.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
