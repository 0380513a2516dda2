package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spool-run/spool/queue"
)

// chunk is one streamed chat.completion.chunk.
type chunk struct {
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Content          string `json:"content"`
			ReasoningContent string `json:"reasoning_content"`
			Reasoning        string `json:"reasoning"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage json.RawMessage `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// maxEventSize bounds one SSE event.
const maxEventSize = 4 << 20

// readStream reads the SSE answer until data: [DONE]. Content tokens become output events
// and reasoning tokens (sent by some servers apart from the answer) log events. A stream
// that ends without [DONE] is an error: the answer may be incomplete.
func (h *handler) readStream(ctx context.Context, resp *http.Response) (any, error) {
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		return h.readWhole(ctx, resp)
	}
	var (
		text   strings.Builder
		usage  json.RawMessage
		model  = h.cfg.Model
		finish string
		data   bytes.Buffer
	)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxEventSize)
	// dispatch handles one complete event's data.
	dispatch := func() (done bool, err error) {
		defer data.Reset()
		payload := bytes.TrimSpace(data.Bytes())
		if len(payload) == 0 {
			return false, nil
		}
		if string(payload) == "[DONE]" {
			return true, nil
		}
		var c chunk
		if err := json.Unmarshal(payload, &c); err != nil {
			return false, fmt.Errorf("llm: bad stream chunk: %w", err)
		}
		if len(c.Error) > 0 && string(c.Error) != "null" {
			return false, fmt.Errorf("llm: the server reported an error mid-stream: %s", errorMessage(payload))
		}
		if c.Model != "" {
			model = c.Model
		}
		if len(c.Usage) > 0 && string(c.Usage) != "null" {
			usage = c.Usage
		}
		for _, ch := range c.Choices {
			if r := ch.Delta.ReasoningContent + ch.Delta.Reasoning; r != "" {
				queue.Log(ctx, r)
			}
			if ch.Delta.Content != "" {
				text.WriteString(ch.Delta.Content)
				queue.Output(ctx, ch.Delta.Content)
			}
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				finish = *ch.FinishReason
			}
		}
		return false, nil
	}

	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 { // end of an event
			if done, err := dispatch(); done || err != nil {
				if err != nil {
					return nil, err
				}
				return result(text.String(), usage, model, finish), nil
			}
			continue
		}
		if line[0] == ':' { // comment (keep-alive)
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if string(field) != "data" {
			continue // event:, id:, retry:
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		// Many servers send each chunk as one data line followed directly by the next one;
		// a line that is complete JSON or [DONE] is dispatched at once.
		if data.Len() > 0 {
			data.WriteByte('\n')
		}
		data.Write(value)
		if trimmed := bytes.TrimSpace(data.Bytes()); string(trimmed) == "[DONE]" || json.Valid(trimmed) {
			if done, err := dispatch(); done || err != nil {
				if err != nil {
					return nil, err
				}
				return result(text.String(), usage, model, finish), nil
			}
		}
	}
	err := sc.Err()
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("llm: %w", context.Cause(ctx))
	}
	if errors.Is(err, bufio.ErrTooLong) {
		return nil, queue.Permanent(fmt.Errorf("llm: a stream event is over %d bytes", maxEventSize))
	}
	// Tokens may already be out: the engine retries the whole attempt, not this call.
	return nil, fmt.Errorf("llm: the stream ended before [DONE] after %d characters: %w", text.Len(), err)
}

// readWhole reads a non-streamed chat.completion, sent by servers that ignore "stream".
func (h *handler) readWhole(ctx context.Context, resp *http.Response) (any, error) {
	var c struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage json.RawMessage `json:"usage"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxEventSize)).Decode(&c); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("llm: %w", context.Cause(ctx))
		}
		return nil, fmt.Errorf("llm: read answer: %w", err)
	}
	if len(c.Choices) == 0 {
		return nil, queue.Permanent(errors.New("llm: the answer has no choices"))
	}
	model := c.Model
	if model == "" {
		model = h.cfg.Model
	}
	queue.Output(ctx, c.Choices[0].Message.Content)
	if string(c.Usage) == "null" {
		c.Usage = nil
	}
	return result(c.Choices[0].Message.Content, c.Usage, model, c.Choices[0].FinishReason), nil
}

func result(text string, usage json.RawMessage, model, finish string) map[string]any {
	res := map[string]any{"output": text, "model": model}
	if len(usage) > 0 {
		res["usage"] = usage
	} else {
		res["usage"] = nil
	}
	if finish != "" {
		res["finish_reason"] = finish
	}
	return res
}

// readFull reads into b until it is full or r ends.
func readFull(r io.Reader, b []byte) (int, error) {
	n, err := io.ReadFull(r, b)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}
