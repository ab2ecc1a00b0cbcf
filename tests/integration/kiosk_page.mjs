// Reads the kiosk browser's page over the DevTools protocol (the launcher's
// ESS_KIOSK_HEADLESS form) for tests/integration/kiosk.sh. Prints TAP lines
// without a plan (kiosk.sh numbers nothing and prints no plan either).
// Environment: CDP_PORT UI_PORT EXPECT (auth: logged in and the incident
// INCIDENT listed | noauth: only the "no access" screen) SHOT (a PNG path).
import path from 'node:path';

const { chromium } = await import(path.resolve('tests/ui/node_modules/playwright-core/index.mjs'));
const E = process.env;
const ui = `http://127.0.0.1:${E.UI_PORT}/`;
let failed = 0;
function ok(cond, desc, diag) {
  if (!cond) failed++;
  console.log(`${cond ? 'ok' : 'not ok'} - ${desc}`);
  if (!cond && diag !== undefined) console.log('# ' + String(diag).split('\n').join('\n# '));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// no single step may hang the check: each try gives up after 5 s and is
// retried. The page waits are 30 s: under a loaded make check a cold
// Chromium once took more than 15 s to show the no-access screen
const bounded = (p, ms) => Promise.race([p, sleep(ms).then(() => null)]);
async function until(ms, fn) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try { last = await bounded(fn(), 5000); if (last) return last; } catch (e) { last = null; }
    await sleep(250);
  }
  return last;
}

// A DevTools attachment made while the browser is still moving from the
// file:// start page to ess-ui (a cross-origin navigation: a new renderer)
// can stay deaf: every call on that page times out although the page
// itself is fine. Once seen in CI, on a warm second start. So a check that
// gets no answer for 10 s drops the connection and attaches again.
let browser;
let page;
async function attach() {
  if (browser) await bounded(browser.close().catch(() => {}), 5000);
  page = null;
  browser = await until(15000, () => chromium.connectOverCDP(`http://127.0.0.1:${E.CDP_PORT}`));
  if (!browser) return false;
  page = await until(15000, () => browser.contexts().flatMap((c) => c.pages())
    .find((p) => p.url().startsWith(ui)));
  return !!page;
}
async function check(ms, fn) {
  const end = Date.now() + ms;
  let last = null;
  while (Date.now() < end) {
    last = await until(Math.min(10000, end - Date.now()), () => fn(page));
    if (last || Date.now() >= end) break;
    await attach();
  }
  return last;
}
async function pageText() {
  return (await bounded(page.evaluate(() => location.pathname + ' | ' + document.body.innerText.slice(0, 400))
    .catch((e) => 'no answer: ' + e.message), 5000)) || 'no answer';
}

try {
  const attached = await attach();
  ok(!!browser, 'the kiosk browser answers on its DevTools port');
  if (!browser) process.exit(1);
  // the start page moves on to ess-ui by itself
  ok(attached, 'the start page led the browser to ess-ui', browser.contexts().flatMap((c) => c.pages()).map((p) => p.url()).join(' '));
  if (!attached) process.exit(1);
  if (E.EXPECT === 'auth') {
    const shown = await check(30000, async (pg) => !(await pg.isVisible('#noauth')) &&
      (await pg.textContent('#net')).length > 0 &&
      (await pg.locator(`#list li[data-id="${E.INCIDENT}"]`).count()) === 1);
    ok(shown, 'logged in: the status bar and the dispatched incident are shown', await pageText());
    const gps = await check(5000, (pg) => pg.textContent('#gps'));
    ok(gps && gps.length > 0, 'the status bar shows the GPS state', gps);
    ok(!/token/.test(page.url()), 'the token is gone from the address bar', page.url());
    // the session is a cookie now, not the token: an API call from the page works
    const st = await check(10000, (pg) => pg.evaluate(async () => (await fetch('/api/call', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"method":"status"}',
    })).status));
    ok(st === 200, 'the page\'s session cookie opens the API', st);
  } else {
    const refused = await check(30000, (pg) => pg.isVisible('#noauth'));
    ok(refused, 'a wrong token: the page shows only "no access"', await pageText());
    ok(await check(5000, async (pg) => (await pg.locator('#list li').count()) === 0),
      'a wrong token: no incident is shown', await pageText());
  }
  if (E.SHOT) await bounded(page.screenshot({ path: E.SHOT }).catch(() => {}), 10000);
} catch (e) {
  ok(false, 'the page check crashed', e && e.stack || e);
} finally {
  // the browser is the launcher's: disconnect, kiosk.sh stops it by pid
  if (browser) await bounded(browser.close().catch(() => {}), 5000);
}
process.exit(failed ? 1 : 0);
