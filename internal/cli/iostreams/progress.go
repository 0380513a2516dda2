package iostreams

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spool-run/spool/internal/cli/text"
)

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// Progress is a live status line on standard error while the CLI waits: a spinner, a label
// and, once a percentage is known, a progress bar. It draws only when standard error is a
// terminal; otherwise every method but Write does nothing. Output written through Write
// appears above the status line.
type Progress struct {
	mu      sync.Mutex
	errOut  io.Writer
	cs      *ColorScheme
	width   int
	active  bool
	label   string
	percent float64
	hasPct  bool
	step    string
	frame   int
	drawn   bool // the status line is on screen
	midLine bool // the last output did not end a line: the status line waits for one
	stop    chan struct{}
	done    chan struct{}
}

// StartProgress shows a status line with label until Stop.
func (s *IOStreams) StartProgress(label string) *Progress {
	p := &Progress{errOut: s.ErrOut, cs: s.ErrColorScheme(), width: s.TerminalWidth(), label: label}
	if !s.stderrTTY {
		return p
	}
	p.active = true
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	p.mu.Lock()
	p.draw()
	p.mu.Unlock()
	go p.spin()
	return p
}

func (p *Progress) spin() {
	defer close(p.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.frame++
			p.draw()
			p.mu.Unlock()
		}
	}
}

// SetLabel changes the text beside the spinner.
func (p *Progress) SetLabel(label string) {
	p.update(func() { p.label = label })
}

// SetPercent shows a progress bar at percent (0-100) and the current step, if any.
func (p *Progress) SetPercent(percent float64, step string) {
	p.update(func() {
		p.percent = min(max(percent, 0), 100)
		p.hasPct = true
		p.step = step
	})
}

func (p *Progress) update(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f()
	if p.active {
		p.draw()
	}
}

// Write writes b to w (standard output or error) above the status line.
func (p *Progress) Write(w io.Writer, b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(b) == 0 {
		return nil
	}
	p.clear()
	_, err := w.Write(b)
	p.midLine = b[len(b)-1] != '\n'
	if p.active {
		p.draw()
	}
	return err
}

// Stop removes the status line. It is safe to call more than once.
func (p *Progress) Stop() {
	p.mu.Lock()
	if !p.active {
		p.mu.Unlock()
		return
	}
	p.active = false
	p.clear()
	if p.midLine {
		fmt.Fprintln(p.errOut)
		p.midLine = false
	}
	p.mu.Unlock()
	close(p.stop)
	<-p.done
}

// clear erases the status line; the caller holds p.mu.
func (p *Progress) clear() {
	if p.drawn {
		io.WriteString(p.errOut, "\r\x1b[K")
		p.drawn = false
	}
}

// draw (re)draws the status line; the caller holds p.mu.
func (p *Progress) draw() {
	if p.midLine {
		return
	}
	var b bytes.Buffer
	b.WriteString("\r\x1b[K")
	b.WriteString(p.cs.Cyan(spinnerFrames[p.frame%len(spinnerFrames)]))
	line := " " + p.label
	if p.hasPct {
		const barWidth = 20
		filled := int(p.percent / 100 * barWidth)
		line += fmt.Sprintf(" [%s%s] %3.0f%%", strings.Repeat("█", filled), strings.Repeat("░", barWidth-filled), p.percent)
		if p.step != "" {
			line += " " + text.OneLine(p.step)
		}
	}
	b.WriteString(text.Truncate(line, max(p.width-3, 10)))
	p.errOut.Write(b.Bytes())
	p.drawn = true
}
