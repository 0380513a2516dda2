// The HTTP API client: JSON over fetch with the bearer token from session storage, RFC 9457
// problem documents as ApiError, and a Server-Sent Events reader over fetch (EventSource
// cannot send an Authorization header).

const BASE = '/api/v1';
const TOKEN_KEY = 'spool.token';

function meta(name) {
  const el = document.querySelector(`meta[name="${name}"]`);
  return el ? el.getAttribute('content') : '';
}

// authRequired is what the server told the page: the API wants a token.
export const authRequired = meta('spool-auth') === 'required';

// ApiError is a failed API call: the problem document's fields, or a network failure
// (status 0).
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || '';
    this.title = problem.title || '';
    this.detail = problem.detail || '';
    this.fields = Array.isArray(problem.errors) ? problem.errors : [];
    this.runStatus = problem.run_status || problem.status_name || '';
    this.problem = problem;
  }
}

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: the token lives until reload */ }
  updateForgetButton();
}

export function forgetToken() {
  setToken('');
}

export function updateForgetButton() {
  const b = document.getElementById('forget-token');
  if (b) b.hidden = !getToken();
}

let tokenPrompt = null;

// askForToken shows the token dialog once, however many calls are waiting for it.
export function askForToken(message) {
  if (tokenPrompt) return tokenPrompt;
  const dlg = document.getElementById('token-dialog');
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  const err = document.getElementById('token-error');
  err.hidden = !message;
  err.textContent = message || '';
  input.value = '';
  tokenPrompt = new Promise((resolve) => {
    const onSubmit = (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      if (!t) return;
      setToken(t);
      form.removeEventListener('submit', onSubmit);
      dlg.removeEventListener('cancel', onCancel);
      dlg.close();
      tokenPrompt = null;
      resolve(t);
    };
    // Escape would leave the page with nothing to show: keep the dialog open.
    const onCancel = (ev) => ev.preventDefault();
    form.addEventListener('submit', onSubmit);
    dlg.addEventListener('cancel', onCancel);
  });
  dlg.showModal();
  input.focus();
  return tokenPrompt;
}

function headers(extra) {
  const hd = { Accept: 'application/json', ...extra };
  const t = getToken();
  if (t) hd.Authorization = 'Bearer ' + t;
  return hd;
}

// Connection state for the indicator in the top bar.
let online = null;
function setOnline(ok, why) {
  if (online === ok) return;
  online = ok;
  const el = document.getElementById('conn');
  if (!el) return;
  el.classList.toggle('ok', ok);
  el.classList.toggle('down', !ok);
  el.querySelector('.conn-label').textContent = ok ? 'live' : 'offline';
  el.title = ok ? 'Connected to the API' : 'The API does not answer: ' + (why || '');
}

async function problemOf(res) {
  const text = await res.text();
  try {
    const p = JSON.parse(text);
    if (p && typeof p === 'object') return p;
  } catch { /* not JSON */ }
  return { title: res.statusText || `HTTP ${res.status}`, detail: text.slice(0, 300) };
}

// api calls the JSON API: path is relative to /api/v1, query an object of parameters
// (arrays repeat, empty values are dropped), body any JSON value.
export async function api(path, { method = 'GET', query, body, signal } = {}) {
  let url = BASE + path;
  if (query) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || v === null || v === '') continue;
      if (Array.isArray(v)) { if (v.length) qs.set(k, v.join(',')); } else qs.set(k, String(v));
    }
    const q = qs.toString();
    if (q) url += '?' + q;
  }
  for (let attempt = 0; ; attempt++) {
    if (authRequired && !getToken()) await askForToken();
    const init = { method, signal, headers: headers(body !== undefined ? { 'Content-Type': 'application/json' } : {}) };
    if (body !== undefined) init.body = JSON.stringify(body);
    let res;
    try {
      res = await fetch(url, init);
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      setOnline(false, e.message);
      throw new ApiError(0, { title: 'The server does not answer', detail: 'Is spool server running? ' + e.message, code: 'network' });
    }
    setOnline(true);
    if (res.status === 401 && attempt < 5) {
      const p = await problemOf(res);
      const had = getToken();
      setToken('');
      await askForToken(had ? 'The token was not accepted: ' + (p.detail || 'unauthorized') : '');
      continue;
    }
    if (!res.ok) throw new ApiError(res.status, await problemOf(res));
    if (res.status === 204) return null;
    const ct = res.headers.get('Content-Type') || '';
    return ct.includes('json') ? res.json() : res.text();
  }
}

// streamEvents reads a run's SSE stream and calls onEvent(event) for each event (heartbeats
// excluded). It reconnects with Last-Event-ID when the connection drops and returns after
// the run's terminal event, or when signal aborts.
export async function streamEvents(runId, { after = 0, onEvent, onOpen, signal }) {
  let last = after;
  let delay = 500;
  while (!signal.aborted) {
    let res;
    try {
      if (authRequired && !getToken()) await askForToken();
      const hd = headers({ Accept: 'text/event-stream' });
      if (last > 0) hd['Last-Event-ID'] = String(last);
      res = await fetch(`${BASE}/runs/${encodeURIComponent(runId)}/stream`, { headers: hd, signal, cache: 'no-store' });
    } catch (e) {
      if (signal.aborted) return;
      setOnline(false, e.message);
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 10000);
      continue;
    }
    if (res.status === 401) {
      setToken('');
      await askForToken('The token was not accepted for the live stream.');
      continue;
    }
    if (!res.ok) throw new ApiError(res.status, await problemOf(res));
    setOnline(true);
    delay = 500;
    if (onOpen) onOpen();
    let done = false;
    try {
      done = await readSSE(res.body, signal, (ev) => {
        if (ev.id) last = Number(ev.id) || last;
        if (ev.event === 'heartbeat') return false;
        let data;
        try {
          data = JSON.parse(ev.data);
        } catch {
          data = { text: ev.data };
        }
        if (!data.type) data.type = ev.event || 'message';
        onEvent(data);
        return data.type === 'result' || data.type === 'error' || data.type === 'cancelled';
      });
    } catch (e) {
      if (signal.aborted) return;
    }
    if (done || signal.aborted) return;
    await sleep(delay, signal);
  }
}

// readSSE parses an event stream: fields per line, an event per blank line. handle returns
// true to stop (the terminal event). It resolves true when handle stopped it.
async function readSSE(body, signal, handle) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const abort = () => reader.cancel().catch(() => {});
  signal.addEventListener('abort', abort, { once: true });
  let buf = '';
  let ev = { data: [], event: '', id: '' };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      buf += value;
      let start = 0;
      for (;;) {
        const nl = buf.indexOf('\n', start);
        if (nl < 0) break;
        let line = buf.slice(start, nl);
        start = nl + 1;
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (ev.data.length || ev.event) {
            const stop = handle({ data: ev.data.join('\n'), event: ev.event, id: ev.id });
            if (stop) {
              abort();
              return true;
            }
          }
          ev = { data: [], event: '', id: '' };
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'data') ev.data.push(val);
        else if (field === 'event') ev.event = val;
        else if (field === 'id') ev.id = val;
      }
      buf = buf.slice(start);
    }
  } finally {
    signal.removeEventListener('abort', abort);
  }
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

// poll calls fn every ms (first after ms: the page has just loaded its data) while the
// page is visible, until signal aborts. A slow fn never overlaps itself.
export function poll(fn, ms, signal) {
  let timer = null;
  const run = async () => {
    if (signal.aborted) return;
    if (!document.hidden) {
      try {
        await fn();
      } catch (e) {
        if (e.name !== 'AbortError') console.debug('poll:', e.message);
      }
    }
    if (!signal.aborted) timer = setTimeout(run, ms);
  };
  timer = setTimeout(run, ms);
  signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
}
