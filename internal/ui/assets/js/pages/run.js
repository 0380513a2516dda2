// A run's page: every field, progress, live output and logs, events, result, error, the
// retry chain, webhook deliveries and the actions its state allows.
import { api, poll, streamEvents, ApiError } from '../api.js';
import { h, replace, link, code, copyButton, section, emptyState, errorBox, toast, confirmDialog } from '../dom.js';
import { TERMINAL, stateBadge, priorityBadge, timeEl, duration, shortId, pretty } from '../format.js';
import { OutputPane } from '../output.js';
import { jsonTree } from '../jsontree.js';

const MAX_TIMELINE = 300;

// ACTIONS: which states allow which action, and how to say why not.
const ACTIONS = [
  { key: 'cancel', label: 'Cancel', allowed: (r) => !TERMINAL.has(r.status) && !r.cancel_requested_at, why: (r) => r.cancel_requested_at ? 'Cancel already requested' : `A ${r.status} run cannot be cancelled` },
  { key: 'pause', label: 'Pause', allowed: (r) => r.status === 'queued' || r.status === 'scheduled', why: (r) => 'Only a queued or scheduled run can be paused' },
  { key: 'resume', label: 'Resume', allowed: (r) => r.status === 'paused', why: () => 'Only a paused run can be resumed' },
  { key: 'retry', label: 'Retry', allowed: (r) => TERMINAL.has(r.status), why: () => 'Only a finished run can be retried' },
  { key: 'delete', label: 'Delete', allowed: (r) => TERMINAL.has(r.status), why: () => 'Only a finished run can be deleted', cls: 'danger' },
];

// FIELDS: the run's fields in the order shown; any other field follows them.
const FIELDS = [
  'job_id', 'status', 'recipe_name', 'agent', 'workspace', 'session_id', 'priority', 'attempt', 'max_retries',
  'timeout_sec', 'created_at', 'run_at', 'scheduled_for', 'schedule_id', 'started_at', 'completed_at',
  'cancel_requested_at', 'wait_seconds', 'duration_seconds', 'retry_after', 'available_at', 'node', 'retry_of',
  'idempotency_key', 'idempotency_scope', 'webhook_url', 'webhook_events', 'run_id', 'poll_url', 'stream_url',
];
const SHOWN_ELSEWHERE = new Set(['input', 'config', 'metadata', 'result', 'error', 'error_code', 'progress']);
const TIME_FIELDS = new Set(['created_at', 'run_at', 'scheduled_for', 'started_at', 'completed_at', 'cancel_requested_at', 'available_at']);

export async function runPage(main, ctx) {
  const id = ctx.params[0];
  ctx.setTitle('Run ' + shortId(id));
  let run;
  try {
    run = await api('/runs/' + encodeURIComponent(id), { signal: ctx.signal });
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      main.append(h('h1', { text: 'Run not found' }),
        emptyState(`There is no run ${id}.`,
          h('p', { class: 'muted', text: 'It may have been deleted (by hand or by retention), or it belongs to a workspace your token cannot see.' }),
          h('p', {}, link('/runs', 'Back to the runs'))));
      return;
    }
    throw e;
  }

  // Layout.
  const stateEl = h('span');
  const actions = h('div', { class: 'actions', attrs: { role: 'toolbar', 'aria-label': 'Run actions' } });
  const progress = h('div', { class: 'progress-box' });
  const errorEl = h('div');
  const resultEl = h('div');
  const fields = h('dl', { class: 'fields' });
  const chain = h('div');
  const timeline = h('ol', { class: 'timeline' });
  const timelineNote = h('p', { class: 'muted', hidden: true });
  const hooks = h('div');
  const inputs = h('div');

  const out = new OutputPane({ label: 'Output of ' + id, emptyText: 'No output yet.' });
  const logs = new OutputPane({ label: 'Logs of ' + id, emptyText: 'No log lines.' });
  const tabOut = h('button', { type: 'button', class: 'tab', id: 'tab-output', attrs: { role: 'tab', 'aria-selected': 'true', 'aria-controls': 'pane-output' } });
  const tabLog = h('button', { type: 'button', class: 'tab', id: 'tab-logs', tabIndex: -1, attrs: { role: 'tab', 'aria-selected': 'false', 'aria-controls': 'pane-logs' } });
  const paneOut = h('div', { id: 'pane-output', attrs: { role: 'tabpanel', 'aria-labelledby': 'tab-output' } }, out.el);
  const paneLog = h('div', { id: 'pane-logs', hidden: true, attrs: { role: 'tabpanel', 'aria-labelledby': 'tab-logs' } }, logs.el);
  const followBtn = h('button', { type: 'button', class: 'btn small', attrs: { 'aria-pressed': 'true' }, text: 'Pause scrolling' });
  const liveBadge = h('span', { class: 'live-badge', hidden: true, text: 'live' });
  let active = out;
  const label = () => {
    tabOut.textContent = `Output (${out.total + (out.open ? 1 : 0)} lines)`;
    tabLog.textContent = `Logs (${logs.total + (logs.open ? 1 : 0)} lines)`;
  };
  out.onChange = label;
  logs.onChange = label;
  label();
  const showTab = (which) => {
    active = which === 'logs' ? logs : out;
    paneOut.hidden = which === 'logs';
    paneLog.hidden = which !== 'logs';
    tabOut.setAttribute('aria-selected', String(which !== 'logs'));
    tabLog.setAttribute('aria-selected', String(which === 'logs'));
    tabOut.tabIndex = which === 'logs' ? -1 : 0;
    tabLog.tabIndex = which === 'logs' ? 0 : -1;
    syncFollow();
  };
  tabOut.addEventListener('click', () => showTab('output'));
  tabLog.addEventListener('click', () => showTab('logs'));
  for (const t of [tabOut, tabLog]) {
    t.addEventListener('keydown', (ev) => {
      if (ev.key === 'ArrowRight' || ev.key === 'ArrowLeft') {
        const next = t === tabOut ? tabLog : tabOut;
        next.focus();
        next.click();
      }
    });
  }
  const syncFollow = () => {
    followBtn.setAttribute('aria-pressed', String(active.follow));
    followBtn.textContent = active.follow ? 'Pause scrolling' : 'Follow output';
  };
  out.onFollow = syncFollow;
  logs.onFollow = syncFollow;
  followBtn.addEventListener('click', () => {
    active.setFollow(!active.follow);
    syncFollow();
  });
  const copyOut = h('button', { type: 'button', class: 'btn small ghost', text: 'Copy' });
  copyOut.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(active.text());
      toast('Copied the visible lines.', 'ok');
    } catch {
      toast('The browser refused the clipboard.', 'error');
    }
  });

  main.append(
    h('nav', { class: 'crumbs', attrs: { 'aria-label': 'Breadcrumb' } }, link('/runs', 'Runs'), ' › ', h('span', { text: shortId(id) })),
    h('div', { class: 'page-head run-head' },
      h('h1', {}, h('span', { class: 'muted', text: 'Run ' }), h('code', { class: 'run-id', text: id })),
      copyButton(id, 'Copy id'), stateEl, actions),
    progress,
    errorEl,
    h('div', { class: 'run-grid' },
      h('section', { class: 'panel output-panel' },
        h('div', { class: 'panel-head' },
          h('div', { class: 'tabs', attrs: { role: 'tablist', 'aria-label': 'Output and logs' } }, tabOut, tabLog),
          liveBadge, h('span', { class: 'spacer' }), followBtn, copyOut),
        paneOut, paneLog),
      h('section', { class: 'panel' }, h('h2', { text: 'Fields' }), fields)),
    resultEl,
    h('div', { class: 'grid2' },
      section('Events', timelineNote, timeline),
      h('div', {}, section('Retry chain', chain), section('Webhook deliveries', hooks))),
    section('Input, config and metadata', inputs),
  );

  // Rendering of the run object.
  const render = (r) => {
    run = r;
    replace(stateEl, stateBadge(r.status), r.cancel_requested_at && !TERMINAL.has(r.status) ? h('span', { class: 'muted', text: ' cancel requested' }) : null,
      r.status === 'queued' && typeof r.retry_after === 'number' ? h('span', { class: 'muted', text: ` retry in ${duration(r.retry_after)}` }) : null);
    renderActions(r);
    renderProgress(r.progress || {}, r.status);
    replace(errorEl, r.error || r.error_code ? h('section', { class: 'panel error-panel', attrs: { role: 'alert' } },
      h('h2', {}, r.status === 'cancelled' ? 'Cancelled' : 'Error', r.error_code ? h('span', { class: 'errcode', text: r.error_code }) : null),
      r.error ? h('pre', { class: 'error-text', text: r.error }) : null) : '');
    const hasResult = r.result !== null && r.result !== undefined;
    replace(resultEl, hasResult ? section('Result', resultView(r.result)) : '');
    renderFields(r);
    replace(inputs,
      h('h3', { text: 'Input' }), r.input === undefined || r.input === null ? h('p', { class: 'muted', text: 'null' }) : jsonTree(r.input),
      r.config && Object.keys(r.config).length ? [h('h3', { text: 'Config' }), jsonTree(r.config)] : null,
      r.metadata && Object.keys(r.metadata).length ? [h('h3', { text: 'Metadata' }), jsonTree(r.metadata)] : null);
  };

  const renderProgress = (p, status) => {
    const pct = Math.max(0, Math.min(100, Number(p.percentage) || 0));
    const fill = h('div', { class: ['progress-fill', 'st-' + status] });
    fill.style.width = pct + '%';
    const steps = p.steps_total ? `${p.steps_completed || 0} / ${p.steps_total} steps` : '';
    replace(progress,
      h('div', { class: 'progress', attrs: { role: 'progressbar', 'aria-label': 'Progress', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(pct) } }, fill),
      h('div', { class: 'progress-text' },
        h('strong', { class: 'progress-pct', text: Math.round(pct) + '%' }),
        p.current_step ? h('span', { class: 'progress-step', text: p.current_step }) : null,
        steps ? h('span', { class: 'muted', text: steps }) : null));
  };

  // The action buttons are made once and updated in place, so keyboard focus stays on them
  // while the run changes.
  const buttons = ACTIONS.map((a) => {
    const b = h('button', { type: 'button', class: ['btn', a.cls || ''], text: a.label, dataset: { action: a.key } });
    b.addEventListener('click', () => act(a.key, b));
    actions.append(b);
    return b;
  });
  let busy = false; // an action is in flight: keep the buttons disabled
  let generation = 0; // grows with each action, so that an older read cannot undo its answer
  const renderActions = (r) => {
    ACTIONS.forEach((a, i) => {
      const ok = a.allowed(r) && !busy;
      buttons[i].disabled = !ok;
      buttons[i].title = a.allowed(r) ? '' : a.why(r);
    });
  };

  const act = async (key) => {
    if (key === 'delete' && !(await confirmDialog(`Delete run ${run.job_id} and its events? This cannot be undone.`))) return;
    busy = true;
    renderActions(run);
    try {
      const path = '/runs/' + encodeURIComponent(id) + (key === 'delete' ? '' : '/' + key);
      const res = await api(path, { method: key === 'delete' ? 'DELETE' : 'POST', body: key === 'delete' ? undefined : {} });
      if (key === 'delete') {
        toast(`Deleted ${run.job_id}.`, 'ok');
        ctx.navigate('/runs');
        return;
      }
      if (key === 'retry') {
        toast(`Retry submitted as ${res.job_id}.`, 'ok');
        ctx.navigate('/runs/' + encodeURIComponent(res.job_id));
        return;
      }
      toast(key === 'cancel' && res.status === 'running' ? 'Cancel requested; the run stops shortly.' : `Run ${res.status}.`, 'ok');
      busy = false;
      generation++;
      render(res);
    } catch (e) {
      busy = false;
      toast(`${key} failed: ${e.detail || e.message}`, 'error');
      refreshRun();
    }
  };

  const renderFields = (r) => {
    const keys = [...FIELDS.filter((k) => k in r), ...Object.keys(r).filter((k) => !FIELDS.includes(k) && !SHOWN_ELSEWHERE.has(k))];
    replace(fields, keys.map((k) => [h('dt', { text: k }), h('dd', {}, fieldValue(k, r[k], r))]));
  };

  const fieldValue = (k, v, r) => {
    if (v === null || v === undefined || v === '') return h('span', { class: 'muted', text: '—' });
    if (TIME_FIELDS.has(k)) return [timeEl(v), h('span', { class: 'muted small', text: ' ' + new Date(v).toLocaleString() })];
    switch (k) {
      case 'job_id': case 'run_id': return code(v);
      case 'status': return stateBadge(v);
      case 'priority': return priorityBadge(v);
      case 'recipe_name': return link('/recipes/' + encodeURIComponent(v), v);
      case 'agent': return link('/runs?agent=' + encodeURIComponent(v), v);
      case 'workspace': return link('/runs?workspace=' + encodeURIComponent(v), v);
      case 'session_id': return link('/runs?session=' + encodeURIComponent(v), v);
      case 'retry_of': return link('/runs/' + encodeURIComponent(v), code(v));
      case 'wait_seconds': return r.started_at ? duration(v) : '—';
      case 'duration_seconds': case 'retry_after': return duration(v);
      case 'timeout_sec': return v ? `${v} s (${duration(v)})` : 'server default';
      case 'max_retries': return `${v} (up to ${v + 1} attempts)`;
      case 'poll_url': case 'stream_url': return code(v);
    }
    if (typeof v === 'object') return h('code', { text: JSON.stringify(v) });
    return String(v);
  };

  const resultView = (value) => {
    const raw = h('pre', { class: 'json-raw', hidden: true, text: pretty(value) });
    const tree = jsonTree(value);
    const toggle = h('button', { type: 'button', class: 'btn small ghost', text: 'Raw JSON' });
    toggle.addEventListener('click', () => {
      raw.hidden = !raw.hidden;
      tree.hidden = !raw.hidden;
      toggle.textContent = raw.hidden ? 'Raw JSON' : 'Tree';
    });
    return [h('div', { class: 'panel-tools' }, toggle, copyButton(pretty(value), 'Copy JSON')), tree, raw];
  };

  // The events timeline: everything but output and log chunks (those are in the panes).
  let timelineCount = 0;
  const addTimeline = (ev) => {
    if (ev.type === 'output' || ev.type === 'log') return;
    timelineCount++;
    const t = ev.ts ? timeEl(ev.ts) : h('span');
    let text = '';
    switch (ev.type) {
      case 'status': text = `→ ${ev.status}${ev.attempt ? ` (attempt ${ev.attempt})` : ''}`; break;
      case 'progress': {
        const pct = ev.percentage ?? ev.progress?.percentage;
        const step = ev.current_step ?? ev.progress?.current_step;
        text = `${pct !== undefined ? Math.round(pct) + '%' : ''}${step ? ' · ' + step : ''}`;
        break;
      }
      case 'result': text = 'succeeded with a result'; break;
      case 'error': text = `${ev.error_code ? ev.error_code + ': ' : ''}${ev.error || ''}`; break;
      case 'cancelled': text = ev.error || 'cancelled'; break;
      default: text = ev.text || '';
    }
    timeline.append(h('li', { class: 'ev ev-' + ev.type },
      h('span', { class: 'ev-seq', text: '#' + ev.seq }),
      h('span', { class: 'ev-type', text: ev.type }),
      h('span', { class: 'ev-text', text }), t));
    if (timeline.children.length > MAX_TIMELINE) {
      timeline.firstChild.remove();
      timelineNote.hidden = false;
      timelineNote.textContent = `Showing the last ${MAX_TIMELINE} of ${timelineCount} events (output and log chunks are in their panes).`;
    }
  };

  // Chain of retries: walk retry_of backwards, and find the runs that retried this one.
  const renderChain = async (r) => {
    const back = [];
    let cur = r;
    for (let i = 0; i < 10 && cur.retry_of; i++) {
      try {
        cur = await api('/runs/' + encodeURIComponent(cur.retry_of), { signal: ctx.signal });
        back.unshift({ run: cur });
      } catch (e) {
        if (e.name === 'AbortError') return;
        back.unshift({ missing: cur.retry_of });
        break;
      }
    }
    let forward = [];
    if (TERMINAL.has(r.status)) {
      try {
        const res = await api('/runs', { query: { retry_of: r.job_id, recipe_name: r.recipe_name, workspace: r.workspace, page_size: 100 }, signal: ctx.signal });
        forward = (res.jobs || []).filter((x) => x.retry_of === r.job_id).reverse();
      } catch (e) {
        if (e.name === 'AbortError') return;
      }
    }
    const item = (x, isCurrent) => h('li', { class: isCurrent ? 'current' : '' },
      isCurrent ? h('code', { text: x.job_id }) : link('/runs/' + encodeURIComponent(x.job_id), code(x.job_id)),
      ' ', stateBadge(x.status), ' ', timeEl(x.created_at), isCurrent ? h('span', { class: 'muted', text: ' (this run)' }) : null);
    if (!back.length && !forward.length) {
      replace(chain, h('p', { class: 'muted', text: 'Not a retry, and not retried. Retry a finished run to start a new run linked to it.' }));
      return;
    }
    replace(chain, h('ol', { class: 'chain' },
      back.map((b) => b.missing ? h('li', {}, code(b.missing), h('span', { class: 'muted', text: ' (deleted)' })) : item(b.run, false)),
      item(r, true),
      forward.map((f) => item(f, false))));
  };

  let hooksPending = false;
  let hooksSeen = false;
  const renderHooks = async () => {
    let ds;
    try {
      ds = await api('/runs/' + encodeURIComponent(id) + '/webhooks', { signal: ctx.signal });
    } catch (e) {
      if (e.name !== 'AbortError') replace(hooks, errorBox(e));
      return;
    }
    ds = Array.isArray(ds) ? ds : (ds && ds.deliveries) || [];
    hooksPending = ds.some((d) => d.state === 'pending');
    hooksSeen = ds.length > 0;
    if (!ds.length) {
      replace(hooks, h('p', { class: 'muted', text: run.webhook_url
        ? 'No delivery yet: the webhook is sent when the run finishes.'
        : 'This run has no webhook_url. Submit with webhook_url to be called when it finishes.' }));
      return;
    }
    replace(hooks, ds.map((d) => h('div', { class: 'hook' },
      h('div', { class: 'hook-head' },
        h('span', { class: ['hook-state', 'hs-' + d.state], text: d.state }),
        h('span', { class: 'ev-type', text: d.event || '' }),
        h('span', { class: 'hook-url', text: d.url || '' }),
        d.state === 'pending' && d.next_at ? h('span', { class: 'muted' }, 'next ', timeEl(d.next_at)) : null),
      (d.attempts || []).length
        ? h('table', { class: 'table compact' },
          h('thead', {}, h('tr', {}, ['#', 'At', 'Status', 'Duration', 'Error'].map((c) => h('th', { scope: 'col', text: c })))),
          h('tbody', {}, d.attempts.map((a, i) => h('tr', {},
            h('td', { class: 'num', text: String(i + 1) }),
            h('td', {}, timeEl(a.at)),
            h('td', { class: a.status_code >= 200 && a.status_code < 300 ? 'ok' : 'bad', text: a.status_code ? String(a.status_code) : '—' }),
            h('td', { class: 'num', text: a.duration_ms !== undefined ? a.duration_ms + ' ms' : '—' }),
            h('td', { class: 'trunc', text: a.error || '' })))))
        : h('p', { class: 'muted', text: 'No attempt yet.' }))));
  };

  // Keeping the page current: the stream drives output, progress and the timeline; the run
  // object is fetched again on status changes and every few seconds while active.
  let refreshing = null;
  const refreshRun = async () => {
    if (refreshing) return refreshing;
    refreshing = (async () => {
      const gen = generation;
      try {
        const r = await api('/runs/' + encodeURIComponent(id), { signal: ctx.signal });
        if (gen === generation) render(r);
      } catch (e) {
        if (e.name === 'AbortError') return;
        if (e instanceof ApiError && e.status === 404) toast('This run no longer exists.', 'error');
      } finally {
        refreshing = null;
      }
    })();
    return refreshing;
  };

  render(run);
  renderChain(run);
  renderHooks();

  poll(async () => {
    if (!TERMINAL.has(run.status)) await refreshRun();
    if (hooksPending || (run.webhook_url && TERMINAL.has(run.status) && !hooksSeen)) {
      await renderHooks();
    }
  }, 3000, ctx.signal);

  let statusTimer = null;
  liveBadge.hidden = TERMINAL.has(run.status);
  streamEvents(id, {
    signal: ctx.signal,
    onOpen: () => { liveBadge.hidden = TERMINAL.has(run.status); },
    onEvent: (ev) => {
      switch (ev.type) {
        case 'output': out.append(ev.text); break;
        case 'log': logs.append(ev.text); break;
        case 'progress': {
          const p = ev.progress || ev;
          renderProgress(p, run.status);
          break;
        }
      }
      addTimeline(ev);
      if (ev.type === 'status' || ev.type === 'result' || ev.type === 'error' || ev.type === 'cancelled') {
        clearTimeout(statusTimer);
        statusTimer = setTimeout(async () => {
          await refreshRun();
          if (TERMINAL.has(run.status)) {
            liveBadge.hidden = true;
            renderChain(run);
            renderHooks();
          }
        }, 100);
      }
    },
  }).then(() => {
    liveBadge.hidden = true;
    if (!ctx.signal.aborted) refreshRun();
  }).catch((e) => {
    liveBadge.hidden = true;
    if (ctx.signal.aborted) return;
    out.el.after(h('p', { class: 'muted', text: 'The live stream is unavailable: ' + (e.detail || e.message) + '. The page refreshes every few seconds instead.' }));
  });
}
