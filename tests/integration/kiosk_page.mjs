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
// no single step may hang the check (a page caught mid-navigation can keep
// a DevTools call waiting): each try gives up after 5 s and is retried. The
// page waits are 30 s: under a loaded make check a cold Chromium took more
// than 15 s to show the no-access screen once
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

let browser;
try {
  browser = await until(15000, () => chromium.connectOverCDP(`http://127.0.0.1:${E.CDP_PORT}`));
  ok(!!browser, 'the kiosk browser answers on its DevTools port');
  if (!browser) process.exit(1);
  // the start page moves on to ess-ui by itself: find that page
  const page = await until(15000, () => browser.contexts().flatMap((c) => c.pages())
    .find((p) => p.url().startsWith(ui)));
  ok(!!page, 'the start page led the browser to ess-ui', browser.contexts().flatMap((c) => c.pages()).map((p) => p.url()).join(' '));
  if (!page) process.exit(1);
  if (E.EXPECT === 'auth') {
    const shown = await until(30000, async () => !(await page.isVisible('#noauth')) &&
      (await page.textContent('#net')).length > 0 &&
      (await page.locator(`#list li[data-id="${E.INCIDENT}"]`).count()) === 1);
    ok(shown, 'logged in: the status bar and the dispatched incident are shown',
      await page.evaluate(() => document.body.innerText.slice(0, 400)));
    const gps = await until(5000, () => page.textContent('#gps'));
    ok(gps && gps.length > 0, 'the status bar shows the GPS state', gps);
    ok(!/token/.test(page.url()), 'the token is gone from the address bar', page.url());
    // the session is a cookie now, not the token: an API call from the page works
    const st = await until(10000, () => page.evaluate(async () => (await fetch('/api/call', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"method":"status"}',
    })).status));
    ok(st === 200, 'the page\'s session cookie opens the API', st);
  } else {
    const refused = await until(30000, () => page.isVisible('#noauth'));
    ok(refused, 'a wrong token: the page shows only "no access"');
    ok(await until(5000, async () => (await page.locator('#list li').count()) === 0),
      'a wrong token: no incident is shown');
  }
  if (E.SHOT) await bounded(page.screenshot({ path: E.SHOT }).catch(() => {}), 10000);
} catch (e) {
  ok(false, 'the page check crashed', e && e.stack || e);
} finally {
  // the browser is the launcher's: disconnect, kiosk.sh stops it by pid
  if (browser) await bounded(browser.close().catch(() => {}), 5000);
}
process.exit(failed ? 1 : 0);
