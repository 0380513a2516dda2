// Recipes: the list with load errors, and one recipe's page with its submit form.
import { api, ApiError } from '../api.js';
import { h, replace, link, code, section, emptyState, errorBox, toast } from '../dom.js';
import { PRIORITIES, pretty, duration } from '../format.js';
import { schemaForm } from '../schemaform.js';
import { jsonTree } from '../jsontree.js';

export async function recipesPage(main, ctx) {
  const res = await api('/recipes', { signal: ctx.signal });
  const recipes = res.recipes || [];
  const errors = res.errors || [];
  const reload = h('button', { type: 'button', class: 'btn', text: 'Reload from disk' });
  reload.addEventListener('click', async () => {
    reload.disabled = true;
    try {
      await api('/recipes/reload', { method: 'POST', body: {} });
      toast('Recipes reloaded.', 'ok');
      ctx.navigate('/recipes', { replace: true });
    } catch (e) {
      toast('Reload failed: ' + (e.detail || e.message), 'error');
      reload.disabled = false;
    }
  });
  main.append(h('div', { class: 'page-head' }, h('h1', { text: 'Recipes' }), h('span', { class: 'spacer' }), reload));
  if (errors.length) {
    main.append(h('section', { class: 'panel error-panel' },
      h('h2', { text: `${errors.length} recipe file${errors.length === 1 ? '' : 's'} did not load` }),
      h('ul', { class: 'load-errors' }, errors.map((e) => h('li', {},
        h('code', { text: e.file || e.recipe || '(unknown file)' }),
        h('pre', { class: 'error-text', text: e.error || pretty(e) }))))));
  }
  if (!recipes.length) {
    main.append(emptyState('No recipes are loaded.',
      h('p', {}, 'Put a recipe in ', code('recipes/NAME/TEMPLATE.yaml'), ' under the server\'s recipe directory (', code('--recipes'), '), then press Reload.')));
    return;
  }
  main.append(h('div', { class: 'cards' }, recipes.map((r) => h('article', { class: 'card' },
    h('div', { class: 'card-head' },
      h('h2', {}, link('/recipes/' + encodeURIComponent(r.name), r.name)),
      h('span', { class: ['kind', 'kind-' + r.kind], text: r.kind || '?' }),
      r.version ? h('span', { class: 'muted', text: 'v' + r.version }) : null),
    r.description ? h('p', { class: 'desc', text: r.description }) : null,
    defaultsList(r),
    h('div', { class: 'card-actions' }, h('a', { href: '/recipes/' + encodeURIComponent(r.name) + '#submit', class: 'btn small', text: 'Submit a run' }),
      h('a', { href: '/runs?recipe=' + encodeURIComponent(r.name), class: 'btn small ghost', text: 'Its runs' }))))));
}

// defaultsOf returns the recipe's run defaults as [label, value] pairs, from "defaults" (the
// API's summary) or from the runtime block.
function defaultsOf(r) {
  const d = r.defaults && typeof r.defaults === 'object' ? r.defaults : null;
  const job = (r.runtime && r.runtime.job) || {};
  const conc = (r.runtime && r.runtime.concurrency) || {};
  const pick = (...vals) => vals.find((v) => v !== undefined && v !== null && v !== '');
  const out = [];
  const timeout = pick(d && (d.timeout_sec ?? d.timeout), job.timeout_sec);
  if (timeout) out.push(['timeout', `${timeout} s (${duration(timeout)})`]);
  const retries = pick(d && d.max_retries, job.max_retries);
  if (retries !== undefined) out.push(['max retries', String(retries)]);
  const prio = pick(d && d.priority, job.priority);
  if (prio) out.push(['priority', prio]);
  const maxc = pick(d && (d.max_concurrent ?? d.concurrency), conc.max);
  if (maxc) out.push(['concurrency', String(maxc)]);
  const scope = pick(d && d.idempotency_scope, job.idempotency_scope);
  if (scope) out.push(['idempotency', scope]);
  if (d) {
    const known = new Set(['timeout_sec', 'timeout', 'max_retries', 'priority', 'max_concurrent', 'concurrency', 'idempotency_scope']);
    for (const [k, v] of Object.entries(d)) if (!known.has(k) && v !== null && v !== undefined && v !== '') out.push([k.replace(/_/g, ' '), typeof v === 'object' ? JSON.stringify(v) : String(v)]);
  }
  return out;
}

function defaultsList(r) {
  const ds = defaultsOf(r);
  if (!ds.length) return h('p', { class: 'muted small', text: 'Server defaults.' });
  return h('dl', { class: 'defaults' }, ds.map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
}

export async function recipePage(main, ctx) {
  const name = ctx.params[0];
  ctx.setTitle('Recipe ' + name);
  let r;
  try {
    r = await api('/recipes/' + encodeURIComponent(name), { signal: ctx.signal });
    if (r && r.recipe) r = r.recipe;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      main.append(h('h1', { text: 'Recipe not found' }), emptyState(`No recipe is called ${name}.`, h('p', {}, link('/recipes', 'See the recipes that exist'))));
      return;
    }
    throw e;
  }
  const form = submitForm(r, ctx);
  main.append(
    h('nav', { class: 'crumbs', attrs: { 'aria-label': 'Breadcrumb' } }, link('/recipes', 'Recipes'), ' › ', h('span', { text: r.name })),
    h('div', { class: 'page-head' },
      h('h1', {}, r.name), h('span', { class: ['kind', 'kind-' + r.kind], text: r.kind || '?' }),
      r.version ? h('span', { class: 'muted', text: 'v' + r.version }) : null,
      h('span', { class: 'spacer' }), h('a', { href: '/runs?recipe=' + encodeURIComponent(r.name), class: 'btn ghost', text: 'Its runs' })),
    r.description ? h('p', { class: 'lead', text: r.description }) : null,
    h('div', { class: 'run-grid' },
      h('section', { class: 'panel', id: 'submit' }, h('h2', { text: 'Submit a run' }), form),
      h('div', {},
        section('Defaults', defaultsList(r), r.file ? h('p', { class: 'muted small' }, 'File ', code(r.file)) : null),
        r.input_schema ? section('Input schema', jsonTree(r.input_schema, { openDepth: 3 })) : section('Input schema', h('p', { class: 'muted', text: 'None: any JSON input is accepted.' })),
        r.exec || r.llm ? section('Definition', jsonTree(r.exec ? { exec: r.exec } : { llm: r.llm }, { openDepth: 2 })) : null)),
  );
  if (location.hash === '#submit') {
    const first = form.querySelector('input, textarea, select');
    if (first) first.focus();
  }
}

function submitForm(r, ctx) {
  const sf = schemaForm(r.input_schema);
  const field = (id, label, input, help) => h('div', { class: 'field' }, h('label', { for: id, text: label }), input, help ? h('p', { class: 'help', text: help }) : null);
  const priority = h('select', { id: 'opt-priority', name: 'priority' },
    h('option', { value: '', text: 'recipe default' }), PRIORITIES.map((p) => h('option', { value: p, text: p })));
  const session = h('input', { id: 'opt-session', name: 'session_id', type: 'text', autocomplete: 'off', spellcheck: false });
  const timeout = h('input', { id: 'opt-timeout', name: 'timeout', type: 'number', min: '0', step: '1', inputMode: 'numeric', placeholder: 'recipe default' });
  const agent = h('input', { id: 'opt-agent', name: 'agent', type: 'text', placeholder: r.name, autocomplete: 'off' });
  const workspace = h('input', { id: 'opt-workspace', name: 'workspace', type: 'text', placeholder: 'default', autocomplete: 'off' });
  const retries = h('input', { id: 'opt-retries', name: 'max_retries', type: 'number', min: '0', max: '100', step: '1', placeholder: 'recipe default' });
  const idem = h('input', { id: 'opt-idem', name: 'idempotency_key', type: 'text', autocomplete: 'off' });
  const delay = h('input', { id: 'opt-delay', name: 'delay', type: 'text', placeholder: 'e.g. 90s, 5m', autocomplete: 'off' });
  const webhook = h('input', { id: 'opt-webhook', name: 'webhook_url', type: 'url', placeholder: 'https://…', autocomplete: 'off' });
  const problem = h('div', { class: 'form-error', hidden: true, attrs: { role: 'alert' } });
  const submit = h('button', { type: 'submit', class: 'btn primary', text: 'Submit run' });
  const cli = h('pre', { class: 'cmd small' });
  const form = h('form', { class: 'submit-form', noValidate: true },
    sf.el,
    h('div', { class: 'opts' },
      field('opt-priority', 'Priority', priority),
      field('opt-session', 'Session', session, 'Runs of one session execute one at a time, in order.'),
      field('opt-timeout', 'Timeout (seconds)', timeout)),
    h('details', { class: 'more' }, h('summary', { text: 'More options' }),
      h('div', { class: 'opts' },
        field('opt-agent', 'Agent (concurrency group)', agent),
        field('opt-workspace', 'Workspace', workspace),
        field('opt-retries', 'Max retries', retries),
        field('opt-idem', 'Idempotency key', idem, 'A repeated submit with the same key returns the existing run.'),
        field('opt-delay', 'Delay', delay, 'Start later: a Go duration.'),
        field('opt-webhook', 'Webhook URL', webhook))),
    problem,
    h('div', { class: 'form-actions' }, submit),
    h('p', { class: 'muted small', text: 'The same from the command line:' }), cli);

  const updateCli = () => {
    const { value, errors } = sf.read();
    const input = errors.length ? '…' : JSON.stringify(value);
    const quoted = "'" + String(input).replace(/'/g, `'\\''`) + "'";
    cli.textContent = `spool submit ${r.name}` + (value === undefined || value === null ? '' : ` --input ${quoted}`);
  };
  form.addEventListener('input', updateCli);
  form.addEventListener('change', updateCli);
  updateCli();

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    problem.hidden = true;
    const { value, errors } = sf.read();
    if (errors.length) {
      sf.showErrors(errors);
      return;
    }
    sf.clearErrors();
    const body = { recipe_name: r.name, input: value };
    if (priority.value) body.priority = priority.value;
    if (session.value.trim()) body.session_id = session.value.trim();
    if (timeout.value.trim()) body.timeout = Number(timeout.value);
    if (agent.value.trim()) body.agent = agent.value.trim();
    if (workspace.value.trim()) body.workspace = workspace.value.trim();
    if (retries.value.trim()) body.max_retries = Number(retries.value);
    if (idem.value.trim()) body.idempotency_key = idem.value.trim();
    if (delay.value.trim()) body.delay = delay.value.trim();
    if (webhook.value.trim()) body.webhook_url = webhook.value.trim();
    submit.disabled = true;
    submit.textContent = 'Submitting…';
    try {
      const run = await api('/runs', { method: 'POST', body });
      ctx.navigate('/runs/' + encodeURIComponent(run.job_id));
    } catch (e) {
      submit.disabled = false;
      submit.textContent = 'Submit run';
      if (e.fields && e.fields.length) sf.showErrors(e.fields, e.detail);
      problem.hidden = false;
      replace(problem, errorBox(e));
    }
  });
  return form;
}
