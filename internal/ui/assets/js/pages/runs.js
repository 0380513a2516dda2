// Runs: the table with filters, keyset pagination, live updates and bulk actions.
import { api, poll, ApiError } from '../api.js';
import { h, replace, link, code, emptyState, errorBox, toast, confirmDialog } from '../dom.js';
import { STATES, TERMINAL, stateBadge, priorityBadge, timeEl, duration, shortId } from '../format.js';

const FILTERS = ['recipe', 'agent', 'workspace', 'session', 'id'];
const POLL_MS = 2000;

export async function runsPage(main, ctx) {
  const q = ctx.query;
  const filters = {
    status: (q.get('status') || '').split(',').filter((s) => STATES.includes(s)),
    recipe: q.get('recipe') || '', agent: q.get('agent') || '', workspace: q.get('workspace') || '',
    session: q.get('session') || '', id: (q.get('id') || '').trim(),
  };
  const after = q.get('after') || '';
  const size = Math.min(500, Math.max(10, Number(q.get('size')) || 50));
  const selected = new Set();
  const rows = new Map(); // id -> {tr, sig, run}
  let lastRuns = [];

  const urlWith = (changes) => {
    const p = new URLSearchParams();
    const f = { ...filters, status: filters.status.join(','), after, size: size === 50 ? '' : String(size), ...changes };
    for (const [k, v] of Object.entries(f)) if (v) p.set(k, v);
    const s = p.toString();
    return '/runs' + (s ? '?' + s : '');
  };

  // Filters: applying one starts again at the newest page.
  const form = h('form', { class: 'filters', attrs: { role: 'search', 'aria-label': 'Filter runs' } });
  const chips = h('fieldset', { class: 'chips' }, h('legend', { text: 'State' }), STATES.map((s) => {
    const box = h('input', { type: 'checkbox', name: 'status', value: s, id: 'f-status-' + s, checked: filters.status.includes(s) });
    box.addEventListener('change', () => apply());
    return h('label', { class: 'chip' }, box, stateBadge(s));
  }));
  const inputs = {};
  const recipeList = h('datalist', { id: 'recipe-names' });
  const fields = FILTERS.map((k) => {
    const label = { recipe: 'Recipe', agent: 'Agent', workspace: 'Workspace', session: 'Session', id: 'Run id' }[k];
    const input = h('input', { type: 'search', name: k, value: filters[k], id: 'f-' + k, autocomplete: 'off', spellcheck: false });
    if (k === 'recipe') input.setAttribute('list', 'recipe-names');
    if (k === 'id') input.placeholder = 'run_…';
    inputs[k] = input;
    input.addEventListener('change', () => apply());
    return h('div', { class: 'field' }, h('label', { for: 'f-' + k, text: label }), input);
  });
  const clearBtn = h('button', { type: 'button', class: 'btn ghost', text: 'Clear filters' });
  clearBtn.addEventListener('click', () => ctx.navigate('/runs'));
  form.append(chips, h('div', { class: 'filter-fields' }, fields, recipeList,
    h('div', { class: 'field actions' }, h('button', { type: 'submit', class: 'btn', text: 'Apply' }), clearBtn)));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); apply(); });

  function apply() {
    const next = {
      status: [...form.querySelectorAll('input[name=status]:checked')].map((b) => b.value).join(','),
      after: '',
    };
    for (const k of FILTERS) next[k] = inputs[k].value.trim();
    const url = urlWith(next);
    const focusId = document.activeElement && document.activeElement.id;
    if (url !== location.pathname + location.search) ctx.navigate(url, { replace: true, focusId });
  }

  // Bulk actions on the selection.
  const bulkCount = h('span', { class: 'bulk-count' });
  const bulkButtons = {
    cancel: h('button', { type: 'button', class: 'btn', text: 'Cancel' }),
    retry: h('button', { type: 'button', class: 'btn', text: 'Retry' }),
    delete: h('button', { type: 'button', class: 'btn danger', text: 'Delete' }),
  };
  const clearSel = h('button', { type: 'button', class: 'btn ghost', text: 'Clear selection' });
  const bulk = h('div', { class: 'bulk', hidden: true, attrs: { role: 'toolbar', 'aria-label': 'Actions on selected runs' } },
    bulkCount, Object.values(bulkButtons), clearSel);
  clearSel.addEventListener('click', () => { selected.clear(); syncSelection(); });
  const eligible = {
    cancel: (r) => !TERMINAL.has(r.status) && !r.cancel_requested_at,
    retry: (r) => TERMINAL.has(r.status),
    delete: (r) => TERMINAL.has(r.status),
  };
  for (const [action, btn] of Object.entries(bulkButtons)) {
    btn.addEventListener('click', () => bulkAction(action));
  }

  async function bulkAction(action) {
    const runs = [...selected].map((id) => rows.get(id)?.run).filter(Boolean);
    const targets = runs.filter(eligible[action]);
    const skipped = runs.length - targets.length;
    if (!targets.length) return;
    if (action === 'delete' && !(await confirmDialog(`Delete ${targets.length} finished run(s) and their events? This cannot be undone.`))) return;
    let ok = 0;
    const failures = [];
    const queue = targets.slice();
    const worker = async () => {
      for (let r = queue.shift(); r; r = queue.shift()) {
        const path = '/runs/' + encodeURIComponent(r.job_id) + (action === 'delete' ? '' : '/' + action);
        try {
          await api(path, { method: action === 'delete' ? 'DELETE' : 'POST', body: action === 'delete' ? undefined : {} });
          ok++;
          if (action !== 'retry') selected.delete(r.job_id);
        } catch (e) {
          failures.push(`${shortId(r.job_id)}: ${e.detail || e.message}`);
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    const verb = { cancel: 'Cancel requested for', retry: 'Retried', delete: 'Deleted' }[action];
    let msg = `${verb} ${ok} run(s).`;
    if (skipped) msg += ` ${skipped} skipped (state does not allow ${action}).`;
    if (failures.length) msg += ' Failed: ' + failures.slice(0, 3).join('; ');
    toast(msg, failures.length ? 'error' : 'ok');
    if (action === 'retry') selected.clear();
    await refresh();
  }

  // The table.
  const selectAll = h('input', { type: 'checkbox', attrs: { 'aria-label': 'Select every run on this page' } });
  selectAll.addEventListener('change', () => {
    for (const r of lastRuns) selectAll.checked ? selected.add(r.job_id) : selected.delete(r.job_id);
    syncSelection();
  });
  const cols = ['Run', 'Recipe', 'Agent', 'Workspace', 'Session', 'State', 'Priority', 'Attempt', 'Created', 'Wait', 'Duration'];
  const tbody = h('tbody');
  const table = h('table', { class: 'table runs-table' },
    h('thead', {}, h('tr', {}, h('th', { class: 'sel' }, selectAll), cols.map((c) => h('th', { scope: 'col', text: c })))),
    tbody);
  const body = h('div', { class: 'table-wrap' });
  const pager = h('nav', { class: 'pager', attrs: { 'aria-label': 'Pages' } });
  const status = h('p', { class: 'muted live-note', attrs: { 'aria-live': 'off' } });

  main.append(
    h('div', { class: 'page-head' }, h('h1', { text: 'Runs' }), status),
    form, bulk, body, pager);

  function syncSelection() {
    for (const [id, row] of rows) {
      const box = row.tr.querySelector('input[type=checkbox]');
      box.checked = selected.has(id);
      row.tr.classList.toggle('selected', selected.has(id));
    }
    const runs = [...selected].map((id) => rows.get(id)?.run).filter(Boolean);
    bulk.hidden = selected.size === 0;
    bulkCount.textContent = `${selected.size} selected`;
    for (const [action, btn] of Object.entries(bulkButtons)) btn.disabled = !runs.some(eligible[action]);
    selectAll.checked = lastRuns.length > 0 && lastRuns.every((r) => selected.has(r.job_id));
    selectAll.indeterminate = !selectAll.checked && lastRuns.some((r) => selected.has(r.job_id));
  }

  function rowFor(r) {
    const box = h('input', { type: 'checkbox', checked: selected.has(r.job_id), attrs: { 'aria-label': 'Select ' + r.job_id } });
    box.addEventListener('change', () => {
      box.checked ? selected.add(r.job_id) : selected.delete(r.job_id);
      syncSelection();
    });
    const runLink = link('/runs/' + encodeURIComponent(r.job_id), h('code', { text: shortId(r.job_id) }));
    runLink.title = r.job_id;
    const filterLink = (key, value) => value
      ? h('a', { href: urlWith({ [key]: value, after: '' }), text: value, title: `Show only ${key} ${value}`, class: 'filter-link' })
      : h('span', { class: 'muted', text: '—' });
    return [
      h('td', { class: 'sel' }, box),
      h('td', {}, runLink),
      h('td', {}, filterLink('recipe', r.recipe_name)),
      h('td', {}, filterLink('agent', r.agent)),
      h('td', {}, filterLink('workspace', r.workspace)),
      h('td', { class: 'trunc' }, filterLink('session', r.session_id)),
      h('td', {}, stateBadge(r.status), r.cancel_requested_at && !TERMINAL.has(r.status) ? h('span', { class: 'muted', text: ' cancelling' }) : null,
        r.status === 'running' && r.progress && r.progress.percentage > 0 ? h('span', { class: 'muted', text: ` ${Math.round(r.progress.percentage)}%` }) : null),
      h('td', {}, priorityBadge(r.priority)),
      h('td', { class: 'num', text: r.max_retries ? `${r.attempt}/${r.max_retries + 1}` : String(r.attempt) }),
      h('td', {}, timeEl(r.created_at)),
      h('td', { class: 'num', text: r.started_at ? duration(r.wait_seconds) : '—' }),
      h('td', { class: 'num', text: duration(r.duration_seconds) }),
    ];
  }

  const sigOf = (r) => [r.status, r.attempt, r.started_at, r.completed_at, r.cancel_requested_at,
    r.progress && Math.round(r.progress.percentage), r.status === 'running' ? Math.floor(r.duration_seconds || 0) : r.duration_seconds].join('|');

  // render reconciles the table with runs by id, so focus, selection and scroll survive the
  // live updates; rows new since the last poll flash once.
  let firstRender = true;
  function render(runs) {
    lastRuns = runs;
    if (!runs.length) {
      rows.clear();
      replace(body, emptyFor());
      syncSelection();
      return;
    }
    if (!body.contains(table)) replace(body, table);
    const seen = new Set();
    let prev = null;
    for (const r of runs) {
      seen.add(r.job_id);
      let row = rows.get(r.job_id);
      const sig = sigOf(r);
      if (!row) {
        const tr = h('tr', { dataset: { id: r.job_id } }, rowFor(r));
        if (!firstRender) tr.classList.add('fresh');
        row = { tr, sig, run: r };
        rows.set(r.job_id, row);
      } else if (row.sig !== sig) {
        replace(row.tr, rowFor(r));
        if (row.run.status !== r.status) {
          row.tr.classList.remove('changed');
          void row.tr.offsetWidth; // restart the highlight animation
          row.tr.classList.add('changed');
        }
        row.sig = sig;
      }
      row.run = r;
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== row.tr) tbody.insertBefore(row.tr, want);
      prev = row.tr;
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    firstRender = false;
    syncSelection();
  }

  const anyFilter = filters.status.length || FILTERS.some((k) => filters[k]);
  function emptyFor() {
    if (after) return emptyState('No older runs.', h('p', {}, link(urlWith({ after: '' }), 'Back to the newest runs')));
    if (filters.id) return emptyState(`No run with id ${filters.id}.`, h('p', { class: 'muted', text: 'It may have been deleted by retention, or belong to a workspace this token cannot see.' }));
    if (anyFilter) return emptyState('No runs match these filters.', h('p', {}, link('/runs', 'Clear the filters')));
    return emptyState('No runs yet.',
      h('p', { text: 'Submit one from the command line:' }),
      h('pre', { class: 'cmd' }, code(`spool submit echo --input '{"hello":"world"}'`)),
      h('p', {}, 'or from a recipe\'s form on the ', link('/recipes', 'Recipes'), ' page.'));
  }

  function renderPager(runs) {
    const parts = [];
    if (after) parts.push(link(urlWith({ after: '' }), '« Newest'));
    if (!filters.id && runs.length >= size) {
      const older = link(urlWith({ after: runs[runs.length - 1].job_id }), 'Older »');
      older.setAttribute('rel', 'next');
      parts.push(older);
    }
    const sizeSel = h('select', { attrs: { 'aria-label': 'Runs per page' } }, [20, 50, 100, 200].map((n) =>
      h('option', { value: String(n), text: `${n} per page`, selected: n === size })));
    sizeSel.addEventListener('change', () => ctx.navigate(urlWith({ size: sizeSel.value === '50' ? '' : sizeSel.value, after: '' }), { replace: true }));
    parts.push(sizeSel);
    replace(pager, parts);
  }

  async function refresh() {
    let runs;
    try {
      if (filters.id) {
        try {
          runs = [await api('/runs/' + encodeURIComponent(filters.id), { signal: ctx.signal })];
        } catch (e) {
          if (e instanceof ApiError && e.status === 404) runs = [];
          else throw e;
        }
      } else {
        const res = await api('/runs', {
          signal: ctx.signal,
          query: {
            status: filters.status, recipe_name: filters.recipe, agent: filters.agent,
            workspace: filters.workspace, session_id: filters.session, after, page_size: size,
          },
        });
        runs = res.jobs || [];
      }
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(body, errorBox(e));
      rows.clear();
      return;
    }
    render(runs);
    renderPager(runs);
    status.textContent = `${runs.length} shown · live, updated every ${POLL_MS / 1000} s`;
  }

  api('/recipes', { signal: ctx.signal }).then((res) => {
    replace(recipeList, (res.recipes || []).map((r) => h('option', { value: r.name })));
  }).catch(() => {});

  await refresh();
  poll(refresh, POLL_MS, ctx.signal);
}
