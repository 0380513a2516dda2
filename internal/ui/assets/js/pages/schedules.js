// Schedules: runs started on a cron expression or an interval (GET /api/v1/schedules answers
// {schedules: [{id, name, recipe_name, cron | every, timezone, next_run_at, last_run_at,
// last_run_id, paused}]}). A server without the schedules API (404) shows there are none.
import { api, poll, ApiError } from '../api.js';
import { h, replace, link, code, emptyState, errorBox } from '../dom.js';
import { timeEl } from '../format.js';

export async function schedulesPage(main, ctx) {
  const body = h('div');
  main.append(h('div', { class: 'page-head' }, h('h1', { text: 'Schedules' })), body);
  const none = (why) => emptyState('No schedules.',
    why ? h('p', { class: 'muted', text: why }) : null,
    h('p', {}, 'Add one in a recipe\'s ', code('runtime.schedules'), ' or with ', code('spool schedule add'), '.'));
  const refresh = async () => {
    let res;
    try {
      res = await api('/schedules', { signal: ctx.signal });
    } catch (e) {
      if (e.name === 'AbortError') return;
      if (e instanceof ApiError && (e.status === 404 || e.status === 405)) {
        replace(body, none('This server does not offer schedules yet.'));
        return false;
      }
      replace(body, errorBox(e));
      return;
    }
    const list = Array.isArray(res) ? res : res.schedules || [];
    if (!list.length) {
      replace(body, none(''));
      return;
    }
    replace(body, h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, ['Schedule', 'Recipe', 'When', 'Next run', 'Last run', 'State'].map((c) => h('th', { scope: 'col', text: c })))),
      h('tbody', {}, list.map((s) => h('tr', {},
        h('td', { title: s.id || '' }, code(s.name || s.id || '')),
        h('td', {}, s.recipe_name || s.recipe ? link('/recipes/' + encodeURIComponent(s.recipe_name || s.recipe), s.recipe_name || s.recipe) : '—'),
        h('td', {}, code(s.cron || (s.every ? 'every ' + s.every : '') || '—'), s.timezone ? h('span', { class: 'muted', text: ' ' + s.timezone }) : null),
        h('td', {}, timeEl(s.next_run_at || s.next_at)),
        h('td', {}, s.last_run_id ? link('/runs/' + encodeURIComponent(s.last_run_id), timeEl(s.last_run_at)) : timeEl(s.last_run_at)),
        h('td', { text: s.paused ? 'paused' : s.state || 'active' })))))));
    return true;
  };
  if ((await refresh()) !== false) poll(refresh, 10000, ctx.signal);
}
