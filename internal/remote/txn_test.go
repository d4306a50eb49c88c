package remote

import (
	"bufio"
	"bytes"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/jodmai/jodmai/internal/testenv/dnstest"
)

// raw is a scripted SMTP server without TLS, offering exactly the
// extensions a test gives, so the client's DATA path, pipelining choices
// and reply handling can be checked on the wire.
type raw struct {
	ln       net.Listener
	caps     []string
	greeting string // instead of "220 ..."; the server then hangs up
	// reply returns the reply to a command ("." is the end of data, txn
	// counts MAIL commands from 1, rcpt counts RCPTs in the
	// transaction); "" means the default.
	reply func(cmd string, txn, rcpt int) string

	mu    sync.Mutex
	cmds  []string
	wire  [][]byte // DATA as sent, dot-stuffed, without the final "."
	wg    sync.WaitGroup
	conns []net.Conn
}

func startRaw(t *testing.T, caps ...string) *raw {
	return startRawWith(t, "127.0.0.1:0", nil, caps...)
}

// startRawWith starts a raw server on addr, after setup changed it.
func startRawWith(t *testing.T, addr string, setup func(*raw), caps ...string) *raw {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &raw{ln: ln, caps: caps}
	if setup != nil {
		setup(s)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go s.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *raw) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *raw) messages() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.wire...)
}

func (s *raw) commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.cmds...)
}

func (s *raw) serve(c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	br := bufio.NewReader(c)
	w := func(l string) { c.Write([]byte(l + "\r\n")) }
	if s.greeting != "" {
		w(s.greeting)
		return
	}
	w("220 raw.b.test ESMTP")
	txn, rcpt := 0, 0
	for i := 0; i < 1000; i++ {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		s.mu.Lock()
		s.cmds = append(s.cmds, line)
		s.mu.Unlock()
		if verb == "MAIL" {
			txn++
			rcpt = 0
		}
		if verb == "RCPT" {
			rcpt++
		}
		if s.reply != nil && verb != "EHLO" && verb != "QUIT" {
			if r := s.reply(line, txn, rcpt); r != "" {
				w(r)
				continue
			}
		}
		switch verb {
		case "EHLO":
			lines := append([]string{"raw.b.test"}, s.caps...)
			for j, l := range lines {
				sep := "-"
				if j == len(lines)-1 {
					sep = " "
				}
				w("250" + sep + l)
			}
		case "DATA":
			w("354 go ahead")
			var data []byte
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data = append(data, l...)
			}
			s.mu.Lock()
			s.wire = append(s.wire, data)
			s.mu.Unlock()
			r := "250 2.0.0 queued as 17"
			if s.reply != nil {
				if x := s.reply(".", txn, rcpt); x != "" {
					r = x
				}
			}
			w(r)
		case "QUIT":
			w("221 2.0.0 bye")
			return
		default:
			w("250 2.0.0 ok")
		}
	}
}

func rawClient(t *testing.T, port int) *Client {
	d := dnstest.Start(t)
	d.SetMX("b.test", dnstest.MX{Pref: 10, Host: "raw.b.test"})
	d.SetA("raw.b.test", "127.0.0.1")
	c, _ := newClient(t, d.Addr(), port)
	return c
}

func unstuff(wire []byte) []byte {
	var out []byte
	for _, l := range bytes.SplitAfter(wire, []byte("\n")) {
		out = append(out, bytes.TrimPrefix(l, []byte("."))...)
	}
	return out
}

func TestDATADotStuffing(t *testing.T) {
	s := startRaw(t, "8BITMIME", "ENHANCEDSTATUSCODES")
	c := rawClient(t, s.port())
	body := "Subject: dots\r\n\r\n.one\r\n..two\r\nmiddle . dot\r\n.\r\nend"
	m := msgTo("bob@b.test")
	m.Body, m.Size = strings.NewReader(body), int64(len(body))
	r := deliver(t, c, m)[0]
	if !r.Delivered || r.Text != "250 2.0.0 queued as 17" || r.DSN {
		t.Fatalf("got %+v", r)
	}
	msgs := s.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	wire := string(msgs[0])
	if !strings.Contains(wire, "\r\n..one\r\n...two\r\n") || !strings.Contains(wire, "\r\n..\r\nend\r\n") {
		t.Fatalf("not dot-stuffed: %q", wire)
	}
	// The message without final CRLF gets one before the ".".
	if got, want := string(unstuff(msgs[0])), testHeader+body+"\r\n"; got != want {
		t.Fatalf("unstuffed %q, want %q", got, want)
	}
	for _, cmd := range s.commands() {
		if strings.HasPrefix(cmd, "MAIL") && cmd != "MAIL FROM:<alice@a.test>" {
			t.Fatalf("MAIL with parameters the server did not offer: %q", cmd)
		}
	}
}

func TestTransactionReplies(t *testing.T) {
	tests := []struct {
		name  string
		caps  []string
		reply func(cmd string, txn, rcpt int) string
		rcpts int
		// want per recipient: "D" delivered, else the code
		want  []string
		mails int
	}{
		{"rcptmax", []string{"PIPELINING", "LIMITS RCPTMAX=2"}, nil, 5, []string{"D", "D", "D", "D", "D"}, 3},
		{"452 retried", []string{"PIPELINING"}, func(cmd string, txn, rcpt int) string {
			if strings.HasPrefix(cmd, "RCPT") && rcpt > 2 {
				return "452 4.5.3 too many recipients"
			}
			return ""
		}, 5, []string{"D", "D", "D", "D", "D"}, 3},
		{"mail refused", nil, func(cmd string, txn, rcpt int) string {
			if strings.HasPrefix(cmd, "MAIL") {
				return "550 5.7.1 you are blocked"
			}
			return ""
		}, 2, []string{"550", "550"}, 1},
		{"data refused", []string{"PIPELINING"}, func(cmd string, txn, rcpt int) string {
			if cmd == "RCPT TO:<r1@b.test>" {
				return "550 5.1.1 unknown"
			}
			if cmd == "." {
				return "554 5.7.1 looks like spam"
			}
			return ""
		}, 3, []string{"554", "550", "554"}, 1},
		{"data deferred", nil, func(cmd string, txn, rcpt int) string {
			if strings.HasPrefix(cmd, "DATA") {
				return "451 4.3.0 disk full"
			}
			return ""
		}, 2, []string{"451", "451"}, 1},
		{"size", []string{"SIZE 10"}, nil, 1, []string{"552"}, 0},
		{"8bit not offered", nil, nil, 1, []string{"554"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startRawWith(t, "127.0.0.1:0", func(s *raw) { s.reply = tc.reply }, tc.caps...)
			c := rawClient(t, s.port())
			var addrs []string
			for i := range tc.rcpts {
				addrs = append(addrs, "r"+string(rune('0'+i))+"@b.test")
			}
			m := msgTo(addrs...)
			m.Has8bit = tc.name == "8bit not offered"
			res := deliver(t, c, m)
			for i, r := range res {
				got := "D"
				if !r.Delivered {
					if r.Code/100 == 5 != r.Permanent && r.Code != 552 {
						t.Errorf("%s: permanent=%v for %d", r.Addr, r.Permanent, r.Code)
					}
					got = itoa(r.Code)
				}
				if got != tc.want[i] {
					t.Errorf("%s: got %s (%+v), want %s", r.Addr, got, r, tc.want[i])
				}
			}
			mails := 0
			for _, cmd := range s.commands() {
				if strings.HasPrefix(cmd, "MAIL") {
					mails++
				}
			}
			if mails != tc.mails {
				t.Errorf("%d MAIL commands, want %d: %q", mails, tc.mails, s.commands())
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestDSNParameters: NOTIFY, ORCPT, ENVID and RET reach a server that
// offers DSN, and are not sent to one that does not.
func TestDSNParameters(t *testing.T) {
	var mu sync.Mutex
	var mailOpts *smtp.MailOptions
	var rcptOpts []*smtp.RcptOptions
	var f *fake
	f = startFake(t, fakeOpts{setup: func(s *smtp.Server) {
		s.EnableDSN = true
		s.Backend = dsnBackend{func() *fake { return f }, func(m *smtp.MailOptions, r *smtp.RcptOptions) {
			mu.Lock()
			defer mu.Unlock()
			if m != nil {
				mailOpts = m
			}
			if r != nil {
				rcptOpts = append(rcptOpts, r)
			}
		}}
	}})
	d := dnstest.Start(t)
	d.SetMX("b.test", dnstest.MX{Pref: 10, Host: "mx.b.test"})
	d.SetA("mx.b.test", "127.0.0.1")
	c, _ := newClient(t, d.Addr(), f.port(t))
	m := msgTo("bob@b.test")
	m.EnvID = "env id=1"
	m.Ret = "HDRS"
	m.Recipients[0].Notify = "SUCCESS,FAILURE"
	m.Recipients[0].ORcpt = "rfc822;Bob+x@b.test"
	r := deliver(t, c, m)[0]
	if !r.Delivered || !r.DSN {
		t.Fatalf("got %+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if mailOpts == nil || mailOpts.EnvelopeID != "env id=1" || mailOpts.Return != smtp.DSNReturnHeaders {
		t.Fatalf("MAIL options %+v", mailOpts)
	}
	if len(rcptOpts) != 1 || len(rcptOpts[0].Notify) != 2 || rcptOpts[0].OriginalRecipient != "Bob+x@b.test" {
		t.Fatalf("RCPT options %+v", rcptOpts)
	}

	// Without DSN offered: plain commands.
	s := startRaw(t, "PIPELINING")
	c2 := rawClient(t, s.port())
	if r := deliver(t, c2, m)[0]; !r.Delivered || r.DSN {
		t.Fatalf("got %+v", r)
	}
	for _, cmd := range s.commands() {
		if strings.Contains(cmd, "NOTIFY") || strings.Contains(cmd, "ENVID") || strings.Contains(cmd, "RET=") || strings.Contains(cmd, "ORCPT") {
			t.Fatalf("DSN parameter sent to a server without DSN: %q", cmd)
		}
	}
}

type dsnBackend struct {
	f    func() *fake
	seen func(*smtp.MailOptions, *smtp.RcptOptions)
}

func (b dsnBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s, err := b.f().NewSession(c)
	return dsnSession{s.(*fakeSession), b.seen}, err
}

type dsnSession struct {
	*fakeSession
	seen func(*smtp.MailOptions, *smtp.RcptOptions)
}

func (s dsnSession) Mail(from string, opts *smtp.MailOptions) error {
	s.seen(opts, nil)
	return s.fakeSession.Mail(from, opts)
}

func (s dsnSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.seen(nil, opts)
	return s.fakeSession.Rcpt(to, opts)
}

func TestXtext(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abc", "abc"},
		{"a b", "a+20b"},
		{"a=b", "a+3Db"},
		{"a+2Bb", "a+2Bb"}, // already xtext
		{"a+b", "a+2Bb"},
		{"bøb", "b+C3+B8b"},
	}
	for _, tc := range tests {
		if got := xtext(tc.in); got != tc.want {
			t.Errorf("xtext(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		in       string
		code     int
		enhanced string
		lines    int
		bad      bool
	}{
		{"250 ok\r\n", 250, "", 1, false},
		{"250-mx\r\n250-PIPELINING\r\n250 SIZE 10\r\n", 250, "", 3, false},
		{"550 5.1.1 no such user\r\n", 550, "5.1.1", 1, false},
		{"450 5.1.1 class mismatch\r\n", 450, "", 1, false},
		{"250\r\n", 250, "", 1, false},
		{"250-a\r\n251 b\r\n", 0, "", 0, true},
		{"2x0 ok\r\n", 0, "", 0, true},
		{"25\r\n", 0, "", 0, true},
		{"250*ok\r\n", 0, "", 0, true},
		{"250-unterminated\r\n", 0, "", 0, true},
		{"250 " + strings.Repeat("x", maxReplyLine) + "\r\n", 0, "", 0, true},
	}
	for _, tc := range tests {
		rp, err := readReply(bufio.NewReader(strings.NewReader(tc.in)))
		if tc.bad {
			if err == nil {
				t.Errorf("%q: accepted", tc.in)
			}
			continue
		}
		if err != nil || rp.code != tc.code || rp.enhanced != tc.enhanced || len(rp.text) != tc.lines {
			t.Errorf("%q: got %+v, %v", tc.in, rp, err)
		}
	}
}

func FuzzReadReply(f *testing.F) {
	f.Add([]byte("250-mx\r\n250 SIZE 10\r\n"))
	f.Add([]byte("550 5.1.1 no\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rp, err := readReply(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			return
		}
		if rp.code < 200 || rp.code > 599 || len(rp.text) == 0 || !strings.HasPrefix(rp.line, itoa(rp.code)) {
			t.Fatalf("bad reply accepted: %+v", rp)
		}
	})
}

// TestRefusingHostTriesNext: a 554 greeting refuses the session, not the
// recipients: the next MX host delivers.
func TestRefusingHostTriesNext(t *testing.T) {
	first := startRawWith(t, "127.0.0.1:0", func(s *raw) { s.greeting = "554 5.7.1 no service for you" })
	second := startRawWith(t, net.JoinHostPort("127.0.0.3", strconv.Itoa(first.port())), nil)
	d := dnstest.Start(t)
	d.SetMX("b.test", dnstest.MX{Pref: 10, Host: "mx1.b.test"}, dnstest.MX{Pref: 20, Host: "mx2.b.test"})
	d.SetA("mx1.b.test", "127.0.0.1")
	d.SetA("mx2.b.test", "127.0.0.3")
	c, _ := newClient(t, d.Addr(), first.port())
	if r := deliver(t, c, msgTo("bob@b.test"))[0]; !r.Delivered || r.Host != "mx2.b.test" {
		t.Fatalf("got %+v", r)
	}
	if n := len(second.messages()); n != 1 {
		t.Fatalf("second host got %d messages", n)
	}
	// Alone, the refusing host's answer is the result: permanent.
	d.SetMX("b.test", dnstest.MX{Pref: 10, Host: "mx1.b.test"})
	if r := deliver(t, c, msgTo("bob@b.test"))[0]; r.Delivered || !r.Permanent || r.Code != 554 {
		t.Fatalf("got %+v", r)
	}
}
