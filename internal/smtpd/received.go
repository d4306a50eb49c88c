package smtpd

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"
)

// rdnsTimeout bounds the reverse lookup of a client's address.
const rdnsTimeout = 5 * time.Second

// rdnsLookup is a forward-confirmed reverse DNS lookup of the client,
// started at the first MAIL so it overlaps the transaction, read when the
// Received field is written.
type rdnsLookup struct {
	done chan struct{}
	name string // "" when none or not confirmed
}

// startRDNS starts the lookup once per session. Loopback clients are not
// looked up.
func (s *session) startRDNS() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rdns != nil {
		return
	}
	l := &rdnsLookup{done: make(chan struct{})}
	s.rdns = l
	ip, ok := remoteIP(s.remote)
	if !ok || ip.IsLoopback() || ip.IsUnspecified() {
		close(l.done)
		return
	}
	go func() {
		defer close(l.done)
		ctx, cancel := context.WithTimeout(s.ctx, rdnsTimeout)
		defer cancel()
		l.name = confirmedName(ctx, ip)
	}()
}

// clientName waits for the lookup and returns its result.
func (s *session) clientName() string {
	s.mu.Lock()
	l := s.rdns
	s.mu.Unlock()
	if l == nil {
		return ""
	}
	<-l.done
	return l.name
}

// confirmedName returns a PTR name of ip whose own addresses include ip
// (FCrDNS); a PTR record alone is whatever the address owner claims.
func confirmedName(ctx context.Context, ip netip.Addr) string {
	r := net.DefaultResolver
	names, err := r.LookupAddr(ctx, ip.String())
	if err != nil {
		return ""
	}
	for i, name := range names {
		if i == 3 {
			break
		}
		addrs, err := r.LookupNetIP(ctx, "ip", name)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if a.Unmap() == ip {
				return strings.TrimSuffix(name, ".")
			}
		}
	}
	return ""
}

func remoteIP(a net.Addr) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// addressLiteral formats ip as RFC 5321 §4.1.3 does: [192.0.2.1],
// [IPv6:2001:db8::1].
func addressLiteral(ip netip.Addr) string {
	if ip.Is6() {
		return "[IPv6:" + ip.WithZone("").String() + "]"
	}
	return "[" + ip.String() + "]"
}

// traceInfo is what the trace header fields say about a message.
type traceInfo struct {
	id       string
	from     string // reverse-path, "" for <>
	helo     string
	rdns     string
	remote   net.Addr
	hostname string
	rcpts    []string
	tls      *tls.ConnectionState
	authed   bool
	utf8     bool
	date     time.Time
}

// traceHeader returns the Return-Path (RFC 5321 §4.4, written at final
// delivery) and Received field, CRLF-terminated:
//
//	Received: from <helo> (<confirmed rDNS> [<ip>])
//		by <hostname> with ESMTPSA id <id>
//		for <rcpt>
//		tls <cipher suite> (TLS 1.3); <date>
//
// "with" is from RFC 3848 (and RFC 6531 §4.3 for SMTPUTF8): S is TLS, A is
// authenticated. "tls" is RFC 8314 §7.4's clause. "for" only with a single
// recipient, so Bcc recipients stay hidden from each other. The login name
// is not written (as Postfix's default): the A says the client
// authenticated, and the log line names the account.
func traceHeader(t traceInfo) string {
	var b strings.Builder
	b.WriteString("Return-Path: <")
	b.WriteString(formatPath(t.from))
	b.WriteString(">\r\n")

	b.WriteString("Received: from ")
	b.WriteString(sanitizeHelo(t.helo))
	b.WriteString(" (")
	if ip, ok := remoteIP(t.remote); ok {
		if t.rdns != "" {
			b.WriteString(t.rdns)
			b.WriteString(" ")
		}
		b.WriteString(addressLiteral(ip))
	} else {
		b.WriteString("unknown")
	}
	b.WriteString(")\r\n\tby ")
	b.WriteString(t.hostname)
	b.WriteString(" with ")
	b.WriteString(withProtocol(t.utf8, t.tls != nil, t.authed))
	b.WriteString(" id ")
	b.WriteString(t.id)
	if len(t.rcpts) == 1 {
		b.WriteString("\r\n\tfor <")
		b.WriteString(formatPath(t.rcpts[0]))
		b.WriteString(">")
	}
	if t.tls != nil {
		b.WriteString("\r\n\ttls ")
		b.WriteString(tls.CipherSuiteName(t.tls.CipherSuite))
		b.WriteString(" (")
		b.WriteString(tls.VersionName(t.tls.Version))
		b.WriteString(")")
	}
	b.WriteString(";\r\n\t")
	b.WriteString(t.date.Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return b.String()
}

func withProtocol(utf8, tls, authed bool) string {
	p := "ESMTP"
	if utf8 {
		p = "UTF8SMTP"
	}
	if tls {
		p += "S"
	}
	if authed {
		p += "A"
	}
	return p
}

// sanitizeHelo keeps a client's EHLO name from breaking the field's syntax:
// characters that are not allowed in a domain or address literal (and
// parentheses, which would open a comment) become '_'.
func sanitizeHelo(h string) string {
	if h == "" {
		return "unknown"
	}
	if len(h) > 255 {
		h = h[:255]
	}
	h = strings.ToValidUTF8(h, "_")
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '.', r == '-', r == ':', r == '[', r == ']', r == '_':
			return r
		case r > 0x7f:
			return r
		}
		return '_'
	}, h)
}

// formatPath writes an address for a header field, quoting the local part
// when it is not a dot-atom (parsePath hands it over unquoted).
func formatPath(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return addr
	}
	local, domain := addr[:i], addr[i+1:]
	if isDotAtom(local) {
		return addr
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range local {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteString(`"@`)
	b.WriteString(domain)
	return b.String()
}

// isDotAtom reports whether s is an RFC 5322 dot-atom-text (with RFC 6532
// UTF-8).
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r > 0x7f || r == '.' {
			continue
		}
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)) {
			return false
		}
	}
	return true
}
