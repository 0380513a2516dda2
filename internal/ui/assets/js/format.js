// Formatting of times, durations, states and JSON.
import { h } from './dom.js';

export const STATES = ['queued', 'scheduled', 'running', 'paused', 'succeeded', 'failed', 'cancelled'];
export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
export const PRIORITIES = ['urgent', 'high', 'normal', 'low'];

const STATE_ICONS = {
  queued: '○', scheduled: '◷', running: '●', paused: '‖',
  succeeded: '✓', failed: '✕', cancelled: '⊘',
};

// stateBadge shows a state with its icon and colour; the word is always there, so colour
// is never the only signal.
export function stateBadge(state) {
  return h('span', { class: ['state', 'state-' + (STATE_ICONS[state] ? state : 'unknown')] },
    h('span', { class: 'state-icon', text: STATE_ICONS[state] || '?', attrs: { 'aria-hidden': 'true' } }),
    h('span', { class: 'state-word', text: state || 'unknown' }));
}

export function priorityBadge(p) {
  return h('span', { class: ['prio', 'prio-' + p], text: p || '' });
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto', style: 'short' });
const dtf = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

// relTime formats a date relative to now: "12 sec. ago", "in 3 min.".
export function relTime(date, now = Date.now()) {
  const d = date instanceof Date ? date : new Date(date);
  const secs = Math.round((d.getTime() - now) / 1000);
  const abs = Math.abs(secs);
  if (abs < 5) return 'just now';
  if (abs < 60) return rtf.format(secs, 'second');
  if (abs < 3600) return rtf.format(Math.round(secs / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(secs / 3600), 'hour');
  if (abs < 30 * 86400) return rtf.format(Math.round(secs / 86400), 'day');
  return dtf.format(d);
}

// exactTime formats a date in full, with its UTC form too.
export function exactTime(date) {
  const d = date instanceof Date ? date : new Date(date);
  return dtf.format(d) + ' (' + d.toISOString() + ')';
}

// timeEl is a <time> showing the relative time, with the exact time on hover; refreshTimes
// keeps every one of them current.
export function timeEl(iso) {
  if (!iso) return h('span', { class: 'muted', text: '—' });
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('span', { text: String(iso) });
  return h('time', { text: relTime(d), attrs: { datetime: d.toISOString(), title: exactTime(d) }, dataset: { rel: '1' } });
}

export function refreshTimes(root = document) {
  const now = Date.now();
  for (const t of root.querySelectorAll('time[data-rel]')) {
    const next = relTime(new Date(t.getAttribute('datetime')), now);
    if (t.textContent !== next) t.textContent = next;
  }
}

// duration formats seconds: "850 ms", "12.3 s", "4 m 05 s", "2 h 03 m".
export function duration(sec) {
  if (sec === null || sec === undefined || Number.isNaN(sec)) return '—';
  if (sec < 0) sec = 0;
  if (sec < 1) return Math.round(sec * 1000) + ' ms';
  if (sec < 60) return (sec < 10 ? sec.toFixed(2) : sec.toFixed(1)) + ' s';
  if (sec < 3600) return Math.floor(sec / 60) + ' m ' + String(Math.floor(sec % 60)).padStart(2, '0') + ' s';
  if (sec < 86400) return Math.floor(sec / 3600) + ' h ' + String(Math.floor((sec % 3600) / 60)).padStart(2, '0') + ' m';
  return Math.floor(sec / 86400) + ' d ' + Math.floor((sec % 86400) / 3600) + ' h';
}

const nf = new Intl.NumberFormat();
export function num(n) {
  if (n === null || n === undefined) return '—';
  return nf.format(n);
}

// pretty formats any JSON value with two-space indentation.
export function pretty(v) {
  if (v === undefined) return '';
  try {
    return JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
}

// shortId shortens a run id for tables: run_01JD8X...K7 keeps its prefix and tail.
export function shortId(id) {
  if (!id || id.length <= 18) return id || '';
  return id.slice(0, 10) + '…' + id.slice(-6);
}

// percentile of a sorted array (p in 0..1), nearest-rank.
export function percentile(sorted, p) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i];
}
