// Overview: counts by state and priority, running against the limits, throughput and
// latency over the last hour, and the latest failures.
import { api, poll } from '../api.js';
import { h, replace, link, code, section, emptyState, errorBox } from '../dom.js';
import { STATES, PRIORITIES, stateBadge, timeEl, duration, num, shortId, percentile } from '../format.js';
import { stackedBars, lines, meter } from '../chart.js';

// CHART_RUNS bounds the finished runs read for the charts (one list call).
const CHART_RUNS = 1000;
const MINUTES = 60;

export async function overviewPage(main, ctx) {
  const counts = h('div', { class: 'tiles' });
  const prios = h('div', { class: 'tiles small' });
  const limits = h('div', { class: 'limits' });
  const charts = h('div', { class: 'charts' });
  const failures = h('div');
  const banner = h('div');
  const averages = h('p', { class: 'muted' });

  main.append(
    h('div', { class: 'page-head' }, h('h1', { text: 'Overview' })),
    banner,
    section('Runs by state', counts, averages, h('h3', { text: 'Queued by priority' }), prios),
    section('Running against limits', limits),
    section('Last hour', charts),
    section('Recent failures', failures),
  );

  const refreshStats = async () => {
    let st;
    try {
      st = await api('/stats', { signal: ctx.signal });
    } catch (e) {
      if (e.name !== 'AbortError') replace(banner, errorBox(e));
      return;
    }
    replace(banner, st.total_runs === 0 ? gettingStarted() : '');
    replace(counts, STATES.map((s) => {
      const n = st[s + '_count'] || 0;
      return link('/runs?status=' + s, h('span', { class: 'tile-num', text: num(n) }), stateBadge(s));
    }), link('/runs', h('span', { class: 'tile-num', text: num(st.total_runs) }), h('span', { class: 'tile-word', text: 'total' })));
    for (const a of counts.querySelectorAll('a')) a.classList.add('tile');
    replace(averages, `Average wait ${duration(st.avg_wait_seconds)} · average duration ${duration(st.avg_duration_seconds)}`);
    const qp = st.queued_by_priority || {};
    replace(prios, PRIORITIES.map((p) => h('div', { class: 'tile' },
      h('span', { class: 'tile-num', text: num(qp[p] || 0) }), h('span', { class: ['prio', 'prio-' + p], text: p }))));
    renderLimits(limits, st);
  };

  const refreshCharts = async () => {
    const now = Date.now();
    try {
      const [done, failed] = await Promise.all([
        api('/runs', { query: { status: 'succeeded,failed,cancelled', page_size: CHART_RUNS }, signal: ctx.signal }),
        api('/runs', { query: { status: 'failed', page_size: 8 }, signal: ctx.signal }),
      ]);
      replace(charts, renderCharts(done.jobs || [], now));
      replace(failures, renderFailures(failed.jobs || []));
    } catch (e) {
      if (e.name !== 'AbortError') replace(charts, errorBox(e));
    }
  };

  await Promise.all([refreshStats(), refreshCharts()]);
  poll(refreshStats, 3000, ctx.signal);
  poll(refreshCharts, 10000, ctx.signal);
}

function gettingStarted() {
  return h('div', { class: 'panel hero' },
    h('h2', { text: 'No runs yet' }),
    h('p', { text: 'Submit a run from the command line:' }),
    h('pre', { class: 'cmd' }, code(`spool submit echo --input '{"hello":"world"}'`)),
    h('p', {}, 'or pick a recipe and use its form on the ', link('/recipes', 'Recipes'), ' page.'));
}

function renderLimits(el, st) {
  const lim = st.limits || {};
  const agents = new Set([...Object.keys(st.running_by_agent || {}), ...Object.keys(lim.agents || {})]);
  const agentRows = [...agents].sort().map((a) => {
    const limit = (lim.agents && lim.agents[a]) || lim.max_per_agent || 0;
    return meter((st.running_by_agent || {})[a] || 0, limit, a);
  });
  const wsRows = Object.keys(st.running_by_workspace || {}).sort().map((w) =>
    meter(st.running_by_workspace[w] || 0, lim.max_per_workspace || 0, w));
  replace(el,
    h('div', {},
      h('h3', { text: 'Whole cluster' }), meter(st.running_count || 0, lim.max_concurrent || 0, 'all runs'),
      h('h3', { text: 'Per workspace' }),
      wsRows.length ? wsRows : h('p', { class: 'muted small', text: lim.max_per_workspace ? `Nothing running; at most ${lim.max_per_workspace} per workspace.` : 'Nothing running; no limit per workspace.' })),
    h('div', {},
      h('h3', { text: 'Per agent' }),
      agentRows.length ? agentRows : h('p', { class: 'muted small', text: 'Nothing running.' })));
}

// renderCharts buckets the finished runs of the last hour by minute of completion.
function renderCharts(runs, now) {
  const start = now - MINUTES * 60000;
  const buckets = Array.from({ length: MINUTES }, (_, i) => ({
    label: new Date(start + i * 60000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }),
    values: { succeeded: 0, failed: 0, cancelled: 0 }, waits: [], durs: [],
  }));
  let inHour = 0;
  const allWaits = [];
  const allDurs = [];
  for (const r of runs) {
    if (!r.completed_at) continue;
    const t = Date.parse(r.completed_at);
    if (!(t >= start && t <= now)) continue;
    const i = Math.min(MINUTES - 1, Math.floor((t - start) / 60000));
    const b = buckets[i];
    inHour++;
    if (b.values[r.status] !== undefined) b.values[r.status]++;
    if (r.started_at) {
      b.waits.push(r.wait_seconds || 0);
      allWaits.push(r.wait_seconds || 0);
      if (typeof r.duration_seconds === 'number') {
        b.durs.push(r.duration_seconds);
        allDurs.push(r.duration_seconds);
      }
    }
  }
  const pct = (key, list) => buckets.map((b) => {
    const sorted = b[list].slice().sort((x, y) => x - y);
    return { label: b.label, values: { p50: percentile(sorted, 0.5), p95: percentile(sorted, 0.95) } };
  });
  const xLabels = [[0, '-60 min'], [0.5, '-30 min'], [1, 'now']];
  const secFmt = (v) => duration(v);
  const pSeries = [{ key: 'p50', name: 'p50', cls: 's-p50' }, { key: 'p95', name: 'p95', cls: 's-p95' }];
  const summary = (list) => {
    const sorted = list.slice().sort((x, y) => x - y);
    return sorted.length ? `p50 ${duration(percentile(sorted, 0.5))} · p95 ${duration(percentile(sorted, 0.95))} · p99 ${duration(percentile(sorted, 0.99))}` : 'no data';
  };
  const capped = runs.length >= CHART_RUNS;
  if (inHour === 0) {
    return [emptyState('No run finished in the last hour.', h('p', { class: 'muted', text: 'Charts of throughput, wait and duration fill in as runs complete.' }))];
  }
  return [
    h('div', { class: 'chart-cell wide' },
      h('h3', { text: `Completed per minute (${num(inHour)} in the hour)` }),
      stackedBars(buckets, [
        { key: 'succeeded', name: 'succeeded', cls: 's-succeeded' },
        { key: 'failed', name: 'failed', cls: 's-failed' },
        { key: 'cancelled', name: 'cancelled', cls: 's-cancelled' },
      ], { label: 'Runs completed per minute over the last hour', xLabels, W: 1200, H: 190 })),
    h('div', { class: 'chart-cell' },
      h('h3', { text: 'Wait (queued → started)' }),
      h('p', { class: 'muted', text: summary(allWaits) }),
      lines(pct('wait', 'waits'), pSeries, { label: 'Wait percentiles per minute', xLabels, fmt: secFmt })),
    h('div', { class: 'chart-cell' },
      h('h3', { text: 'Duration (started → finished)' }),
      h('p', { class: 'muted', text: summary(allDurs) }),
      lines(pct('dur', 'durs'), pSeries, { label: 'Duration percentiles per minute', xLabels, fmt: secFmt })),
    capped ? h('p', { class: 'muted note', text: `Computed from the ${num(CHART_RUNS)} most recently created finished runs.` }) : null,
  ];
}

function renderFailures(runs) {
  if (!runs.length) return emptyState('No failed runs.', h('p', { class: 'muted', text: 'Failures show here with their error codes.' }));
  return h('ul', { class: 'failures' }, runs.map((r) => h('li', {},
    h('div', { class: 'failure-head' },
      link('/runs/' + encodeURIComponent(r.job_id), h('code', { text: shortId(r.job_id), attrs: { title: r.job_id } })),
      h('span', { class: 'muted', text: r.recipe_name }),
      r.error_code ? h('span', { class: 'errcode', text: r.error_code }) : null,
      timeEl(r.completed_at || r.created_at)),
    r.error ? h('div', { class: 'failure-text', text: r.error }) : null)));
}
