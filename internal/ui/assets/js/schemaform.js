// schemaForm builds the input part of a submit form from a recipe's JSON Schema: one control
// per property of an object schema (string, number, integer, boolean, enum; anything else
// is a small JSON editor), a text box for a string schema, and a raw JSON editor otherwise
// or on request. The server validates against the schema again; this is for convenience.
import { h, replace } from './dom.js';

let seq = 0;

function typesOf(sc) {
  if (!sc || typeof sc !== 'object') return [];
  if (Array.isArray(sc.type)) return sc.type;
  if (typeof sc.type === 'string') return [sc.type];
  const alts = sc.oneOf || sc.anyOf;
  if (Array.isArray(alts)) return alts.flatMap(typesOf);
  if (sc.properties) return ['object'];
  if (sc.enum) return [...new Set(sc.enum.map((v) => (v === null ? 'null' : typeof v)))];
  return [];
}

function isObjectForm(sc) {
  return sc && typeof sc === 'object' && sc.properties && typeof sc.properties === 'object' &&
    Object.keys(sc.properties).length > 0 && typesOf(sc).includes('object');
}

// exampleFor is the JSON editor's starting text.
function exampleFor(sc) {
  if (sc && Array.isArray(sc.examples) && sc.examples.length) return JSON.stringify(sc.examples[0], null, 2);
  if (sc && sc.default !== undefined) return JSON.stringify(sc.default, null, 2);
  const t = typesOf(sc);
  if (t.includes('object') || !t.length) return '{}';
  if (t.includes('string')) return '""';
  if (t.includes('array')) return '[]';
  return 'null';
}

export function schemaForm(schema) {
  const id = 'sf' + (++seq);
  const sc = schema && typeof schema === 'object' ? schema : null;
  const objectForm = isObjectForm(sc);
  const textForm = !objectForm && sc && typesOf(sc).includes('string');
  const controls = new Map(); // property -> {get, err, wrap}
  const general = h('div', { class: 'form-error', hidden: true, attrs: { role: 'alert' } });

  // Fields mode.
  const fieldsEl = h('div', { class: 'schema-fields' });
  if (objectForm) {
    const required = new Set(Array.isArray(sc.required) ? sc.required : []);
    for (const [name, ps] of Object.entries(sc.properties)) {
      const c = control(id, name, ps || {}, required.has(name));
      controls.set(name, c);
      fieldsEl.append(c.wrap);
    }
  }
  // Text mode: the input is one string.
  const textArea = h('textarea', { id: id + '-text', rows: 5, spellcheck: true, class: 'mono' });
  const textEl = h('div', { class: 'field' }, h('label', { for: id + '-text', text: 'Text' }), textArea,
    sc && sc.description ? h('p', { class: 'help', text: sc.description }) : null);
  // JSON mode.
  const jsonArea = h('textarea', { id: id + '-json', rows: 8, spellcheck: false, class: 'mono', value: exampleFor(sc) });
  const jsonErr = h('p', { class: 'field-error', hidden: true });
  const jsonEl = h('div', { class: 'field' },
    h('label', { for: id + '-json', text: 'Input (JSON)' }), jsonArea, jsonErr,
    h('p', { class: 'help', text: sc ? 'Any JSON value that matches the recipe\'s input schema.' : 'Any JSON value; the recipe has no input schema.' }));

  let mode = objectForm ? 'fields' : textForm ? 'text' : 'json';
  const body = h('div');
  const toggle = h('button', { type: 'button', class: 'btn small ghost' });
  const show = () => {
    replace(body, mode === 'fields' ? fieldsEl : mode === 'text' ? textEl : jsonEl);
    toggle.hidden = !objectForm && !textForm;
    toggle.textContent = mode === 'json' ? (objectForm ? 'Use the form' : 'Use plain text') : 'Edit as JSON';
  };
  toggle.addEventListener('click', () => {
    clearErrors();
    if (mode === 'json') {
      let v;
      try {
        v = JSON.parse(jsonArea.value);
      } catch (e) {
        showJsonError('Not valid JSON: ' + e.message);
        return;
      }
      if (objectForm) {
        if (v && typeof v === 'object' && !Array.isArray(v)) for (const [k, c] of controls) c.set(v[k]);
        mode = 'fields';
      } else {
        textArea.value = typeof v === 'string' ? v : JSON.stringify(v);
        mode = 'text';
      }
    } else {
      const r = read();
      jsonArea.value = r.errors.length ? jsonArea.value : JSON.stringify(r.value, null, 2);
      mode = 'json';
    }
    show();
  });
  show();

  const el = h('fieldset', { class: 'schema-form' },
    h('legend', {}, 'Input ', toggle), general, body);

  function showJsonError(msg) {
    jsonErr.hidden = false;
    jsonErr.textContent = msg;
    jsonArea.setAttribute('aria-invalid', 'true');
  }

  function clearErrors() {
    general.hidden = true;
    jsonErr.hidden = true;
    jsonArea.removeAttribute('aria-invalid');
    for (const c of controls.values()) c.setError('');
  }

  // read returns {value, errors: [{field, reason}]}.
  function read() {
    if (mode === 'json') {
      try {
        return { value: JSON.parse(jsonArea.value.trim() || 'null'), errors: [] };
      } catch (e) {
        return { value: undefined, errors: [{ field: 'input', reason: 'not valid JSON: ' + e.message }] };
      }
    }
    if (mode === 'text') return { value: textArea.value, errors: [] };
    const value = {};
    const errors = [];
    for (const [name, c] of controls) {
      const r = c.get();
      if (r.error) errors.push({ field: 'input.' + name, reason: r.error });
      else if (r.value !== undefined) value[name] = r.value;
    }
    return { value, errors };
  }

  // showErrors places field errors (from read or from the server's problem document) next
  // to their controls; the rest go above the form.
  function showErrors(errors, detail) {
    clearErrors();
    const rest = [];
    for (const fe of errors || []) {
      const name = String(fe.field || '').replace(/^\/?input(\.|\/|$)/, '').replace(/^\//, '').split(/[./]/)[0];
      if (mode === 'fields' && name && controls.has(name)) controls.get(name).setError(fe.reason);
      else if (mode === 'json' && /^\/?input/.test(String(fe.field || ''))) showJsonError(`${fe.field}: ${fe.reason}`);
      else rest.push(fe.field ? `${fe.field}: ${fe.reason}` : fe.reason);
    }
    if (detail && !errors?.length) rest.push(detail);
    if (rest.length) {
      general.hidden = false;
      general.textContent = rest.join('\n');
    }
  }

  return { el, read, showErrors, clearErrors, setJSON: (text) => { mode = 'json'; jsonArea.value = text; show(); } };
}

function control(formId, name, ps, required) {
  const cid = `${formId}-${name.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  const types = typesOf(ps).filter((t) => t !== 'null');
  const err = h('p', { class: 'field-error', hidden: true, id: cid + '-err' });
  const help = ps.description ? h('p', { class: 'help', id: cid + '-help', text: ps.description }) : null;
  const label = h('label', { for: cid }, name, required ? h('span', { class: 'req', text: ' *', attrs: { 'aria-hidden': 'true' } }) : null,
    types.length ? h('span', { class: 'type', text: ' ' + types.join(' | ') }) : null);
  let input;
  let get;
  let set;
  const describedBy = [help ? cid + '-help' : '', cid + '-err'].filter(Boolean).join(' ');
  const dflt = ps.default;

  if (Array.isArray(ps.enum)) {
    input = h('select', { id: cid, required },
      required ? null : h('option', { value: '', text: dflt !== undefined ? `(default: ${JSON.stringify(dflt)})` : '(not set)' }),
      ps.enum.map((v, i) => h('option', { value: String(i), text: typeof v === 'string' ? v : JSON.stringify(v) })));
    if (required && dflt !== undefined) input.value = String(ps.enum.findIndex((v) => JSON.stringify(v) === JSON.stringify(dflt)));
    get = () => (input.value === '' ? { value: undefined } : { value: ps.enum[Number(input.value)] });
    set = (v) => { input.value = v === undefined ? '' : String(ps.enum.findIndex((x) => JSON.stringify(x) === JSON.stringify(v))); };
  } else if (types.length === 1 && (types[0] === 'integer' || types[0] === 'number')) {
    input = h('input', { id: cid, type: 'number', required, step: types[0] === 'integer' ? '1' : 'any', inputMode: types[0] === 'integer' ? 'numeric' : 'decimal' });
    if (typeof ps.minimum === 'number') input.min = String(ps.minimum);
    if (typeof ps.maximum === 'number') input.max = String(ps.maximum);
    if (dflt !== undefined) input.placeholder = String(dflt);
    get = () => {
      const raw = input.value.trim();
      if (raw === '') return required ? { error: 'required' } : { value: undefined };
      const n = Number(raw);
      if (!Number.isFinite(n)) return { error: 'must be a number' };
      if (types[0] === 'integer' && !Number.isInteger(n)) return { error: 'must be a whole number' };
      if (typeof ps.minimum === 'number' && n < ps.minimum) return { error: `must be at least ${ps.minimum}` };
      if (typeof ps.maximum === 'number' && n > ps.maximum) return { error: `must be at most ${ps.maximum}` };
      return { value: n };
    };
    set = (v) => { input.value = v === undefined || v === null ? '' : String(v); };
  } else if (types.length === 1 && types[0] === 'boolean') {
    input = h('input', { id: cid, type: 'checkbox', checked: dflt === true });
    let touched = false;
    input.addEventListener('change', () => { touched = true; });
    get = () => (touched || required || dflt !== undefined ? { value: input.checked } : { value: undefined });
    set = (v) => { input.checked = v === true; touched = v !== undefined; };
  } else if (types.length === 1 && types[0] === 'string') {
    const long = ps.maxLength === undefined || ps.maxLength > 200 || /^(text|prompt|content|body|message|question|description)$/i.test(name);
    input = long ? h('textarea', { id: cid, rows: 3, required }) : h('input', { id: cid, type: 'text', required });
    if (typeof ps.maxLength === 'number') input.maxLength = ps.maxLength;
    if (dflt !== undefined) input.placeholder = String(dflt);
    get = () => {
      const v = input.value;
      if (v === '') return required ? { error: 'required' } : { value: undefined };
      if (typeof ps.minLength === 'number' && v.length < ps.minLength) return { error: `at least ${ps.minLength} characters` };
      return { value: v };
    };
    set = (v) => { input.value = v === undefined || v === null ? '' : String(v); };
  } else {
    input = h('textarea', { id: cid, rows: 3, class: 'mono', spellcheck: false, placeholder: dflt !== undefined ? JSON.stringify(dflt) : 'JSON' });
    get = () => {
      const raw = input.value.trim();
      if (raw === '') return required ? { error: 'required' } : { value: undefined };
      try {
        return { value: JSON.parse(raw) };
      } catch (e) {
        return { error: 'not valid JSON: ' + e.message };
      }
    };
    set = (v) => { input.value = v === undefined ? '' : JSON.stringify(v); };
  }
  input.name = name;
  input.setAttribute('aria-describedby', describedBy);
  const wrap = h('div', { class: ['field', input.type === 'checkbox' ? 'check' : ''] }, label, input, help, err);
  return {
    wrap,
    get,
    set,
    setError: (msg) => {
      err.hidden = !msg;
      err.textContent = msg || '';
      if (msg) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    },
  };
}
