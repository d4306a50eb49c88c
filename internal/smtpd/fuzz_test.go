package smtpd_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/smtpd"
)

// panicCatcher is a slog handler that notices go-smtp's report of a
// recovered panic (go-smtp recovers panics in command handlers, so a panic
// in this package would otherwise only show as a 421).
type panicCatcher struct {
	slog.Handler
	panics *atomic.Int64
}

func (p panicCatcher) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		p.panics.Add(1)
	}
	return p.Handler.Handle(ctx, r)
}

func (p panicCatcher) WithAttrs(a []slog.Attr) slog.Handler {
	return panicCatcher{p.Handler.WithAttrs(a), p.panics}
}

func (p panicCatcher) WithGroup(g string) slog.Handler {
	return panicCatcher{p.Handler.WithGroup(g), p.panics}
}

// FuzzSession drives real sessions (MX and submission) over loopback
// against a real on-disk store with arbitrary client bytes. Every line the
// server sends must be a reply line with a 3-digit code, the server must
// close the connection once the client has sent everything, and nothing may
// panic.
func FuzzSession(f *testing.F) {
	env := newEnv(f)
	var panics atomic.Int64
	log := slog.New(panicCatcher{testLogger(f).Handler(), &panics})
	edit := func(s *smtpd.Server) {
		s.Timeout = 3 * time.Second
		s.MaxMessageSize = 64 << 10
		s.MaxRecipients = 5
		s.MaxLineLength = 1000
		s.Log = log
	}
	mx := newHarness(f, env, smtpd.ModeMX, edit)
	sub := newHarness(f, env, smtpd.ModeSubmission, edit)

	plain := base64.StdEncoding.EncodeToString([]byte("\x00" + alice + "\x00" + alicePass))
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, seed := range []struct {
		submission bool
		s          string
	}{
		{false, "EHLO client.example.net\r\nMAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n"},
		{false, "HELO x\r\nMAIL FROM:<> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<a@elsewhere.example>\r\nDATA\r\nx\n.\r\n"},
		{false, "EHLO a\r\nMAIL FROM:<x@remote.example> SMTPUTF8\r\nRCPT TO:<carol@example.org>\r\nBDAT 5\r\nhelloBDAT 0 LAST\r\nRSET\r\nNOOP\r\nVRFY alice\r\nHELP\r\nQUIT\r\n"},
		{false, "EHLO a\r\nMAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.org>\r\nBDAT 100 LAST\r\nshort"},
		{false, "EHLO a\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05hello"},
		{false, "\x00\xff garbage\r\nEHLO \x00\r\nMAIL FROM:<\r@x>\r\nRCPT\r\nDATA\r\n\n\n\r\n"},
		{true, "EHLO ua\r\nAUTH PLAIN " + plain + "\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<friend@remote.example>\r\nDATA\r\nSubject: s\r\n\r\nt\r\n.\r\nQUIT\r\n"},
		{true, "EHLO ua\r\nAUTH LOGIN\r\n" + b64(alice) + "\r\n" + b64(alicePass) + "\r\nMAIL FROM:<bob@example.org>\r\nMAIL FROM:<alice+x@example.org>\r\n"},
		{true, "EHLO ua\r\nMAIL FROM:<alice@example.org>\r\nAUTH PLAIN\r\n*\r\nAUTH LOGIN " + b64(alice) + "\r\nwrong\r\nAUTH CRAM-MD5\r\n"},
		{true, "EHLO ua\r\nAUTH PLAIN " + plain + "\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: no from\r\nnot a field\r\n.\r\nBDAT 9 LAST\r\nSubject: xAUTH PLAIN =\r\n"},
		{false, "EHLO a\r\nNOOP " + strings.Repeat("x", 3000) + "\r\nRSET x\r\nVRFY\r\nMAIL FROM:<x@remote.example> BODY=BINARYMIME FOO=1\r\n"},
	} {
		f.Add(seed.submission, []byte(seed.s))
	}

	f.Fuzz(func(t *testing.T, submission bool, input []byte) {
		addr := mx.addr
		if submission {
			addr = sub.addr
		}
		before := panics.Load()
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(20 * time.Second))
		go func() {
			nc.Write(input)
			nc.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(nc)
		if err != nil {
			t.Fatalf("reading replies: %v (server did not close?); got %q", err, out)
		}
		for i, line := range bytes.Split(out, []byte("\r\n")) {
			if i == len(bytes.Split(out, []byte("\r\n")))-1 {
				if len(line) != 0 {
					t.Fatalf("unterminated reply line %q", line)
				}
				break
			}
			if !isReplyLine(line) {
				t.Fatalf("not a reply line: %q\nall output: %q", line, out)
			}
			if bytes.HasPrefix(line, []byte("220 2.0.0 ")) {
				break // STARTTLS: what follows is TLS
			}
			if bytes.HasPrefix(line, []byte("421 4.0.0")) {
				t.Fatalf("internal server error: %q", line)
			}
		}
		if panics.Load() != before {
			t.Fatalf("a session panicked")
		}
	})
}

func isReplyLine(l []byte) bool {
	if len(l) < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' || l[2] < '0' || l[2] > '9' {
		return false
	}
	return len(l) == 3 || l[3] == ' ' || l[3] == '-'
}
