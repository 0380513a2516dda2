// The dashboard's entry point: a path router over the History API. Each page is a function
// (main, ctx) that renders into <main> and stops its timers and streams when ctx.signal
// aborts (on navigation).
import { h, clear, errorBox } from './dom.js';
import { refreshTimes } from './format.js';
import { forgetToken, updateForgetButton, authRequired, getToken, askForToken } from './api.js';
import { overviewPage } from './pages/overview.js';
import { runsPage } from './pages/runs.js';
import { runPage } from './pages/run.js';
import { recipesPage, recipePage } from './pages/recipes.js';
import { nodesPage } from './pages/nodes.js';
import { schedulesPage } from './pages/schedules.js';

const routes = [
  { re: /^\/$/, nav: 'overview', title: 'Overview', page: overviewPage },
  { re: /^\/runs\/?$/, nav: 'runs', title: 'Runs', page: runsPage },
  { re: /^\/runs\/([^/]+)\/?$/, nav: 'runs', title: 'Run', page: runPage },
  { re: /^\/recipes\/?$/, nav: 'recipes', title: 'Recipes', page: recipesPage },
  { re: /^\/recipes\/([^/]+)\/?$/, nav: 'recipes', title: 'Recipe', page: recipePage },
  { re: /^\/nodes\/?$/, nav: 'nodes', title: 'Nodes', page: nodesPage },
  { re: /^\/schedules\/?$/, nav: 'schedules', title: 'Schedules', page: schedulesPage },
];

let current = null; // AbortController of the page on screen
let rendered = ''; // path and query of the page on screen

// navigate shows path without a page load.
// focusId keeps the keyboard focus on the element with that id in the new page (a filter
// field); otherwise the focus moves to the page's main region.
export function navigate(path, { replace = false, focusId = '' } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render({ focus: !focusId, focusId });
}

async function render({ focus = false, focusId = '' } = {}) {
  if (current) current.abort();
  const ctrl = new AbortController();
  current = ctrl;
  const main = document.getElementById('main');
  clear(main);
  const path = location.pathname;
  rendered = path + location.search;
  const route = routes.find((r) => r.re.test(path));
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (route && a.dataset.nav === route.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!route) {
    document.title = 'Not found · Spool';
    main.append(h('h1', { text: 'Page not found' }), h('p', {}, 'Nothing lives at this address. ', h('a', { href: '/', text: 'Go to the overview' }), '.'));
    return;
  }
  document.title = route.title + ' · Spool';
  const params = path.match(route.re).slice(1).map(decodeURIComponent);
  const ctx = {
    signal: ctrl.signal,
    params,
    query: new URLSearchParams(location.search),
    navigate,
    setTitle: (t) => { document.title = t + ' · Spool'; },
  };
  if (focus) main.focus({ preventScroll: true });
  try {
    await route.page(main, ctx);
    const keep = focusId && document.getElementById(focusId);
    if (keep && !ctrl.signal.aborted) keep.focus();
  } catch (e) {
    if (ctrl.signal.aborted || e.name === 'AbortError') return;
    console.warn('page failed:', e);
    main.append(errorBox(e));
  }
}

// Route clicks on same-origin links in the page instead of loading it again.
document.addEventListener('click', (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = ev.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download') || a.dataset.external !== undefined) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  if (!routes.some((r) => r.re.test(url.pathname))) return; // /openapi.json, /metrics: real loads
  const samePage = url.pathname === location.pathname && url.search === location.search;
  if (samePage && url.hash) return; // the browser scrolls to the #fragment
  ev.preventDefault();
  if (samePage) render();
  else navigate(url.pathname + url.search + url.hash);
});

// Back and forward; a change of the #fragment alone is not a new page.
window.addEventListener('popstate', () => {
  if (location.pathname + location.search !== rendered) render({ focus: true });
});

document.getElementById('forget-token').addEventListener('click', () => {
  forgetToken();
  if (authRequired) askForToken().then(() => render());
});

setInterval(() => refreshTimes(), 10000);

async function start() {
  updateForgetButton();
  if (authRequired && !getToken()) await askForToken();
  render();
}

start();
