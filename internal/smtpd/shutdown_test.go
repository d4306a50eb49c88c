package smtpd_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/smtpd"
)

func shutdown(t *testing.T, h *harness, d time.Duration) chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		done <- h.srv.Shutdown(ctx)
	}()
	return done
}

func TestShutdownIdle(t *testing.T) {
	env := newEnv(t)
	h := newHarness(t, env, smtpd.ModeSubmission, nil)
	hTLS := newHarness(t, env, smtpd.ModeSubmission, func(s *smtpd.Server) { s.ImplicitTLS = true })

	fresh := dial(t, h.addr) // greeted, no EHLO
	inTx := dial(t, h.addr)
	inTx.ehlo()
	inTx.authPlain(alice, alicePass, 235, "")
	inTx.Expect("MAIL FROM:<alice@example.org>", 250, "")
	starttls := dial(t, h.addr)
	starttls.ehlo()
	starttls.StartTLS(env.ClientTLS())
	starttls.ehlo()
	implicit := dialTLS(t, hTLS.addr, env.ClientTLS())
	implicit.ehlo()
	// Between STARTTLS and the next EHLO the session is not interrupted
	// (the handshake may still be running); it is told after its EHLO.
	tlsNoEHLO := dial(t, h.addr)
	tlsNoEHLO.ehlo()
	tlsNoEHLO.StartTLS(env.ClientTLS())

	done := shutdown(t, h, 10*time.Second)
	doneTLS := shutdown(t, hTLS, 10*time.Second)
	for name, c := range map[string]*client{"fresh": fresh, "in transaction": inTx, "starttls": starttls, "implicit tls": implicit} {
		code, msg := c.Reply()
		if code != 421 || !strings.HasPrefix(msg, "4.3.2 ") {
			t.Errorf("%s: got %d %q, want 421 4.3.2", name, code, msg)
		}
		c.EOF()
	}
	tlsNoEHLO.ehlo()
	tlsNoEHLO.WantReply(421, "4.3.2")
	tlsNoEHLO.EOF()
	for _, d := range []chan error{done, doneTLS} {
		if err := <-d; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}
	if err := <-h.serve; !errors.Is(err, smtpd.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	h.serve <- smtpd.ErrServerClosed // for the cleanup
	if c, err := net.DialTimeout("tcp", h.addr, time.Second); err == nil {
		c.Close()
		t.Errorf("still accepting after Shutdown")
	}
}

// TestShutdownFinishesData: a message being received is finished and
// answered 250 before the session is told 421.
func TestShutdownFinishesData(t *testing.T) {
	env := newEnv(t)
	h := newHarness(t, env, smtpd.ModeMX, nil)
	c := dial(t, h.addr)
	c.ehlo()
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Expect("DATA", 354, "")
	c.Send("Subject: in flight\r\n\r\nfirst half\r\n")

	chunked := dial(t, h.addr)
	chunked.ehlo()
	chunked.Expect("MAIL FROM:<x@remote.example>", 250, "")
	chunked.Expect("RCPT TO:<bob@example.org>", 250, "")
	chunked.Send("BDAT 20\r\nSubject: chunked\r\n\r\n")
	chunked.WantReply(250, "")
	// The 354 and the 250 came after the sessions went into their
	// messages (the replies leave when the session waits for input), so
	// both are now reading bodies. An idle session shows when Shutdown
	// has done its rounds: it is told 421 then.
	idle := dial(t, h.addr)
	idle.ehlo()

	done := shutdown(t, h, 10*time.Second)
	idle.WantReply(421, "4.3.2")
	idle.EOF()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) while a message was in flight", err)
	default:
	}
	c.Send("second half\r\n.\r\n")
	c.WantReply(250, "queued as")
	c.WantReply(421, "4.3.2")
	c.EOF()

	chunked.Send("BDAT 6 LAST\r\nbody\r\n")
	chunked.WantReply(250, "queued as")
	chunked.WantReply(421, "4.3.2")
	chunked.EOF()

	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, rest := oneMessage(t, env, alice); rest != "Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n" {
		t.Errorf("alice: %q", rest)
	}
	if _, rest := oneMessage(t, env, bob); rest != "Subject: chunked\r\n\r\nbody\r\n" {
		t.Errorf("bob: %q", rest)
	}
}

// TestShutdownDeadline: a client that never finishes is cut off when the
// context ends.
func TestShutdownDeadline(t *testing.T) {
	env := newEnv(t)
	h := newHarness(t, env, smtpd.ModeMX, nil)
	c := dial(t, h.addr)
	c.ehlo()
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Expect("DATA", 354, "")
	c.Send("Subject: never ends\r\n") // the 354 said the session reads the body
	err := <-shutdown(t, h, 300*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want deadline exceeded", err)
	}
	c.EOF()
	if n := len(inbox(t, env, alice)); n != 0 {
		t.Errorf("partial message delivered")
	}
}

// TestIdleTimeout: the idle limit applies between commands, each command
// starting it over, and to each read of a body.
func TestIdleTimeout(t *testing.T) {
	const timeout = 1500 * time.Millisecond
	env := newEnv(t)
	h := newHarness(t, env, smtpd.ModeMX, func(s *smtpd.Server) { s.Timeout = timeout })
	c := dial(t, h.addr)
	c.ehlo()
	// Two pauses of two thirds of the limit: together more than the limit,
	// so the second NOOP is answered only if the first reset the timer.
	for range 2 {
		time.Sleep(timeout * 2 / 3)
		c.Expect("NOOP", 250, "") // activity resets the timer
	}
	c.WantReply(421, "4.4.2")
	c.EOF()

	// A slow body is fine as long as each piece comes within the timeout
	// (RFC 5321 §4.5.3.2: the limit is per data block, not for the whole
	// message).
	c = dial(t, h.addr)
	c.ehlo()
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Expect("DATA", 354, "")
	c.Send("Subject: slow\r\n\r\n")
	for range 8 { // 2 s in all, more than the timeout
		time.Sleep(timeout / 6)
		c.Send("a line\r\n")
	}
	c.Send(".\r\n")
	c.WantReply(250, "")

	// A body that stalls is given up with 421 and the connection closed.
	c = dial(t, h.addr)
	c.ehlo()
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Expect("DATA", 354, "")
	c.Send("Subject: stalls\r\n\r\n")
	c.WantReply(421, "4.4.2")
	c.EOF()
	if n := len(inbox(t, env, alice)); n != 1 {
		t.Errorf("alice has %d messages, want 1", n)
	}
}
