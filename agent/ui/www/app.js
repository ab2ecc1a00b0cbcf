// The responder's screen. Talks to ess-ui only (same origin): POST
// /api/call passes a control-socket method to essd, /api/events streams
// essd's publications. The contract's status rules are not copied here:
// each incident summary carries "allowed", computed by essd.
'use strict';

const T = {
  th: {
    online: 'ออนไลน์', offline: 'ออฟไลน์', queued: 'รอส่ง', gps_none: 'GPS: ไม่มีสัญญาณ',
    gps_stale: 'GPS: เก่า', gps_ok: 'GPS', clock_gps: 'เวลา: GPS', clock_system: 'เวลา: ระบบ',
    clock_unsynced: 'เวลา: ไม่ตรง', day: 'กลางวัน', night: 'กลางคืน',
    offline_long: 'ออฟไลน์ — การกระทำ {n} รายการเก็บไว้ในเครื่องและจะส่งเมื่อกลับมาออนไลน์',
    essd_down: 'ติดต่อระบบในเครื่อง (essd) ไม่ได้ — กำลังลองใหม่',
    assigned: 'เหตุที่ได้รับมอบหมาย', no_incidents: 'ยังไม่มีเหตุ', back: '‹ กลับ',
    silent_long: 'เหตุเงียบ — ห้ามโทรหาผู้แจ้ง เข้าพื้นที่อย่างเงียบ',
    silent: 'เงียบ', new_assignment: 'ได้รับมอบหมายเหตุใหม่', acknowledge: 'รับทราบ',
    later: 'ภายหลัง', sos_hold: 'SOS (กดค้าง)', sos_sent: 'ส่ง SOS แล้ว',
    sos_keep: 'กดค้างไว้…', locked: 'เครื่องถูกล็อก',
    locked_long: 'ศูนย์สั่งล็อกเครื่องนี้ ติดต่อศูนย์หรือช่างเทคนิคเพื่อปลดล็อก ปุ่ม SOS ยังใช้ได้',
    noauth: 'ไม่มีสิทธิ์เข้าถึง', noauth_long: 'หน้าจอนี้ต้องเปิดจากเครื่องพร้อมโทเค็นประจำการบูต',
    send_note: 'ส่งบันทึก', note_sent: 'บันทึกแล้ว', note_ph: 'บันทึก / รายละเอียดการปิดเหตุ',
    confirm: 'แตะอีกครั้งเพื่อยืนยัน', saved: 'บันทึกในเครื่องแล้ว',
    priority: 'ความเร่งด่วน', address: 'ที่อยู่', summary: 'สรุป', reporter: 'ผู้แจ้ง',
    subjects: 'บุคคล', notes: 'บันทึกจากศูนย์', reported: 'แจ้งเมื่อ', state: 'สถานะศูนย์',
    status: 'สถานะ', location: 'พิกัด', contact_no: 'ห้ามติดต่อกลับ',
    ago_s: '{n} วินาทีที่แล้ว', ago_m: '{n} นาทีที่แล้ว', ago_h: '{n} ชม. {m} นาทีที่แล้ว',
    cancelled: 'ศูนย์ยกเลิกเหตุนี้ — หยุดปฏิบัติ', reassigned: 'ศูนย์มอบหมายเหตุนี้ให้หน่วยอื่นแล้ว',
    closed: 'ศูนย์ปิดเหตุนี้แล้ว', conflict: 'ศูนย์ไม่รับการเปลี่ยนสถานะ: {r}',
    refused: 'ไม่สำเร็จ: {r}', far: 'ไม่ทราบระยะ',
    s_new: 'ใหม่', s_acknowledged: 'รับทราบ', s_en_route: 'กำลังเดินทาง', s_on_scene: 'ถึงที่เกิดเหตุ',
    s_resolved: 'แก้ไขแล้ว', s_referred: 'ส่งต่อ', s_unable_to_locate: 'หาไม่พบ', s_declined: 'ปฏิเสธ',
    c_assault_threat: 'ข่มขู่ทำร้าย', c_confinement: 'กักขัง', c_sexual_abuse_risk: 'เสี่ยงถูกล่วงละเมิดทางเพศ',
    c_deranged_person: 'บุคคลคลุ้มคลั่ง', c_gang_gathering: 'มั่วสุมแก๊ง',
    st_assigned: 'มอบหมาย', st_cancelled: 'ยกเลิก', st_reassigned: 'ให้หน่วยอื่น', st_closed: 'ปิดแล้ว',
    a_child: 'เด็ก!', a_youth: 'เยาวชน', a_adult: 'ผู้ใหญ่', a_elderly: 'ผู้สูงอายุ!',
    r_victim: 'ผู้เสียหาย', r_suspect: 'ผู้ต้องสงสัย', r_other: 'อื่น ๆ', p: 'P{n}',
    north_up: 'ทิศเหนือขึ้น', heading_up: 'ทิศทางรถขึ้น',
  },
  en: {
    online: 'Online', offline: 'Offline', queued: 'queued', gps_none: 'GPS: no fix',
    gps_stale: 'GPS: stale', gps_ok: 'GPS', clock_gps: 'Clock: GPS', clock_system: 'Clock: system',
    clock_unsynced: 'Clock: unsynced', day: 'Day', night: 'Night',
    offline_long: 'OFFLINE — {n} action(s) kept on the device, sent when back online',
    essd_down: 'The device service (essd) is not reachable — retrying',
    assigned: 'Assigned incidents', no_incidents: 'No incidents yet', back: '‹ Back',
    silent_long: 'SILENT — do not call the reporter, approach quietly',
    silent: 'SILENT', new_assignment: 'New assignment', acknowledge: 'Acknowledge',
    later: 'Later', sos_hold: 'SOS (hold)', sos_sent: 'SOS sent', sos_keep: 'Keep holding…',
    locked: 'Device locked',
    locked_long: 'Dispatch locked this device. Call dispatch or a technician to unlock. SOS still works.',
    noauth: 'No access', noauth_long: 'This screen must be opened on the device with the per-boot token',
    send_note: 'Send note', note_sent: 'Note saved', note_ph: 'Note / resolution details',
    confirm: 'Tap again to confirm', saved: 'Saved on the device',
    priority: 'Priority', address: 'Address', summary: 'Summary', reporter: 'Reporter',
    subjects: 'Subjects', notes: 'Dispatch notes', reported: 'Reported', state: 'Dispatch',
    status: 'Status', location: 'Location', contact_no: 'do not contact',
    ago_s: '{n} s ago', ago_m: '{n} min ago', ago_h: '{n} h {m} min ago',
    cancelled: 'Dispatch CANCELLED this incident — stand down',
    reassigned: 'Dispatch gave this incident to another unit', closed: 'Dispatch closed this incident',
    conflict: 'Dispatch did not accept the status: {r}', refused: 'Not done: {r}', far: 'distance unknown',
    s_new: 'New', s_acknowledged: 'Acknowledged', s_en_route: 'En route', s_on_scene: 'On scene',
    s_resolved: 'Resolved', s_referred: 'Referred', s_unable_to_locate: 'Unable to locate',
    s_declined: 'Declined',
    c_assault_threat: 'Assault threat', c_confinement: 'Confinement',
    c_sexual_abuse_risk: 'Sexual abuse risk', c_deranged_person: 'Deranged person',
    c_gang_gathering: 'Gang gathering',
    st_assigned: 'Assigned', st_cancelled: 'Cancelled', st_reassigned: 'Reassigned', st_closed: 'Closed',
    a_child: 'CHILD!', a_youth: 'youth', a_adult: 'adult', a_elderly: 'ELDERLY!',
    r_victim: 'victim', r_suspect: 'suspect', r_other: 'other', p: 'P{n}',
    north_up: 'North up', heading_up: 'Heading up',
  },
};
const FINAL = ['resolved', 'referred', 'unable_to_locate', 'declined'];
// Below this speed (m/s, 9 km/h) a GPS track over ground is noise, and a
// fix older than HEADING_MAX_AGE_S says nothing about where the nose points
// now: the arrow is then north-up.
const HEADING_MIN_SPEED = 2.5;
const HEADING_MAX_AGE_S = 5;

const S = {
  lang: localStorage.getItem('essLang') || 'th',
  theme: localStorage.getItem('essTheme') || '',
  status: null,
  incidents: [],
  essd: true,
  selected: null,
  detail: null, // the "show" answer of the selected incident
  conflicts: {}, // id -> reason
  alerts: [], // ids waiting for the full-screen alert
  dismissed: new Set(),
  shownAlert: null,
};

const $ = (id) => document.getElementById(id);
function t(k, vars) {
  let s = (T[S.lang] && T[S.lang][k]) || T.en[k] || k;
  for (const v in vars || {}) s = s.replace('{' + v + '}', vars[v]);
  return s;
}
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---- talking to ess-ui ----

async function call(method, params) {
  const r = await fetch('/api/call', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(params ? { method, params } : { method }),
    credentials: 'same-origin',
  });
  let j = null;
  try { j = await r.json(); } catch (e) { j = null; }
  if (r.status === 401) { showNoAuth(); throw new Error('unauthorized'); }
  if (!j) throw new Error('HTTP ' + r.status);
  return j; // {ok, result} or {ok:false, error:{code,message}}
}

async function login() {
  // The kiosk opens #token=…; keep it for this tab only, out of the URL.
  const m = /[#&]token=([0-9a-f]{64})/.exec(location.hash);
  if (m) {
    sessionStorage.setItem('essToken', m[1]);
    history.replaceState(null, '', location.pathname);
  }
  const tok = sessionStorage.getItem('essToken');
  if (!tok) return false;
  const r = await fetch('/api/login', {
    method: 'POST', headers: { Authorization: 'Bearer ' + tok }, credentials: 'same-origin',
  });
  return r.ok;
}

function showNoAuth() { $('noauth').hidden = false; }

// ---- rendering ----

function applyLang() {
  document.documentElement.lang = S.lang;
  for (const e of document.querySelectorAll('[data-k]')) e.textContent = t(e.dataset.k);
  $('lang').textContent = S.lang === 'th' ? 'EN' : 'ไทย';
  $('note-text').placeholder = t('note_ph');
  renderAll();
}

function nightNow() { const h = new Date().getHours(); return h >= 19 || h < 6; }
function applyTheme() {
  const night = S.theme ? S.theme === 'night' : nightNow();
  document.body.classList.toggle('night', night);
  document.body.classList.toggle('day', !night);
  $('theme').textContent = night ? '☀ ' + t('day') : '☾ ' + t('night');
}

function fmtDist(m) {
  if (typeof m !== 'number') return t('far');
  return m >= 1000 ? (m / 1000).toFixed(1) + ' km' : Math.round(m) + ' m';
}
function fmtAgo(iso) {
  const ms = Date.now() - Date.parse(iso);
  if (!(ms >= 0)) return '';
  const s = Math.floor(ms / 1000);
  if (s < 60) return t('ago_s', { n: s });
  if (s < 3600) return t('ago_m', { n: Math.floor(s / 60) });
  return t('ago_h', { n: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
}
function active(i) { return i.state === 'assigned' && !FINAL.includes(i.status); }
function sorted(list) {
  return list.slice().sort((a, b) =>
    (active(b) - active(a)) || ((a.priority || 9) - (b.priority || 9)) ||
    ((typeof a.distance_m === 'number' ? a.distance_m : 1e12) -
     (typeof b.distance_m === 'number' ? b.distance_m : 1e12)) ||
    String(a.id).localeCompare(String(b.id)));
}

function renderBar() {
  const st = S.status;
  const online = !!(st && st.online);
  const net = $('net');
  net.textContent = online ? t('online') : t('offline');
  net.className = 'pill ' + (online ? 'good' : 'bad');
  const q = st && st.queue ? st.queue.events : 0;
  $('queue').textContent = q + ' ' + t('queued');
  $('queue').className = 'pill' + (q ? ' warn' : '');
  const f = st && st.last_fix;
  const g = $('gps');
  if (!f) { g.textContent = t('gps_none'); g.className = 'pill bad'; }
  else if (f.age_s > 30) { g.textContent = t('gps_stale'); g.className = 'pill warn'; }
  else {
    g.textContent = t('gps_ok') + (typeof f.accuracy_m === 'number' ? ' ±' + Math.round(f.accuracy_m) + ' m' : '');
    g.className = 'pill good';
  }
  const c = (st && st.clock) || 'unsynced';
  $('clockq').textContent = t('clock_' + c);
  $('clockq').className = 'pill ' + (c === 'unsynced' ? 'warn' : 'good');
  const ob = $('offline');
  ob.hidden = !st || online;
  ob.textContent = t('offline_long', { n: q });
  $('essd-down').hidden = S.essd;
  $('lock').hidden = !(st && st.locked);
}

function tick() {
  $('time').textContent = new Date().toLocaleTimeString(S.lang === 'th' ? 'th-TH' : 'en-GB',
    { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  if (S.selected) renderDetailLive();
}

function renderList() {
  const ul = $('list');
  ul.textContent = '';
  const list = sorted(S.incidents);
  $('empty').hidden = list.length > 0;
  for (const i of list) {
    const li = el('li', 'inc' + (active(i) ? '' : ' done') + (i.id === S.selected ? ' sel' : ''));
    li.dataset.id = i.id;
    li.dataset.status = i.status;
    const b = el('button', 'incbtn');
    b.type = 'button';
    const top = el('div', 'row');
    top.append(el('span', 'pri p' + (i.priority || 3), t('p', { n: i.priority || '?' })),
      el('span', 'cat', t('c_' + i.category)));
    if (i.silent) top.append(el('span', 'tag silent', t('silent')));
    const bot = el('div', 'row muted');
    bot.append(el('span', 'st', t('s_' + i.status)),
      el('span', 'state', i.state !== 'assigned' ? t('st_' + i.state) : ''),
      el('span', 'dist', fmtDist(i.distance_m)));
    b.append(top, bot);
    b.addEventListener('click', () => select(i.id));
    li.append(b);
    ul.append(li);
  }
}

function summaryOf(id) { return S.incidents.find((i) => i.id === id); }

function field(dl, k, v, cls) {
  if (v === undefined || v === null || v === '') return;
  const dt = el('dt', '', t(k));
  const dd = el('dd', cls || '');
  if (v instanceof Node) dd.append(v); else dd.textContent = String(v);
  dl.append(dt, dd);
}

function renderDetail() {
  const sec = $('detail');
  document.body.classList.toggle('has-detail', !!S.selected);
  if (!S.selected) { sec.hidden = true; return; }
  sec.hidden = false;
  const s = summaryOf(S.selected) || (S.detail && S.detail.local) || {};
  const doc = (S.detail && S.detail.incident) || {};
  $('d-title').textContent = t('p', { n: s.priority || '?' }) + ' · ' + t('c_' + s.category);
  const cancel = $('d-cancel');
  cancel.hidden = !s.state || s.state === 'assigned';
  if (!cancel.hidden) cancel.textContent = t(s.state);
  const cf = S.conflicts[S.selected];
  $('d-conflict').hidden = !cf;
  if (cf) $('d-conflict').textContent = t('conflict', { r: cf });
  $('d-silent').hidden = !s.silent;
  renderButtons(s);
  const dl = $('d-fields');
  dl.textContent = '';
  field(dl, 'status', t('s_' + s.status));
  field(dl, 'state', t('st_' + s.state));
  field(dl, 'address', doc.address, 'strong');
  field(dl, 'summary', doc.summary, 'strong');
  if (Array.isArray(doc.subjects) && doc.subjects.length) {
    const ul = el('ul', 'subjects');
    for (const p of doc.subjects) {
      const age = p.age_group ? t('a_' + p.age_group) : '';
      const li = el('li', p.age_group === 'child' || p.age_group === 'elderly' ? 'vuln' : '',
        [t('r_' + p.role), age].filter(Boolean).join(' · ') + (p.notes ? ' — ' + p.notes : ''));
      ul.append(li);
    }
    field(dl, 'subjects', ul);
  }
  if (doc.reporter) {
    const r = doc.reporter;
    const txt = [r.name, s.silent || r.contact_ok === false ? null : r.phone, r.line_id]
      .filter(Boolean).join(' · ') + (s.silent || r.contact_ok === false ? ' (' + t('contact_no') + ')' : '');
    field(dl, 'reporter', txt);
  }
  if (Array.isArray(doc.dispatch_notes) && doc.dispatch_notes.length) {
    const ul = el('ul', 'notes');
    for (const n of doc.dispatch_notes) ul.append(el('li', '', n.text));
    field(dl, 'notes', ul);
  }
  if (doc.location) field(dl, 'location', doc.location.lat.toFixed(5) + ', ' + doc.location.lon.toFixed(5));
  const rep = Date.parse(doc.reported_at || s.reported_at);
  if (rep) field(dl, 'reported', new Date(rep).toLocaleString(S.lang === 'th' ? 'th-TH' : 'en-GB'));
  renderDetailLive();
}

// The direction of travel when moving, else null (essd's status: last_fix
// track_deg and speed_m_s, docs/essd.md).
function heading() {
  const f = S.status && S.status.last_fix;
  if (!f || typeof f.track_deg !== 'number' || typeof f.speed_m_s !== 'number') return null;
  if (f.speed_m_s < HEADING_MIN_SPEED || !(f.age_s <= HEADING_MAX_AGE_S)) return null;
  return f.track_deg;
}

function renderDetailLive() {
  const s = summaryOf(S.selected) || {};
  $('d-dist').textContent = fmtDist(s.distance_m);
  const g = $('arrow-g');
  const has = typeof s.bearing_deg === 'number';
  $('arrow').classList.toggle('unknown', !has);
  // Moving: heading-up, the arrow points where to go relative to the car's
  // nose (the top of the screen) and the N mark turns to true north.
  // Standing or no track: north-up.
  const h = heading();
  const rot = has ? (((s.bearing_deg - (h === null ? 0 : h)) % 360) + 360) % 360 : 0;
  g.style.transform = 'rotate(' + rot.toFixed(1) + 'deg)';
  $('arrow-n').style.transform = 'rotate(' + (h === null ? 0 : -h).toFixed(1) + 'deg)';
  const mode = $('arrow-mode');
  mode.dataset.mode = h === null ? 'north' : 'heading';
  mode.textContent = h === null ? t('north_up') : '▲ ' + t('heading_up');
  mode.className = 'mode' + (h === null ? '' : ' heading');
  $('d-age').textContent = s.reported_at ? t('reported') + ' ' + fmtAgo(s.reported_at) : '';
}

// Big buttons for exactly the statuses essd says the rules accept next.
let pendingConfirm = null;
function renderButtons(s) {
  const box = $('d-buttons');
  box.textContent = '';
  for (const st of s.allowed || []) {
    const b = el('button', 'status s-' + st + (FINAL.includes(st) ? ' final' : ' go'), t('s_' + st));
    b.type = 'button';
    b.dataset.status = st;
    b.addEventListener('click', () => tapStatus(s.id, st, b));
    box.append(b);
  }
}

async function tapStatus(id, st, b) {
  // a final status needs a second tap: a bump in the road must not close an incident
  if (FINAL.includes(st) && pendingConfirm !== b) {
    pendingConfirm = b;
    b.textContent = t('confirm');
    b.classList.add('confirming');
    setTimeout(() => { if (pendingConfirm === b) { pendingConfirm = null; renderDetail(); } }, 4000);
    return;
  }
  pendingConfirm = null;
  const params = { id };
  let method = 'ack';
  if (st !== 'acknowledged') {
    method = 'set';
    params.status = st;
    const text = $('note-text').value.trim();
    if (FINAL.includes(st) && text) params.text = text;
  }
  const j = await call(method, params);
  if (j.ok) {
    if (params.text) $('note-text').value = '';
    toast(t('saved'));
  } else toast(t('refused', { r: j.error ? j.error.message : '?' }), true);
  await refresh();
}

function toast(msg, bad) {
  const e = $('toast');
  e.textContent = msg;
  e.className = bad ? 'bad' : '';
  e.hidden = false;
  clearTimeout(toast.t);
  toast.t = setTimeout(() => { e.hidden = true; }, 3500);
}

function renderAll() { renderBar(); renderList(); renderDetail(); renderAlert(); }

// ---- the new-assignment alert ----

let audioCtx = null;
// Three rising two-tone beeps, generated: nothing to download, nothing to ship.
function playAlertSound() {
  try {
    audioCtx = audioCtx || new (window.AudioContext || window.webkitAudioContext)();
    if (audioCtx.state === 'suspended') audioCtx.resume();
    const t0 = audioCtx.currentTime + 0.05;
    for (let k = 0; k < 3; k++) {
      const o = audioCtx.createOscillator();
      const g = audioCtx.createGain();
      o.type = 'square';
      o.frequency.setValueAtTime(880, t0 + k * 0.5);
      o.frequency.setValueAtTime(1320, t0 + k * 0.5 + 0.18);
      g.gain.setValueAtTime(0.25, t0 + k * 0.5);
      g.gain.setValueAtTime(0, t0 + k * 0.5 + 0.36);
      o.connect(g).connect(audioCtx.destination);
      o.start(t0 + k * 0.5);
      o.stop(t0 + k * 0.5 + 0.4);
    }
  } catch (e) { /* no audio device: the screen still alerts */ }
}

function queueAlerts() {
  for (const i of S.incidents)
    if (i.state === 'assigned' && i.status === 'new' && !S.dismissed.has(i.id) &&
        !S.alerts.includes(i.id) && S.shownAlert !== i.id)
      S.alerts.push(i.id);
  if (!S.shownAlert && S.alerts.length) openAlert(S.alerts.shift());
}

async function openAlert(id) {
  S.shownAlert = id;
  const j = await call('show', { id }).catch(() => null);
  S.alertDoc = j && j.ok ? j.result.incident : {};
  const s = summaryOf(id) || {};
  renderAlert();
  if (!s.silent) playAlertSound(); // silent incidents never make a sound
}

function renderAlert() {
  const a = $('alert');
  const id = S.shownAlert;
  a.hidden = !id;
  if (!id) return;
  const s = summaryOf(id) || {};
  const d = S.alertDoc || {};
  a.classList.toggle('silent', !!s.silent);
  $('alert-silent').hidden = !s.silent;
  $('alert-cat').textContent = t('c_' + s.category);
  $('alert-pri').textContent = t('priority') + ' ' + (s.priority || '?') + ' · ' + fmtDist(s.distance_m);
  $('alert-pri').className = 'alert-pri p' + (s.priority || 3);
  $('alert-addr').textContent = d.address || '';
  $('alert-sum').textContent = d.summary || '';
}

function closeAlert() {
  if (S.shownAlert) S.dismissed.add(S.shownAlert);
  S.shownAlert = null;
  S.alertDoc = null;
  renderAlert();
  queueAlerts();
}

// ---- state ----

async function refresh() {
  try {
    const st = await call('status');
    if (st.ok) S.status = st.result;
    // ess-ui answers but essd does not: say so, keep the last picture
    S.essd = st.ok || !(st.error && st.error.code === 'unavailable');
    if (S.essd) {
      const l = await call('list');
      S.incidents = l.ok && l.result.incidents ? l.result.incidents : [];
    }
  } catch (e) {
    if (String(e.message) !== 'unauthorized') S.essd = false;
  }
  renderBar();
  renderList();
  if (S.selected) renderDetail();
  queueAlerts();
}

async function select(id) {
  S.selected = id;
  S.detail = null;
  renderDetail();
  renderList();
  const j = await call('show', { id });
  if (S.selected === id && j.ok) { S.detail = j.result; renderDetail(); }
}

function onEvent(name, data) {
  switch (name) {
    case 'incident':
      if (data.why === 'new' || data.why === 'updated' || data.why === 'conflict') {
        if (S.selected === data.id) select(data.id);
      }
      refresh();
      break;
    case 'conflict':
    case 'rejected':
      if (data.id) S.conflicts[data.id] = data.reason || name;
      toast(t('conflict', { r: data.reason || name }), true);
      refresh();
      break;
    case 'essd':
      S.essd = !!data.connected;
      refresh();
      break;
    default: // sync, lock, sos, resync, wipe, purged
      refresh();
  }
}

function stream() {
  const es = new EventSource('/api/events');
  for (const n of ['incident', 'conflict', 'rejected', 'sync', 'lock', 'sos', 'wipe', 'resync', 'essd', 'purged'])
    es.addEventListener(n, (ev) => {
      let d = {};
      try { d = JSON.parse(ev.data); } catch (e) { d = {}; }
      onEvent(n, d);
    });
  es.onopen = () => refresh();
}

// ---- SOS: hold for 2 s (a pocket or a bump cannot do that) ----

function setupSos() {
  const b = $('sos');
  const HOLD = 2000;
  let timer = null;
  const cancel = () => {
    clearTimeout(timer);
    timer = null;
    b.classList.remove('holding');
    b.querySelector('.label').textContent = t('sos_hold');
  };
  b.addEventListener('pointerdown', (e) => {
    e.preventDefault();
    b.classList.add('holding');
    b.querySelector('.label').textContent = t('sos_keep');
    timer = setTimeout(async () => {
      timer = null;
      b.classList.remove('holding');
      b.querySelector('.label').textContent = t('sos_hold');
      const j = await call('sos');
      toast(j.ok ? t('sos_sent') : t('refused', { r: j.error ? j.error.message : '?' }), !j.ok);
      refresh();
    }, HOLD);
  });
  for (const ev of ['pointerup', 'pointerleave', 'pointercancel']) b.addEventListener(ev, () => { if (timer) cancel(); });
  b.addEventListener('contextmenu', (e) => e.preventDefault());
}

async function start() {
  $('lang').addEventListener('click', () => {
    S.lang = S.lang === 'th' ? 'en' : 'th';
    localStorage.setItem('essLang', S.lang);
    applyLang();
    applyTheme();
  });
  $('theme').addEventListener('click', () => {
    const night = document.body.classList.contains('night');
    S.theme = night ? 'day' : 'night';
    localStorage.setItem('essTheme', S.theme);
    applyTheme();
  });
  $('back').addEventListener('click', () => { S.selected = null; S.detail = null; renderDetail(); renderList(); });
  $('alert-ack').addEventListener('click', async () => {
    const id = S.shownAlert;
    closeAlert();
    if (id) {
      const j = await call('ack', { id });
      if (!j.ok) toast(t('refused', { r: j.error ? j.error.message : '?' }), true);
      await refresh();
      select(id);
    }
  });
  $('alert-later').addEventListener('click', closeAlert);
  $('note-send').addEventListener('click', async () => {
    const text = $('note-text').value.trim();
    if (!S.selected || !text) return;
    const j = await call('note', { id: S.selected, text });
    if (j.ok) { $('note-text').value = ''; toast(t('note_sent')); }
    else toast(t('refused', { r: j.error ? j.error.message : '?' }), true);
    refresh();
  });
  setupSos();
  applyTheme();
  applyLang();
  if (!(await login().catch(() => false))) { showNoAuth(); return; }
  stream();
  await refresh();
  tick();
  setInterval(tick, 1000);
  // distance, bearing and the queue change without an event: ask every 3 s
  setInterval(refresh, 3000);
  setInterval(applyTheme, 60000);
}

document.addEventListener('DOMContentLoaded', start);
