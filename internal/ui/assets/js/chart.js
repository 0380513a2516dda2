// Small SVG charts: stacked bars and lines over time buckets. No library: a chart is a few
// dozen <rect>s or a <polyline>, styled by CSS classes (so they follow the colour scheme).
import { h, s } from './dom.js';

const PAD = { top: 10, right: 8, bottom: 22, left: 58 };

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// Charts draw in a viewBox of W x H user units that scales to the box's width; a wide chart
// gets a wider viewBox so that its text keeps about the page's size.
function frame(max, fmt, xLabels, label, W, H) {
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': label });
  const innerH = H - PAD.top - PAD.bottom;
  for (const f of [0, 0.5, 1]) {
    const y = PAD.top + innerH * (1 - f);
    svg.append(s('line', { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: 'grid' }));
    const t = s('text', { x: PAD.left - 6, y: y + 4, class: 'axis', 'text-anchor': 'end' });
    t.textContent = fmt(max * f);
    svg.append(t);
  }
  const innerW = W - PAD.left - PAD.right;
  xLabels.forEach(([frac, text], i) => {
    const anchor = i === 0 ? 'start' : i === xLabels.length - 1 ? 'end' : 'middle';
    const t = s('text', { x: PAD.left + innerW * frac, y: H - 6, class: 'axis', 'text-anchor': anchor });
    t.textContent = text;
    svg.append(t);
  });
  return svg;
}

// stackedBars draws one bar per bucket, stacked by series. buckets: [{label, values: {key: n}}],
// series: [{key, name, cls}].
export function stackedBars(buckets, series, { label, xLabels, fmt = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)), W = 600, H = 170 }) {
  const totals = buckets.map((b) => series.reduce((a, sr) => a + (b.values[sr.key] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const svg = frame(max, fmt, xLabels, label, W, H);
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const bw = innerW / buckets.length;
  buckets.forEach((b, i) => {
    let y = PAD.top + innerH;
    const g = s('g', {});
    for (const sr of series) {
      const v = b.values[sr.key] || 0;
      if (!v) continue;
      const hgt = (v / max) * innerH;
      y -= hgt;
      g.append(s('rect', { x: PAD.left + i * bw + bw * 0.12, y, width: Math.max(1, bw * 0.76), height: hgt, class: 'bar ' + sr.cls }));
    }
    const title = s('title', {});
    title.textContent = b.label + ': ' + series.map((sr) => `${b.values[sr.key] || 0} ${sr.name}`).join(', ');
    g.append(title);
    // An invisible full-height target so the tooltip works over empty minutes too.
    g.append(s('rect', { x: PAD.left + i * bw, y: PAD.top, width: bw, height: innerH, class: 'hit' }));
    svg.append(g);
  });
  return wrap(svg, series);
}

// lines draws one line per series over the buckets; null values leave gaps.
// buckets: [{label, values: {key: number|null}}].
export function lines(buckets, series, { label, xLabels, fmt, W = 600, H = 170 }) {
  const all = buckets.flatMap((b) => series.map((sr) => b.values[sr.key])).filter((v) => v !== null && v !== undefined);
  const max = niceMax(Math.max(0, ...all));
  const svg = frame(max, fmt, xLabels, label, W, H);
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const step = innerW / Math.max(1, buckets.length);
  const x = (i) => PAD.left + step * (i + 0.5);
  const y = (v) => PAD.top + innerH * (1 - v / max);
  for (const sr of series) {
    let pts = [];
    const flush = () => {
      if (pts.length > 1) svg.append(s('polyline', { points: pts.join(' '), class: 'line ' + sr.cls }));
      pts = [];
    };
    buckets.forEach((b, i) => {
      const v = b.values[sr.key];
      if (v === null || v === undefined) {
        flush();
        return;
      }
      pts.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      const dot = s('circle', { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.2, class: 'dot ' + sr.cls });
      const title = s('title', {});
      title.textContent = `${b.label}: ${sr.name} ${fmt(v)}`;
      dot.append(title);
      svg.append(dot);
    });
    flush();
  }
  return wrap(svg, series);
}

function wrap(svg, series) {
  return h('figure', { class: 'chart-box' }, svg,
    h('figcaption', { class: 'legend' }, series.map((sr) =>
      h('span', { class: 'legend-item' }, h('span', { class: 'swatch ' + sr.cls, attrs: { 'aria-hidden': 'true' } }), sr.name))));
}

// meter is a horizontal bar of used against limit (0 = unlimited).
export function meter(used, limit, label) {
  const pct = limit > 0 ? Math.min(100, (used / limit) * 100) : 0;
  const bar = h('div', { class: 'meter-fill' });
  bar.style.width = (limit > 0 ? pct : used > 0 ? 100 : 0) + '%';
  const cls = ['meter', limit > 0 && used >= limit ? 'full' : '', limit > 0 ? '' : 'unlimited'];
  return h('div', { class: 'meter-row' },
    h('span', { class: 'meter-label', text: label }),
    h('div', {
      class: cls, attrs: {
        role: 'meter', 'aria-label': label, 'aria-valuemin': 0,
        'aria-valuemax': limit > 0 ? limit : Math.max(used, 1), 'aria-valuenow': used,
      },
    }, bar),
    h('span', { class: 'meter-value', text: limit > 0 ? `${used} / ${limit}` : `${used} / ∞` }));
}
