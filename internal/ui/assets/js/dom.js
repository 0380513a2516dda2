// DOM helpers. Every piece of data reaches the page as a text node or an attribute value:
// this file never parses HTML, so run output such as <img src=x onerror=...> stays text.

const SVG_NS = 'http://www.w3.org/2000/svg';

// h creates an HTML element. props: class, text, attrs (setAttribute), dataset, on<Event>
// handlers, and DOM properties (hidden, disabled, value, checked, ...). Children may be
// strings (text nodes), nodes, arrays, or null/false (skipped).
export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

// s creates an SVG element with attributes.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

const BOOL_PROPS = new Set(['checked', 'disabled', 'hidden', 'open', 'selected', 'required']);

function build(el, props, children) {
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null) continue;
      if (v === false && !BOOL_PROPS.has(k)) continue;
      if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'attrs') for (const [a, av] of Object.entries(v)) { if (av !== undefined && av !== null && av !== false) el.setAttribute(a, String(av)); }
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
      else if (k === 'href') el.setAttribute('href', safeHref(v));
      else el[k] = v;
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// safeHref allows only paths on this site (and a few harmless schemes): a value from data
// can never become a javascript: link.
export function safeHref(v) {
  const str = String(v);
  if (str.startsWith('/') && !str.startsWith('//')) return str;
  if (str.startsWith('#') || str.startsWith('?')) return str;
  try {
    const u = new URL(str, location.origin);
    if (u.protocol === 'http:' || u.protocol === 'https:' || u.protocol === 'mailto:') return u.href;
  } catch { /* fall through */ }
  return '#';
}

// clear removes every child of el.
export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// replace swaps el's children for the given ones.
export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

// link is an in-app link; app.js routes clicks on it without a page load.
export function link(path, ...children) {
  return h('a', { href: path }, ...children);
}

// code returns a <code> element with text.
export function code(text) {
  return h('code', { text });
}

// copyButton copies text to the clipboard when pressed.
export function copyButton(text, label = 'Copy') {
  const btn = h('button', { class: 'btn small ghost', type: 'button', text: label, attrs: { 'aria-label': label + ' ' + text.slice(0, 40) } });
  btn.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      btn.textContent = 'Copied';
    } catch {
      btn.textContent = 'Select and copy';
    }
    setTimeout(() => { btn.textContent = label; }, 1500);
  });
  return btn;
}

// section is a titled panel.
export function section(title, ...children) {
  return h('section', { class: 'panel' }, title ? h('h2', { text: title }) : null, ...children);
}

// emptyState is the text that says what to do next when there is nothing to show.
export function emptyState(title, ...children) {
  return h('div', { class: 'empty' }, h('p', { class: 'empty-title', text: title }), ...children);
}

// errorBox shows an error from the API or the network.
export function errorBox(err) {
  const box = h('div', { class: 'error-box', attrs: { role: 'alert' } });
  const title = err && err.title ? err.title : 'Something went wrong';
  box.append(h('strong', { text: title }));
  const detail = err && (err.detail || err.message);
  if (detail && detail !== title) box.append(h('p', { text: detail }));
  if (err && err.code) box.append(h('p', { class: 'muted' }, 'code ', code(err.code)));
  return box;
}

// toast shows a short message in the corner for a few seconds.
export function toast(message, kind = 'info') {
  const host = document.getElementById('toasts');
  if (!host) return;
  const t = h('div', { class: ['toast', kind], text: message });
  host.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 9000 : 5000);
}

// confirmDialog asks a yes/no question in the page's <dialog>; it resolves true for yes.
export function confirmDialog(question, okLabel = 'Delete') {
  const dlg = document.getElementById('confirm-dialog');
  document.getElementById('confirm-text').textContent = question;
  document.getElementById('confirm-ok').textContent = okLabel;
  dlg.returnValue = '';
  dlg.showModal();
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
  });
}
