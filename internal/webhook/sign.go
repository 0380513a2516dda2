package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers (https://www.standardwebhooks.com).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// secretPrefix starts a Standard Webhooks secret; the rest is base64.
const secretPrefix = "whsec_"

// ParseSecret decodes a Standard Webhooks secret: "whsec_" followed by base64 (the prefix
// may be left out). The decoded bytes are the HMAC key.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("webhook secret is empty")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, secretPrefix))
	if err != nil {
		return nil, fmt.Errorf("webhook secret must be %sBASE64: %w", secretPrefix, err)
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("webhook secret is %d bytes; use at least 16 (24-64 recommended)", len(key))
	}
	return key, nil
}

// Sign returns the webhook-signature header value for one message: "v1," and the base64
// HMAC-SHA256 of "id.timestamp.body" keyed with the decoded secret.
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ErrBadSignature is returned by [Verify] for a message that does not verify.
var ErrBadSignature = errors.New("webhook signature does not verify")

// Verify checks a received webhook: its headers must carry an id, a timestamp within
// tolerance of now, and at least one v1 signature that matches body. It is what a Go
// receiver of Spool's webhooks calls.
func Verify(key []byte, h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	id := h.Get(HeaderID)
	tsRaw := h.Get(HeaderTimestamp)
	if id == "" || tsRaw == "" {
		return fmt.Errorf("%w: missing %s or %s", ErrBadSignature, HeaderID, HeaderTimestamp)
	}
	secs, err := strconv.ParseInt(tsRaw, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad timestamp %q", ErrBadSignature, tsRaw)
	}
	ts := time.Unix(secs, 0)
	if tolerance > 0 && (now.Sub(ts) > tolerance || ts.Sub(now) > tolerance) {
		return fmt.Errorf("%w: timestamp %s is outside the tolerance", ErrBadSignature, ts.UTC().Format(time.RFC3339))
	}
	want := Sign(key, id, ts, body)
	for _, sig := range strings.Fields(h.Get(HeaderSignature)) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return ErrBadSignature
}
