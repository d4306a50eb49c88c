package remote

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mjl-/adns"
	"github.com/mjl-/mox/dns"
	"github.com/mjl-/mox/smtpclient"

	"github.com/jodmai/jodmai/internal/testenv/wait"
)

func (s *raw) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// closeConns closes the server side of every connection, as a server
// timing out idle clients does.
func (s *raw) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

func count(cmds []string, verb string) int {
	n := 0
	for _, c := range cmds {
		if strings.HasPrefix(strings.ToUpper(c), verb) {
			n++
		}
	}
	return n
}

func deliverOK(t *testing.T, c *Client, m *Message) {
	t.Helper()
	for _, r := range deliver(t, c, m) {
		if !r.Delivered {
			t.Fatalf("not delivered: %+v", r)
		}
	}
}

// TestReuseConnection: two messages to one server go over one connection,
// the second after an RSET; no QUIT until the idle timeout.
func TestReuseConnection(t *testing.T) {
	srv := startRaw(t, "PIPELINING", "8BITMIME")
	c := rawClient(t, srv.port())
	defer c.CloseIdle()
	deliverOK(t, c, msgTo("bob@b.test"))
	deliverOK(t, c, msgTo("carol@b.test", "dan@b.test"))
	if n := srv.connCount(); n != 1 {
		t.Errorf("%d connections for two messages, want 1", n)
	}
	cmds := srv.commands()
	// Two EHLOs at the start: mox's client and ours (for the extensions).
	if count(cmds, "EHLO") != 2 || count(cmds, "RSET") != 1 || count(cmds, "MAIL") != 2 || count(cmds, "QUIT") != 0 {
		t.Errorf("commands %q: want the two EHLOs of one session, one RSET, two MAIL, no QUIT", cmds)
	}
	if n := len(srv.messages()); n != 2 {
		t.Errorf("server got %d messages, want 2", n)
	}
	c.CloseIdle()
	wait.For(t, 10*time.Second, "QUIT after CloseIdle", func() bool { return count(srv.commands(), "QUIT") == 1 })
}

// TestReuseBrokenParked: a parked connection the server has closed is
// discarded, and the message goes over a new one.
func TestReuseBrokenParked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(*raw)
		reply  func(cmd string, txn, rcpt int) string
	}{
		{name: "closed", break_: (*raw).closeConns},
		{name: "421 to RSET", reply: func(cmd string, txn, rcpt int) string {
			if strings.HasPrefix(cmd, "RSET") {
				return "421 4.4.2 idle too long, closing"
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startRawWith(t, "127.0.0.1:0", func(s *raw) { s.reply = tc.reply }, "PIPELINING")
			c := rawClient(t, srv.port())
			defer c.CloseIdle()
			deliverOK(t, c, msgTo("bob@b.test"))
			if tc.break_ != nil {
				tc.break_(srv)
			}
			deliverOK(t, c, msgTo("carol@b.test"))
			if n := srv.connCount(); n != 2 {
				t.Errorf("%d connections, want 2 (the broken one discarded)", n)
			}
			if n := len(srv.messages()); n != 2 {
				t.Errorf("server got %d messages, want 2", n)
			}
		})
	}
}

// TestReuseIdleTimeout: a parked connection is quit after IdleTimeout; a
// negative IdleTimeout turns reuse off.
func TestReuseIdleTimeout(t *testing.T) {
	t.Run("expires", func(t *testing.T) {
		srv := startRaw(t, "PIPELINING")
		c := rawClient(t, srv.port())
		c.IdleTimeout = 50 * time.Millisecond
		deliverOK(t, c, msgTo("bob@b.test"))
		wait.For(t, 10*time.Second, "QUIT after the idle timeout", func() bool { return count(srv.commands(), "QUIT") == 1 })
		deliverOK(t, c, msgTo("carol@b.test"))
		if n := srv.connCount(); n != 2 {
			t.Errorf("%d connections, want 2", n)
		}
		c.CloseIdle()
	})
	t.Run("off", func(t *testing.T) {
		srv := startRaw(t, "PIPELINING")
		c := rawClient(t, srv.port())
		c.IdleTimeout = -1
		deliverOK(t, c, msgTo("bob@b.test"))
		deliverOK(t, c, msgTo("carol@b.test"))
		if n, q := srv.connCount(), count(srv.commands(), "QUIT"); n != 2 || q != 2 {
			t.Errorf("%d connections and %d QUITs, want 2 and 2", n, q)
		}
	})
}

// TestReuseAfterRejection: a transaction refused by the server leaves the
// connection usable; a 421 does not.
func TestReuseAfterRejection(t *testing.T) {
	closing := false // carol's message gets a 421 (connections are served one at a time here)
	srv := startRawWith(t, "127.0.0.1:0", func(s *raw) {
		s.reply = func(cmd string, txn, rcpt int) string {
			switch {
			case strings.HasPrefix(cmd, "RCPT TO:<nobody@"):
				return "550 5.1.1 no such user"
			case strings.HasPrefix(cmd, "RCPT TO:<carol@"):
				closing = true
			case cmd == "." && closing:
				closing = false
				return "421 4.3.0 shutting down"
			}
			return ""
		}
	}, "PIPELINING")
	c := rawClient(t, srv.port())
	defer c.CloseIdle()
	if r := deliver(t, c, msgTo("nobody@b.test")); !r[0].Permanent {
		t.Fatalf("first: %+v", r[0])
	}
	deliverOK(t, c, msgTo("bob@b.test"))
	if r := deliver(t, c, msgTo("carol@b.test")); r[0].Delivered || r[0].Code != 421 {
		t.Fatalf("third: %+v", r[0])
	}
	deliverOK(t, c, msgTo("dan@b.test"))
	if n := srv.connCount(); n != 2 {
		t.Errorf("%d connections, want 2 (a new one after the 421)", n)
	}
}

// TestPoolKey: sessions are kept apart by host, port and every part of the
// TLS policy.
func TestPoolKey(t *testing.T) {
	h := dns.IPDomain{Domain: dns.Domain{ASCII: "mx.b.test"}}
	names := []dns.Domain{{ASCII: "mx.b.test"}}
	recs := []adns.TLSA{{Usage: 3, Selector: 1, MatchType: 1, CertAssoc: []byte{1, 2}}}
	base := newPoolKey(h, 25, smtpclient.TLSOpportunistic, false, nil, names)
	if base != newPoolKey(h, 25, smtpclient.TLSOpportunistic, false, nil, names) {
		t.Fatal("equal keys differ")
	}
	for name, k := range map[string]poolKey{
		"host":  newPoolKey(dns.IPDomain{Domain: dns.Domain{ASCII: "mx2.b.test"}}, 25, smtpclient.TLSOpportunistic, false, nil, names),
		"port":  newPoolKey(h, 26, smtpclient.TLSOpportunistic, false, nil, names),
		"mode":  newPoolKey(h, 25, smtpclient.TLSRequiredStartTLS, false, nil, names),
		"skip":  newPoolKey(h, 25, smtpclient.TLSSkip, false, nil, names),
		"pkix":  newPoolKey(h, 25, smtpclient.TLSOpportunistic, true, nil, names),
		"dane":  newPoolKey(h, 25, smtpclient.TLSOpportunistic, false, recs, names),
		"names": newPoolKey(h, 25, smtpclient.TLSOpportunistic, false, nil, []dns.Domain{{ASCII: "other.b.test"}}),
	} {
		if k == base {
			t.Errorf("a different %s gives the same key", name)
		}
	}
}

// TestPoolBounds: the pool keeps at most maxPerHost per key and maxTotal
// in all.
func TestPoolBounds(t *testing.T) {
	var p pool
	defer p.closeAll()
	k1, k2 := poolKey{host: "a"}, poolKey{host: "b"}
	srv := startRaw(t)
	mk := func() *session {
		conn, err := dialRaw(srv)
		if err != nil {
			t.Fatal(err)
		}
		return newTestSession(conn)
	}
	var rejected []*session
	for i := range 3 {
		s := mk()
		if !p.put(k1, s, time.Minute, 2, 3) {
			rejected = append(rejected, s)
			if i != 2 {
				t.Errorf("put %d refused", i)
			}
		}
	}
	if len(rejected) != 1 {
		t.Errorf("%d refused, want 1 (per host 2)", len(rejected))
	}
	if !p.put(k2, mk(), time.Minute, 2, 3) {
		t.Error("put for another host refused")
	}
	if s := mk(); p.put(k2, s, time.Minute, 2, 3) {
		t.Error("put over the total accepted")
	} else {
		rejected = append(rejected, s)
	}
	for _, s := range rejected {
		s.conn.Close()
	}
	if p.get(k1) == nil || p.get(k1) == nil || p.get(k1) != nil {
		t.Error("want exactly two sessions for k1")
	}
	if p.total != 1 {
		t.Errorf("total %d, want 1", p.total)
	}
}

func dialRaw(s *raw) (net.Conn, error) { return net.Dial("tcp", s.ln.Addr().String()) }

func newTestSession(conn net.Conn) *session {
	return &session{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn), created: time.Now()}
}

// TestPipelinedDATAAborted: with PIPELINING, DATA goes with MAIL and RCPT;
// when every RCPT is refused and the server still says 354, the client
// sends an empty message (RFC 2920 §3.1), and the session is fit for the
// next message after an RSET.
func TestPipelinedDATAAborted(t *testing.T) {
	srv := startRawWith(t, "127.0.0.1:0", func(s *raw) {
		s.reply = func(cmd string, txn, rcpt int) string {
			if strings.HasPrefix(cmd, "RCPT TO:<nobody@") {
				return "550 5.1.1 no such user"
			}
			return ""
		}
	}, "PIPELINING")
	c := rawClient(t, srv.port())
	defer c.CloseIdle()
	if r := deliver(t, c, msgTo("nobody@b.test")); !r[0].Permanent || r[0].Code != 550 {
		t.Fatalf("refused recipient: %+v", r[0])
	}
	if msgs := srv.messages(); len(msgs) != 1 || len(msgs[0]) != 0 {
		t.Fatalf("server got %q, want one empty message (the aborted DATA)", msgs)
	}
	deliverOK(t, c, msgTo("bob@b.test"))
	if msgs := srv.messages(); len(msgs) != 2 || !strings.Contains(string(unstuff(msgs[1])), "Hello Bob.") {
		t.Errorf("server got %q", msgs)
	}
	cmds := srv.commands()
	want := []string{"MAIL", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA"}
	var got []string
	for _, c := range cmds {
		if v := strings.Fields(c)[0]; v != "EHLO" {
			got = append(got, v)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("commands %v, want %v", got, want)
	}
	if n := srv.connCount(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}
