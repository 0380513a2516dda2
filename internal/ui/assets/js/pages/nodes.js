// Nodes: every spool process working runs, with its last heartbeat and the runs it holds.
import { api, poll } from '../api.js';
import { h, replace, link, code, emptyState, errorBox } from '../dom.js';
import { timeEl, shortId, num } from '../format.js';

// STALE_MS: a node whose heartbeat is older than its lease (10 s) plus a margin is shown
// as stale; its runs are rescued by another node.
const STALE_MS = 15000;

export async function nodesPage(main, ctx) {
  const body = h('div');
  main.append(h('div', { class: 'page-head' }, h('h1', { text: 'Nodes' })),
    h('p', { class: 'muted', text: 'Each spool server or worker process sharing this database. A node renews its lease every few seconds; a node silent for longer than its lease is stale, and its runs are re-queued by the others.' }),
    body);

  const refresh = async () => {
    let nodes;
    let running = [];
    try {
      const [n, r] = await Promise.all([
        api('/nodes', { signal: ctx.signal }),
        api('/runs', { query: { status: 'running', page_size: 1000 }, signal: ctx.signal }),
      ]);
      nodes = n.nodes || [];
      running = r.jobs || [];
    } catch (e) {
      if (e.name !== 'AbortError') replace(body, errorBox(e));
      return;
    }
    if (!nodes.length) {
      replace(body, emptyState('No node has reported yet.', h('p', {}, 'Start one with ', code('spool server'), ' or ', code('spool worker --db postgres://…'), '.')));
      return;
    }
    const byNode = new Map();
    for (const r of running) {
      if (!byNode.has(r.node)) byNode.set(r.node, []);
      byNode.get(r.node).push(r);
    }
    const now = Date.now();
    replace(body, h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, ['Node', 'Host', 'PID', 'Started', 'Last heartbeat', 'Running', 'Runs it holds'].map((c) => h('th', { scope: 'col', text: c })))),
      h('tbody', {}, nodes.map((n) => {
        const seen = Date.parse(n.seen_at);
        const stale = Number.isFinite(seen) && now - seen > STALE_MS;
        const held = byNode.get(n.id) || [];
        return h('tr', { class: stale ? 'stale' : '' },
          h('td', {}, code(n.id)),
          h('td', { text: n.host || '—' }),
          h('td', { class: 'num', text: n.pid ? String(n.pid) : '—' }),
          h('td', {}, timeEl(n.started_at)),
          h('td', {}, timeEl(n.seen_at), stale ? h('span', { class: 'badge warn', text: 'stale' }) : h('span', { class: 'badge ok', text: 'alive' })),
          h('td', { class: 'num', text: num(n.running ?? held.length) }),
          h('td', {}, held.length
            ? h('ul', { class: 'inline-list' }, held.slice(0, 12).map((r) => h('li', {}, link('/runs/' + encodeURIComponent(r.job_id), code(shortId(r.job_id))))),
              held.length > 12 ? h('li', { class: 'muted', text: `and ${held.length - 12} more` }) : null)
            : h('span', { class: 'muted', text: 'none' })));
      })))));
  };
  await refresh();
  poll(refresh, 5000, ctx.signal);
}
