package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// ErrRefused is wrapped by every error the SSRF guard returns for a target it will not call.
var ErrRefused = errors.New("webhook target refused")

// Guard keeps webhooks away from the server's own network: it refuses private, loopback,
// link-local, multicast, unspecified and otherwise reserved addresses, numeric host forms
// that Go's parser does not read (0x7f.1, 2130706433, 0177.0.0.1, 127.1), every spelling of
// localhost, and hosts it cannot classify. It checks a URL at submit ([Guard.CheckURL]) and
// again when it connects ([Guard.DialContext]), so a DNS answer that changes in between
// cannot smuggle a private address in.
type Guard struct {
	// AllowPrivate turns the address checks off (--allow-private-webhooks); the URL must
	// still be http or https with a host.
	AllowPrivate bool
	// Resolver resolves host names (default net.DefaultResolver).
	Resolver *net.Resolver
	// ResolveTimeout bounds one resolution (default 5s).
	ResolveTimeout time.Duration
}

// CheckURL reports whether raw is a webhook URL the guard allows: http or https, a host,
// and (unless AllowPrivate) only public addresses behind that host. Refusals wrap
// [ErrRefused] and say why.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	host, port, err := splitURL(raw)
	if err != nil {
		return err
	}
	_, err = g.resolve(ctx, host, port)
	return err
}

// CheckURL checks raw with a default [Guard] (private targets refused).
func CheckURL(ctx context.Context, raw string) error {
	return (&Guard{}).CheckURL(ctx, raw)
}

func splitURL(raw string) (host, port string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("%w: not a URL: %v", ErrRefused, stripURL(err))
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		port = "80"
	case "https":
		port = "443"
	default:
		return "", "", fmt.Errorf("%w: scheme must be http or https", ErrRefused)
	}
	host = u.Hostname()
	if host == "" {
		return "", "", fmt.Errorf("%w: the URL has no host", ErrRefused)
	}
	if p := u.Port(); p != "" {
		port = p
	}
	return host, port, nil
}

// stripURL drops the URL from a *url.Error so messages do not echo it twice.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// resolve returns the addresses of host after checking them all.
func (g *Guard) resolve(ctx context.Context, host, port string) ([]netip.Addr, error) {
	if addr, ok, err := classifyLiteral(host); err != nil {
		if g.AllowPrivate && addr.IsValid() {
			return []netip.Addr{addr}, nil
		}
		return nil, err
	} else if ok {
		return []netip.Addr{addr}, nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if !g.AllowPrivate {
		if name == "localhost" || strings.HasSuffix(name, ".localhost") {
			return nil, fmt.Errorf("%w: %s is a loopback name", ErrRefused, host)
		}
		if !validHostName(name) {
			return nil, fmt.Errorf("%w: cannot classify host %q", ErrRefused, host)
		}
	}
	r := g.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	timeout := g.ResolveTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addrs, err := r.LookupNetIP(rctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot resolve %s: %v", ErrRefused, host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: %s has no addresses", ErrRefused, host)
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		if !g.AllowPrivate {
			if reason := blockedReason(a); reason != "" {
				return nil, fmt.Errorf("%w: %s resolves to %s, a %s address", ErrRefused, host, a, reason)
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// classifyLiteral handles hosts that are IP literals or look numeric. ok reports a literal
// the guard allows; err refuses a blocked literal (addr then holds it, for AllowPrivate) or
// a numeric form Go's parser does not read.
func classifyLiteral(host string) (addr netip.Addr, ok bool, err error) {
	if a, perr := netip.ParseAddr(host); perr == nil {
		if a.Zone() != "" {
			return a, false, fmt.Errorf("%w: address %s has a zone", ErrRefused, host)
		}
		a = a.Unmap()
		if reason := blockedReason(a); reason != "" {
			return a, false, fmt.Errorf("%w: %s is a %s address", ErrRefused, host, reason)
		}
		return a, true, nil
	}
	// A host whose last label starts with a digit (or 0x) is meant as a number: inet_aton
	// forms like 127.1, 0x7f.1, 0177.0.0.1 or 2130706433 reach the loopback in other
	// parsers. No top-level domain starts with a digit, so refuse every such form.
	name := strings.TrimSuffix(host, ".")
	last := name[strings.LastIndexByte(name, '.')+1:]
	if last != "" && last[0] >= '0' && last[0] <= '9' {
		return netip.Addr{}, false, fmt.Errorf("%w: numeric host %q is not a plain IP address", ErrRefused, host)
	}
	if strings.Contains(host, ":") {
		return netip.Addr{}, false, fmt.Errorf("%w: cannot classify host %q", ErrRefused, host)
	}
	return netip.Addr{}, false, nil
}

// validHostName reports whether name is a DNS name of letters, digits, hyphens and
// underscores in dot-separated labels.
func validHostName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Special-purpose ranges that are neither private nor loopback in netip's terms but must
// not be reached either (RFC 6890 and friends).
var blockedPrefixes = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("100::/64"), "discard"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
}

var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4  = netip.MustParsePrefix("2002::/16")
	teredo  = netip.MustParsePrefix("2001::/32")
	compat4 = netip.MustParsePrefix("::/96")
)

// blockedReason names why a is not a public unicast address, or returns "".
func blockedReason(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case !a.IsValid():
		return "invalid"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, b := range blockedPrefixes {
		if b.prefix.Contains(a) {
			return b.reason
		}
	}
	if a.Is6() {
		// IPv6 forms that embed an IPv4 address are judged by that address.
		b := a.As16()
		var v4 netip.Addr
		switch {
		case nat64.Contains(a), compat4.Contains(a):
			v4 = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		case sixTo4.Contains(a):
			v4 = netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
		case teredo.Contains(a):
			v4 = netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		}
		if v4.IsValid() {
			if r := blockedReason(v4); r != "" {
				return r + " (embedded IPv4)"
			}
		}
	}
	return ""
}

// DialContext resolves addr, checks every address it resolves to, and connects to a
// checked one, so the connection goes exactly where the check said. Use it as an
// http.Transport's DialContext.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	addrs, err := g.resolve(ctx, host, port)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	var firstErr error
	for _, a := range addrs {
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}
