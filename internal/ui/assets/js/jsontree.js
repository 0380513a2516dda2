// jsonTree renders any JSON value as a collapsible tree of <details>, every key and value
// as text.
import { h } from './dom.js';

export function jsonTree(value, { openDepth = 2 } = {}) {
  return h('div', { class: 'json' }, node(value, 0, openDepth));
}

function node(v, depth, openDepth) {
  if (v === null) return h('span', { class: 'j-null', text: 'null' });
  if (Array.isArray(v)) {
    if (!v.length) return h('span', { class: 'j-punct', text: '[]' });
    return container(`[ ${v.length} item${v.length === 1 ? '' : 's'} ]`, v.map((x, i) => [String(i), x]), depth, openDepth, true);
  }
  switch (typeof v) {
    case 'object': {
      const keys = Object.keys(v);
      if (!keys.length) return h('span', { class: 'j-punct', text: '{}' });
      return container(`{ ${keys.length} key${keys.length === 1 ? '' : 's'} }`, keys.map((k) => [k, v[k]]), depth, openDepth, false);
    }
    case 'string': return h('span', { class: 'j-str', text: JSON.stringify(v) });
    case 'number': return h('span', { class: 'j-num', text: String(v) });
    case 'boolean': return h('span', { class: 'j-bool', text: String(v) });
  }
  return h('span', { text: String(v) });
}

function container(summary, entries, depth, openDepth, isArray) {
  return h('details', { open: depth < openDepth },
    h('summary', { class: 'j-punct', text: summary }),
    h('ul', {}, entries.map(([k, x]) => h('li', {},
      h('span', { class: isArray ? 'j-idx' : 'j-key', text: isArray ? k : JSON.stringify(k) }),
      h('span', { class: 'j-punct', text: ': ' }),
      node(x, depth + 1, openDepth)))));
}
