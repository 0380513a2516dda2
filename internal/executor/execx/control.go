package execx

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/spool-run/spool/queue"
)

// maxControlLine bounds one JSON line on fd 3 (a result can be large).
const maxControlLine = 16 << 20

// control reads the JSON lines a child writes on fd 3:
//
//	{"progress": 45, "message": "..."}
//	{"steps_total": 4}
//	{"steps_completed": 2}
//	{"result": ANY}
//
// Keys may be combined in one line. A malformed line is reported as a log chunk and skipped.
type control struct {
	mu        sync.Mutex
	res       json.RawMessage
	hasResult bool
}

// result returns the last result the child sent, if any.
func (c *control) result() (json.RawMessage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.res, c.hasResult
}

func (c *control) read(ctx context.Context, r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, tooLong, err := readLine(br, maxControlLine)
		if tooLong {
			queue.Log(ctx, fmt.Sprintf("spool: ignored a line over %d bytes on fd 3\n", maxControlLine))
		} else if len(bytes.TrimSpace(line)) > 0 {
			if perr := c.handle(ctx, line); perr != nil {
				queue.Log(ctx, fmt.Sprintf("spool: ignored a malformed line on fd 3 (%v): %s\n", perr, clip(line)))
			}
		}
		if err != nil {
			return
		}
	}
}

// readLine reads up to the next newline. A line longer than max is consumed and reported as
// tooLong, so the child never blocks on a full pipe.
func readLine(br *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(frag) > max {
				tooLong, line = true, nil
			} else {
				line = append(line, frag...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, tooLong, err
	}
}

func (c *control) handle(ctx context.Context, line []byte) error {
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(line, &msg); err != nil || msg == nil {
		return errors.New("want a JSON object")
	}
	var u queue.ProgressUpdate
	var hasUpdate bool
	var problems []string
	keys := make([]string, 0, len(msg))
	for k := range msg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		raw := msg[k]
		switch k {
		case "progress":
			var p float64
			if err := json.Unmarshal(raw, &p); err != nil || math.IsNaN(p) {
				problems = append(problems, "progress must be a number from 0 to 100")
				continue
			}
			p = min(max(p, 0), 100)
			u.Percentage, hasUpdate = &p, true
		case "message":
			var m string
			if err := json.Unmarshal(raw, &m); err != nil {
				problems = append(problems, "message must be a string")
				continue
			}
			u.Message, hasUpdate = &m, true
		case "steps_total", "steps_completed":
			var n int
			if err := json.Unmarshal(raw, &n); err != nil || n < 0 {
				problems = append(problems, k+" must be a non-negative integer")
				continue
			}
			if k == "steps_total" {
				u.StepsTotal = &n
			} else {
				u.StepsCompleted = &n
			}
			hasUpdate = true
		case "result":
			c.mu.Lock()
			c.res, c.hasResult = append(json.RawMessage(nil), raw...), true
			c.mu.Unlock()
		default:
			problems = append(problems, fmt.Sprintf("unknown key %q", k))
		}
	}
	if hasUpdate {
		queue.UpdateProgress(ctx, u)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
