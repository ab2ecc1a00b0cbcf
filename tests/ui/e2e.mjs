// End-to-end test of the touch UI in Debian's headless Chromium, against
// the real programs (tests/ui/stack.sh: refserver, gpsd via gpsfake, essd,
// ess-ui). Prints TAP ("ok N - …" / "not ok N - …") for tests/run.sh.
// Environment: UI_PORT UI_TOKEN SRV_PORT SRV_PID ESSD_PID GPS_PGID ADMIN DEVICE UNIT ART ESSCTL SOCK.
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';

const E = process.env;
const UI = `http://127.0.0.1:${E.UI_PORT}`;
const SRV = `http://127.0.0.1:${E.SRV_PORT}`;
const ART = E.ART;
let n = 0;
let failed = 0;
function ok(cond, desc, diag) {
  n++;
  if (!cond) failed++;
  console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${desc}`);
  if (!cond && diag !== undefined) console.log('# ' + String(diag).split('\n').join('\n# '));
  return cond;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(ms, fn) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = null; }
    await sleep(250);
  }
  return last;
}

// A raw request: node's http lets a test send any Host, Origin or cookie.
function raw(method, path, headers, body) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: E.UI_PORT, method, path, headers }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; if (data.length > 65536) res.destroy(); });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
      res.on('error', () => resolve({ status: 0, headers: {}, body: data }));
      // an event stream never ends: the status is enough
      if (String(res.headers['content-type'] || '').startsWith('text/event-stream')) {
        res.destroy();
        resolve({ status: res.statusCode, headers: res.headers, body: '' });
      }
    });
    req.on('error', (e) => resolve({ status: 0, headers: {}, body: String(e) }));
    if (body) req.write(body);
    req.end();
  });
}

async function admin(method, path, body) {
  const r = await fetch(SRV + path, {
    method,
    headers: { Authorization: `Bearer ${E.ADMIN}`, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const t = await r.text();
  try { return JSON.parse(t); } catch (e) { return { status: r.status, text: t }; }
}
function incident(id, extra) {
  return Object.assign({
    id, unit: E.UNIT, category: 'assault_threat', priority: 1, silent: false,
    location: { lat: 13.7563, lon: 100.5018, accuracy_m: 8 },
    address: 'ถนนราชดำเนินกลาง แขวงบวรนิเวศ', summary: 'เพื่อนบ้านข่มขู่หญิงสูงอายุ (neighbour threatening an elderly woman)',
    reporter: { name: 'มาลี สุขใจ', phone: '089-765-4321', contact_ok: true },
    subjects: [{ role: 'victim', age_group: 'elderly', notes: 'อยู่คนเดียว' }],
  }, extra || {});
}
async function serverStatuses(id) {
  const j = await admin('GET', `/admin/devices/${E.DEVICE}/events`);
  return (j.events || []).filter((e) => e.result === 'accepted' && e.event.type === 'status' &&
    e.event.incident_id === id).map((e) => e.event.status);
}

// The bearing arrow, checked against the test's own great-circle bearing
// from essd's fix (essctl status, read independently of the page) to the
// incident's known location.
const INC_LOC = { lat: 13.7563, lon: 100.5018 };
function bearingDeg(lat1, lon1, lat2, lon2) {
  const r = Math.PI / 180;
  const y = Math.sin((lon2 - lon1) * r) * Math.cos(lat2 * r);
  const x = Math.cos(lat1 * r) * Math.sin(lat2 * r) - Math.sin(lat1 * r) * Math.cos(lat2 * r) * Math.cos((lon2 - lon1) * r);
  return ((Math.atan2(y, x) / r) % 360 + 360) % 360;
}
const angDiff = (a, b) => Math.abs((((a - b) % 360) + 540) % 360 - 180);
function essdFix() {
  const j = JSON.parse(execFileSync(E.ESSCTL, ['-s', E.SOCK, '--json', 'status'], { encoding: 'utf8' }));
  return (j.result || j).last_fix;
}
async function arrowOf(page) {
  return page.evaluate(() => ({
    mode: document.getElementById('arrow-mode').dataset.mode,
    label: document.getElementById('arrow-mode').textContent,
    rot: parseFloat((/rotate\(([-0-9.]+)deg\)/.exec(document.getElementById('arrow-g').style.transform) || [])[1]),
  }));
}

async function security() {
  const host = `127.0.0.1:${E.UI_PORT}`;
  const origin = `http://${host}`;
  const auth = `Bearer ${E.UI_TOKEN}`;
  const body = JSON.stringify({ method: 'status' });
  const good = await raw('POST', '/api/call', { Host: host, Origin: origin, Authorization: auth }, body);
  ok(good.status === 200 && JSON.parse(good.body).ok === true, 'security: the token, our Host and Origin: answered', good.status + ' ' + good.body);
  const csp = String(good.headers['content-security-policy'] || '');
  const page = await raw('GET', '/', { Host: host });
  const pcsp = String(page.headers['content-security-policy'] || '');
  ok(pcsp.includes("default-src 'self'") && pcsp.includes("script-src 'self'") && !pcsp.includes('unsafe') &&
     csp === pcsp && page.headers['x-frame-options'] === 'DENY', 'security: strict CSP on the page and the API', pcsp);
  const notok = await raw('POST', '/api/call', { Host: host, Origin: origin }, body);
  ok(notok.status === 401, 'security: no token -> 401', notok.status);
  const badtok = await raw('POST', '/api/call', { Host: host, Origin: origin, Authorization: 'Bearer ' + '0'.repeat(64) }, body);
  ok(badtok.status === 401, 'security: a wrong token -> 401', badtok.status);
  const ev = await raw('GET', '/api/events', { Host: host });
  ok(ev.status === 401, 'security: the event stream without token -> 401', ev.status);
  const cross = await raw('POST', '/api/call', { Host: host, Origin: 'http://evil.example', Authorization: auth }, body);
  ok(cross.status === 403, 'security: a foreign Origin -> 403 (even with the token)', cross.status);
  const noorig = await raw('POST', '/api/call', { Host: host, Authorization: auth }, body);
  ok(noorig.status === 403, 'security: a POST without Origin -> 403', noorig.status);
  const rebind = await raw('POST', '/api/call', { Host: `rebind.attacker.test:${E.UI_PORT}`, Origin: `http://rebind.attacker.test:${E.UI_PORT}`, Authorization: auth }, body);
  ok(rebind.status === 421, 'security: DNS rebinding (a foreign name for 127.0.0.1) -> 421', rebind.status);
  const fhost = await raw('GET', '/', { Host: 'evil.example' });
  ok(fhost.status === 421, 'security: a foreign Host for the page -> 421', fhost.status);
  const site = await raw('POST', '/api/call', { Host: host, Origin: origin, Authorization: auth, 'Sec-Fetch-Site': 'cross-site' }, body);
  ok(site.status === 403, 'security: Sec-Fetch-Site cross-site -> 403', site.status);
  const unlock = await raw('POST', '/api/call', { Host: host, Origin: origin, Authorization: auth }, JSON.stringify({ method: 'unlock' }));
  ok(unlock.status === 403, 'security: a method the UI may not call (unlock) -> 403', unlock.status);
  const big = await raw('POST', '/api/call', { Host: host, Origin: origin, Authorization: auth }, 'x'.repeat(20000));
  ok(big.status === 413, 'security: an oversized body -> 413', big.status);
  const cookie = await raw('POST', '/api/call', { Host: host, Origin: origin, Cookie: 'ess_ui=' + E.UI_TOKEN }, body);
  ok(cookie.status === 401, 'security: the token itself is not a session cookie', cookie.status);
}

async function main() {
  fs.mkdirSync(ART, { recursive: true });
  await security();

  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--headless=new', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required'],
  });
  // Count the sounds the page makes: every oscillator started.
  const instrument = () => {
    window.__sounds = 0;
    const start = OscillatorNode.prototype.start;
    OscillatorNode.prototype.start = function (...a) { window.__sounds++; return start.apply(this, a); };
  };
  const cspErrors = [];
  try {
    // without the token: nothing but the refusal
    const anon = await browser.newPage();
    await anon.goto(UI + '/');
    ok(await until(5000, () => anon.isVisible('#noauth')), 'browser: without the token the page shows only "no access"');
    await anon.close();

    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await ctx.addInitScript(instrument);
    const page = await ctx.newPage();
    page.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) cspErrors.push(m.text()); });
    await page.goto(`${UI}/#token=${E.UI_TOKEN}`);
    ok(await until(10000, async () => (await page.textContent('#net')).length > 0 && !(await page.isVisible('#noauth'))),
      'browser: logged in with the per-boot token (URL fragment)');
    ok(!page.url().includes('token'), 'browser: the token is gone from the address bar', page.url());
    const th = await page.textContent('[data-k=assigned]');
    ok(/[\u0E00-\u0E7F]/.test(th), 'browser: Thai by default', th);
    const fonts = await page.evaluate(() => getComputedStyle(document.body).fontFamily);
    ok(/Garuda|Loma|Tlwg/.test(fonts), 'browser: the TLWG fonts are named', fonts);
    // always visible: the GPS fix (gpsfake's drive) with its accuracy, the clock's state
    const bar = await until(15000, async () => {
      const g = await page.textContent('#gps');
      const c = await page.textContent('#clockq');
      return /±\d+ m/.test(g) && c.length > 0 ? g + ' / ' + c : null;
    });
    ok(bar, 'status bar: GPS with its accuracy and the clock state', bar);
    // day and night themes: the switch changes the colours, and is kept
    const bg = () => page.evaluate(() => document.body.className + ' ' + getComputedStyle(document.body).backgroundColor);
    const bg1 = await bg();
    await page.click('#theme');
    const bg2 = await bg();
    await page.click('#theme');
    const bg3 = await bg();
    ok(bg1 !== bg2 && bg1 === bg3 && /night|day/.test(bg2), 'day and night themes switch', `${bg1} -> ${bg2} -> ${bg3}`);
    await page.screenshot({ path: `${ART}/ui-1280x800-empty.png` });

    // a new assignment: full-screen alert with a sound
    await admin('POST', '/admin/incidents', incident('UI-0001'));
    const alerted = await until(20000, () => page.isVisible('#alert'));
    ok(alerted, 'new assignment: the full-screen alert appears');
    const cat = await page.textContent('#alert-cat');
    const addr = await page.textContent('#alert-addr');
    ok(cat.length > 0 && addr.includes('ราชดำเนิน'), 'new assignment: category and address shown', cat + ' / ' + addr);
    ok(!(await page.isVisible('#alert-silent')), 'new assignment: no SILENT banner for an audible incident');
    const sounds1 = await until(3000, () => page.evaluate(() => window.__sounds));
    ok(sounds1 > 0, 'new assignment: the alert sound played', sounds1);
    await page.screenshot({ path: `${ART}/ui-1280x800-alert.png` });

    // acknowledge from the alert; the dispatcher sees it
    await page.click('#alert-ack');
    const acked = await until(20000, async () => (await serverStatuses('UI-0001')).includes('acknowledged'));
    ok(acked, 'status tap: acknowledged reached the reference server');
    await until(5000, () => page.isVisible('#d-buttons button[data-status=en_route]'));
    await page.click('#d-buttons button[data-status=en_route]');
    const enr = await until(20000, async () => (await serverStatuses('UI-0001')).includes('en_route'));
    ok(enr, 'status tap: en_route reached the reference server');
    // forbidden transitions are not offered (essd's rules, not the page's)
    await until(5000, async () => (await page.locator('#d-buttons button[data-status=en_route]').count()) === 0);
    const offered = await page.$$eval('#d-buttons button', (bs) => bs.map((b) => b.dataset.status));
    ok(!offered.includes('acknowledged') && !offered.includes('en_route') && offered.includes('on_scene'),
      'forbidden transitions (back to acknowledged, en_route again) are not offered', offered.join(','));
    const dist = await until(15000, async () => { const t = await page.textContent('#d-dist'); return /\d/.test(t) ? t : null; });
    ok(dist, 'details: distance from the GPS fix shown', dist);
    // moving (gpsfake's drive): heading-up, the arrow at bearing - track.
    // The page reads essd every 3 s and the car turns: try until one
    // reading agrees, and only count one where north-up would not.
    let last = null;
    const headingUp = await until(45000, async () => {
      const f = essdFix();
      const a = await arrowOf(page);
      if (!f || typeof f.track_deg !== 'number' || !(f.speed_m_s >= 3) || f.age_s > 2) return false;
      const b = bearingDeg(f.lat, f.lon, INC_LOC.lat, INC_LOC.lon);
      const want = ((b - f.track_deg) % 360 + 360) % 360;
      last = { a, want, b, track: f.track_deg, speed: f.speed_m_s };
      return a.mode === 'heading' && angDiff(a.rot, want) <= 6 && angDiff(want, b) > 15;
    });
    ok(headingUp, 'moving: the bearing arrow is heading-up (bearing - track, within 6 degrees) and says so', JSON.stringify(last));
    await page.fill('#note-text', 'ถึงปากซอยแล้ว');
    await page.click('#note-send');
    const noted = await until(20000, async () => {
      const j = await admin('GET', `/admin/devices/${E.DEVICE}/events`);
      return (j.events || []).some((e) => e.result === 'accepted' && e.event.type === 'note' && e.event.incident_id === 'UI-0001');
    });
    ok(noted, 'note entry reached the reference server');
    await page.screenshot({ path: `${ART}/ui-1280x800-detail.png` });

    // a silent one: the banner, never a sound
    const before = await page.evaluate(() => window.__sounds);
    await admin('POST', '/admin/incidents', incident('UI-0002', {
      category: 'confinement', priority: 1, silent: true, address: 'ซอยสุขุมวิท 11',
      summary: 'เด็ก (9) ถูกขังในห้อง ส่งข้อความได้อย่างเดียว', reporter: { name: 'สมชาย ใจดี', phone: '081-234-5678', contact_ok: false },
      subjects: [{ role: 'victim', age_group: 'child' }],
    }));
    ok(await until(20000, () => page.isVisible('#alert-silent')), 'silent incident: the SILENT banner is shown');
    await sleep(1500);
    const after = await page.evaluate(() => window.__sounds);
    ok(after === before, 'silent incident: no sound', `${before} -> ${after}`);
    await page.screenshot({ path: `${ART}/ui-1280x800-silent.png` });
    await page.click('#alert-later');

    // the English switch
    await page.click('#lang');
    const en = await page.textContent('[data-k=assigned]');
    ok(en === 'Assigned incidents', 'English switch', en);
    await page.click('#theme');
    await page.screenshot({ path: `${ART}/ui-1280x800-night-en.png` });
    await page.click('#theme');
    await page.click('#lang');

    // cancellation shown clearly
    await admin('POST', '/admin/incidents/UI-0002/cancel');
    await admin('POST', '/admin/incidents/UI-0001/notes', { text: 'ประตูหลังเปิดอยู่ (back gate open)' });
    await page.click('#list li[data-id="UI-0002"] button');
    ok(await until(20000, () => page.isVisible('#d-cancel')), 'cancellation: the detail says dispatch cancelled it',
      await page.textContent('#d-cancel'));
    ok((await page.locator('#d-buttons button').count()) === 0, 'cancellation: no status button is offered any more');
    await page.screenshot({ path: `${ART}/ui-1280x800-cancelled.png` });
    await page.click('#list li[data-id="UI-0001"] button');
    ok(await until(20000, async () => (await page.textContent('#d-fields')).includes('back gate open')),
      'details: a new dispatch note appears');
    // SOS: a tap does nothing, a 2 s hold sends it
    const sosCount = async () => {
      const j = await admin('GET', `/admin/devices/${E.DEVICE}/events`);
      return (j.events || []).filter((e) => e.result === 'accepted' && e.event.type === 'sos').length;
    };
    const box = await page.locator('#sos').boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await sleep(400);
    await page.mouse.up();
    await sleep(2500);
    ok((await sosCount()) === 0, 'SOS: a short tap sends nothing');
    await page.mouse.down();
    await sleep(2400);
    await page.mouse.up();
    ok(await until(20000, async () => (await sosCount()) === 1), 'SOS: a 2 s hold reaches the reference server');

    // lock: dispatch locks the device, the screen hides everything but SOS
    await admin('POST', `/admin/devices/${E.DEVICE}/commands`, { type: 'lock' });
    ok(await until(20000, () => page.isVisible('#lock')), 'lock: the lock screen covers the incidents');
    ok(await page.isVisible('#sos'), 'lock: SOS stays reachable');
    await page.screenshot({ path: `${ART}/ui-1280x800-locked.png` });
    execFileSync(E.ESSCTL, ['-s', E.SOCK, 'unlock']);
    ok(await until(10000, async () => !(await page.isVisible('#lock'))), 'lock: unlocking on the device shows them again');

    // conflict: dispatch cancels while the device cannot hear it; the
    // status the responder taps meanwhile comes back "conflict"
    await admin('POST', '/admin/incidents', incident('UI-0003', {
      category: 'gang_gathering', priority: 3, address: 'ตลาดนัดจตุจักร', summary: 'กลุ่มวัยรุ่นมั่วสุม (youths gathering)',
      subjects: [],
    }));
    await until(20000, async () => (await page.isVisible('#alert')) && (await page.textContent('#alert-addr')).includes('จตุจักร'));
    await page.click('#alert-ack');
    await until(20000, async () => (await serverStatuses('UI-0003')).includes('acknowledged'));
    await admin('POST', '/admin/faults', { fail_for_s: 30 });
    await sleep(7000); // the poll held before the switch ends; the next ones fail
    await admin('POST', '/admin/incidents/UI-0003/cancel');
    await until(5000, () => page.isVisible('#d-buttons button[data-status=en_route]'));
    await page.click('#d-buttons button[data-status=en_route]');
    await admin('DELETE', '/admin/faults');
    ok(await until(60000, () => page.isVisible('#d-conflict')), 'conflict: the refused status is shown on the incident');
    ok(await until(20000, () => page.isVisible('#d-cancel')), 'conflict: and the cancellation once it arrives');
    await page.screenshot({ path: `${ART}/ui-1280x800-conflict.png` });

    // offline: the server goes away, an action is queued, the banner says so
    process.kill(Number(E.SRV_PID), 'SIGTERM');
    await page.click('#list li[data-id="UI-0001"] button');
    await until(5000, () => page.isVisible('#d-buttons button[data-status=on_scene]'));
    await page.click('#d-buttons button[data-status=on_scene]');
    const offline = await until(30000, async () => (await page.isVisible('#offline')) &&
      /^[1-9]/.test(await page.textContent('#queue')));
    ok(offline, 'offline: the banner and the queued count are shown', await page.textContent('#queue'));
    const banner = await page.textContent('#offline');
    ok(/[1-9]/.test(banner), 'offline: the banner counts the queued actions', banner);
    await page.screenshot({ path: `${ART}/ui-1280x800-offline.png` });

    // portrait handheld
    const p2 = await ctx.newPage();
    await p2.setViewportSize({ width: 480, height: 854 });
    await p2.goto(`${UI}/#token=${E.UI_TOKEN}`);
    await until(10000, async () => (await p2.locator('#list li').count()) >= 2);
    if (await p2.isVisible('#alert')) await p2.click('#alert-later');
    await p2.screenshot({ path: `${ART}/ui-480x854-list.png` });
    await p2.click('#list li[data-id="UI-0001"] button');
    await until(5000, () => p2.isVisible('#detail'));
    ok(await p2.isVisible('#back') && !(await p2.isVisible('#listpane')), 'portrait: one pane at a time, with a back button');
    await p2.screenshot({ path: `${ART}/ui-480x854-detail.png` });
    // every visible button is a 48 px target at least
    const small = await p2.$$eval('button', (bs) => bs.filter((b) => b.offsetParent !== null)
      .map((b) => b.getBoundingClientRect()).filter((r) => r.width < 48 || r.height < 48).length);
    ok(small === 0, 'touch targets are at least 48 px', small);
    ok(cspErrors.length === 0, 'no CSP violation in the page', cspErrors.join('\n'));
    // the GPS goes away: the last fix ages, the arrow turns north-up and
    // points at the bearing from that (now fixed) position
    process.kill(-Number(E.GPS_PGID), 'SIGTERM');
    await sleep(500);
    try { process.kill(-Number(E.GPS_PGID), 'SIGKILL'); } catch (e) { /* gone already */ }
    let lastN = null;
    const northUp = await until(20000, async () => {
      const f = essdFix();
      const a = await arrowOf(p2);
      if (!f) return false;
      const b = bearingDeg(f.lat, f.lon, INC_LOC.lat, INC_LOC.lon);
      lastN = { a, b, age: f.age_s };
      return a.mode === 'north' && angDiff(a.rot, b) <= 1.5;
    });
    ok(northUp, 'not moving (no fresh fix): the bearing arrow is north-up at the bearing from the last fix, and says so', JSON.stringify(lastN));
    await p2.screenshot({ path: `${ART}/ui-480x854-north-up.png` });
    // essd stops: ess-ui stays, the page says the device service is not reachable
    process.kill(Number(E.ESSD_PID), 'SIGTERM');
    ok(await until(15000, () => p2.isVisible('#essd-down')), 'essd gone: the page says so');
    await p2.screenshot({ path: `${ART}/ui-480x854-essd-down.png` });
  } finally {
    await browser.close();
  }
}

main().then(() => {
  console.log(`1..${n}`);
  process.exit(failed ? 1 : 0);
}, (e) => {
  console.log(`not ok ${n + 1} - the test crashed`);
  console.log('# ' + String(e && e.stack || e).split('\n').join('\n# '));
  console.log(`1..${n + 1}`);
  process.exit(1);
});
