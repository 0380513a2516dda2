package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestCheckURLRefuses(t *testing.T) {
	t.Parallel()
	// None of these may be reached with the default guard; none needs DNS to be refused.
	refused := []string{
		"ftp://example.com/hook",
		"file:///etc/passwd",
		"http:///nohost",
		"http://127.0.0.1/hook",
		"http://127.0.0.1:8080/hook",
		"http://127.255.255.254/",
		"http://10.0.0.1/",
		"http://172.16.5.4/",
		"http://192.168.1.1/",
		"http://169.254.169.254/latest/meta-data/",
		"http://0.0.0.0/",
		"http://100.64.0.1/",
		"http://224.0.0.1/",
		"http://255.255.255.255/",
		"http://240.0.0.1/",
		"http://[::1]/",
		"http://[::]/",
		"http://[fe80::1]/",
		"http://[fe80::1%25eth0]/",
		"http://[fc00::1]/",
		"http://[fd12:3456::1]/",
		"http://[ff02::1]/",
		"http://[::ffff:127.0.0.1]/",
		"http://[::ffff:10.1.2.3]/",
		"http://[64:ff9b::7f00:1]/",     // NAT64 of 127.0.0.1
		"http://[2002:7f00:1::1]/",      // 6to4 of 127.0.0.1
		"http://[::127.0.0.1]/",         // IPv4-compatible
		"http://0x7f.1/",                // inet_aton hex
		"http://0x7f000001/",            // one hex number
		"http://2130706433/",            // one decimal number
		"http://0177.0.0.1/",            // octal
		"http://127.1/",                 // short form
		"http://127.0.1/",               // short form
		"http://017700000001/",          // octal number
		"http://1.2.3.4.5/",             // not an address, numeric TLD
		"http://localhost/",             // the name
		"http://LOCALHOST/",             // any case
		"http://localhost./",            // trailing dot
		"http://LocalHost.:9/",          // both
		"http://loc%61lhost/",           // escaped
		"http://api.localhost/",         // RFC 6761 subdomains
		"http://exa mple.com/",          // unparseable
		"http://ex_am$ple.com/",         // unclassifiable characters
		"http://[::1]:80@evil.example/", // userinfo trick: host is evil.example after all, but it must not resolve here
	}
	g := &Guard{ResolveTimeout: 2 * time.Second, Resolver: noDNS()}
	for _, u := range refused {
		err := g.CheckURL(context.Background(), u)
		if err == nil {
			t.Errorf("CheckURL(%q) = nil, want a refusal", u)
			continue
		}
		if !errors.Is(err, ErrRefused) {
			t.Errorf("CheckURL(%q) = %v, want it to wrap ErrRefused", u, err)
		}
	}
}

// noDNS is a resolver whose every query fails at once, so tests never touch the network.
func noDNS() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		return nil, errors.New("no DNS in tests")
	}}
}

func TestCheckURLAllowsPublicLiterals(t *testing.T) {
	t.Parallel()
	g := &Guard{Resolver: noDNS()}
	for _, u := range []string{
		"http://8.8.8.8/hook",
		"https://1.1.1.1:8443/x?y=z",
		"http://[2606:4700:4700::1111]/",
		"HTTPS://93.184.216.34/",
	} {
		if err := g.CheckURL(context.Background(), u); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", u, err)
		}
	}
}

func TestCheckURLUnresolvableHostIsRefused(t *testing.T) {
	t.Parallel()
	g := &Guard{Resolver: noDNS()}
	err := g.CheckURL(context.Background(), "https://hooks.example.com/x")
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "cannot resolve") {
		t.Fatalf("err = %v, want a refusal saying it cannot resolve", err)
	}
}

func TestAllowPrivate(t *testing.T) {
	t.Parallel()
	g := &Guard{AllowPrivate: true}
	for _, u := range []string{"http://127.0.0.1:9/", "http://10.0.0.1/", "http://[::1]/", "http://localhost/"} {
		if err := g.CheckURL(context.Background(), u); err != nil {
			t.Errorf("AllowPrivate: CheckURL(%q) = %v, want nil", u, err)
		}
	}
	// The URL must still be http(s), and unreadable numeric forms stay refused.
	for _, u := range []string{"ftp://127.0.0.1/", "http://0x7f.1/", "http://2130706433/"} {
		if err := g.CheckURL(context.Background(), u); err == nil {
			t.Errorf("AllowPrivate: CheckURL(%q) = nil, want a refusal", u)
		}
	}
}

func TestBlockedReason(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"127.0.0.1":                   "loopback",
		"10.1.1.1":                    "private",
		"169.254.1.1":                 "link-local",
		"0.1.2.3":                     "this-network",
		"::":                          "unspecified",
		"2001:db8::1":                 "documentation",
		"2001:0:4136:e378::f7f7:f7f7": "",                         // Teredo whose client is 8.8.8.8
		"2001::80ff:fffe":             "loopback (embedded IPv4)", // Teredo client 127.0.0.1
		"8.8.4.4":                     "",
		"2a00:1450:4001::1":           "",
	}
	for s, want := range cases {
		if got := blockedReason(netip.MustParseAddr(s)); got != want {
			t.Errorf("blockedReason(%s) = %q, want %q", s, got, want)
		}
	}
}

// The dialer is what enforces the guard at delivery: a client using it cannot reach a
// loopback server, by address or by name, while one allowing private targets can.
func TestDialContextEnforcesTheGuard(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	strict := NewClient(&Guard{}, 2*time.Second)
	t.Cleanup(strict.CloseIdleConnections)
	for _, u := range []string{srv.URL, "http://localhost:" + port + "/"} {
		resp, err := strict.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET %s with the strict guard succeeded", u)
		}
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("GET %s: err = %v, want ErrRefused", u, err)
		}
	}

	open := NewClient(&Guard{AllowPrivate: true}, 2*time.Second)
	t.Cleanup(open.CloseIdleConnections)
	resp, err := open.Get("http://localhost:" + port + "/")
	if err != nil {
		t.Fatalf("GET with AllowPrivate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d", resp.StatusCode)
	}
}

// Redirects are not followed: a public receiver could otherwise bounce the request inward.
func TestClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var inner bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { inner = true }))
	t.Cleanup(target.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	c := NewClient(&Guard{AllowPrivate: true}, 2*time.Second)
	t.Cleanup(c.CloseIdleConnections)
	resp, err := c.Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || inner {
		t.Fatalf("status = %d, redirect followed = %v; want 307 and not followed", resp.StatusCode, inner)
	}
}
