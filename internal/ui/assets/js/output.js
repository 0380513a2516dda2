// OutputPane shows a stream of text chunks (tokens, lines) as lines of text. Appends are
// batched per animation frame, so a run emitting thousands of events a second costs one DOM
// update per frame, and at most maxLines lines stay in the DOM (older ones are dropped, with
// a note saying how many).
import { h } from './dom.js';

export class OutputPane {
  constructor({ label, maxLines = 5000, emptyText = 'No output yet.' }) {
    this.maxLines = maxLines;
    this.pending = [];
    this.scheduled = false;
    this.lines = 0; // lines in the DOM
    this.total = 0; // lines received
    this.dropped = 0;
    this.open = null; // the last line's text node while it has no newline yet
    this.follow = true;
    this.onChange = null;

    this.note = h('div', { class: 'out-note', hidden: true });
    this.empty = h('div', { class: 'out-empty muted', text: emptyText });
    this.body = h('div', { class: 'out-lines' });
    this.el = h('div', {
      class: 'out', tabIndex: 0,
      attrs: { role: 'log', 'aria-label': label, 'aria-live': 'off' },
    }, this.note, this.empty, this.body);
    this.el.addEventListener('scroll', () => {
      const atBottom = this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 24;
      if (!atBottom && this.follow && !this.autoScrolling) this.setFollow(false);
      else if (atBottom && !this.follow) this.setFollow(true);
      this.autoScrolling = false;
    });
  }

  // append queues text; it reaches the DOM on the next animation frame.
  append(text) {
    if (!text) return;
    this.pending.push(text);
    if (!this.scheduled) {
      this.scheduled = true;
      requestAnimationFrame(() => this.flush());
    }
  }

  flush() {
    this.scheduled = false;
    if (!this.pending.length) return;
    const text = this.pending.join('');
    this.pending = [];
    this.empty.hidden = true;
    let parts = text.split('\n');
    // parts[0] continues the open line; every later part starts a new one.
    const frag = document.createDocumentFragment();
    const newLines = parts.length - 1;
    this.total += newLines;
    if (newLines >= this.maxLines) {
      // Most of this batch would be dropped at once: build only what stays.
      const skip = newLines - this.maxLines + 1;
      this.dropped += this.lines + skip;
      this.body.replaceChildren();
      this.lines = 0;
      this.open = null;
      parts = parts.slice(skip);
      this.addLine(frag, parts[0]);
    } else if (this.open) {
      this.open.appendData(parts[0]);
    } else {
      this.addLine(frag, parts[0]);
    }
    for (let i = 1; i < parts.length; i++) {
      if (i === parts.length - 1 && parts[i] === '') {
        this.open = null; // ends with a newline: the next chunk starts a new line
        break;
      }
      this.addLine(frag, parts[i]);
    }
    this.body.append(frag);
    const excess = this.lines - this.maxLines;
    if (excess > 0) {
      for (let i = 0; i < excess; i++) this.body.firstChild.remove();
      this.lines -= excess;
      this.dropped += excess;
    }
    if (this.dropped) {
      this.note.hidden = false;
      this.note.textContent = `${this.dropped.toLocaleString()} earlier lines are not shown (the pane keeps the last ${this.maxLines.toLocaleString()}).`;
    }
    if (this.follow) {
      this.autoScrolling = true;
      this.el.scrollTop = this.el.scrollHeight;
    }
    if (this.onChange) this.onChange();
  }

  addLine(frag, text) {
    const node = document.createTextNode(text);
    const line = document.createElement('div');
    line.className = 'line';
    line.append(node);
    frag.append(line);
    this.open = node;
    this.lines++;
  }

  setFollow(on) {
    this.follow = on;
    if (on) {
      this.autoScrolling = true;
      this.el.scrollTop = this.el.scrollHeight;
    }
    if (this.onFollow) this.onFollow(on);
  }

  // text returns what the DOM holds (for copying).
  text() {
    return Array.from(this.body.children, (l) => l.textContent).join('\n');
  }
}
