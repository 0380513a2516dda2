package webhook

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks reference test vector.
func TestSignMatchesTheStandardWebhooksVector(t *testing.T) {
	t.Parallel()
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1614265330, 0)
	body := []byte(`{"test": 2432232314}`)
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body)
	want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	h := http.Header{}
	h.Set(HeaderID, "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set(HeaderTimestamp, "1614265330")
	h.Set(HeaderSignature, "v1,bogus "+got)
	if err := Verify(key, h, body, 5*time.Minute, ts.Add(time.Minute)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := Verify(key, h, body, 5*time.Minute, ts.Add(time.Hour)); err == nil {
		t.Fatal("Verify accepted a stale timestamp")
	}
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	raw := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123"))
	for _, s := range []string{"whsec_" + raw, raw, "  whsec_" + raw + "\n"} {
		k, err := ParseSecret(s)
		if err != nil || string(k) != "0123456789abcdef0123" {
			t.Errorf("ParseSecret(%q) = %q, %v", s, k, err)
		}
	}
	for _, s := range []string{"", "whsec_", "whsec_not base64!", "whsec_" + base64.StdEncoding.EncodeToString([]byte("short"))} {
		if _, err := ParseSecret(s); err == nil {
			t.Errorf("ParseSecret(%q) succeeded", s)
		} else if strings.Contains(err.Error(), "not base64") {
			t.Errorf("error echoes the secret: %v", err)
		}
	}
}
