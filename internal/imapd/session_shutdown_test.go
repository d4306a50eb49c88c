package imapd_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/imapd"
	"github.com/jodmai/jodmai/internal/testenv/wait"
)

// TestSessionShutdown: Shutdown tells every session BYE at its command
// boundary — at once for sessions waiting for a command or in IDLE — and
// returns when they have ended, well before its context expires. New
// connections are refused.
func TestSessionShutdown(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	pre := h.dial() // not logged in
	waiting := h.dial()
	waiting.login(sessAlice, sessPass)
	waiting.OK("SELECT INBOX")
	idle := h.dial()
	idle.login(sessAlice, sessPass)
	idle.OK("SELECT INBOX")
	idle.Send("t9 IDLE\r\n")
	if l := idle.Response(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	tlsConn := h.dial()
	tlsConn.StartTLS(h.clientTLS())

	done := make(chan error, 1)
	go func() { done <- h.shutdown(time.Minute) }()
	for _, c := range []*sessConn{pre, waiting, idle, tlsConn} {
		if l := c.Response(); l != "* BYE server shutting down" {
			t.Errorf("got %q, want BYE", l)
		}
		c.EOF()
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v (sessions did not end by themselves)", err)
	}
	if c, err := net.DialTimeout("tcp", h.addr, time.Second); err == nil {
		c.Close()
		t.Error("listener still accepting after Shutdown")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Serve(l); !errors.Is(err, imapd.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	if _, err := l.Accept(); err == nil {
		t.Error("Serve after Shutdown left its listener open")
	}
}

// TestSessionShutdownRace repeats Shutdown against sessions that have just
// finished a command, the moment a missed wake-up would leave them
// waiting for their whole timeout.
func TestSessionShutdownRace(t *testing.T) {
	for range 10 {
		h := newSessHarness(t, sessOptions{})
		c := h.dial()
		c.Send("t1 NOOP\r\n")
		done := make(chan error, 1)
		go func() { done <- h.shutdown(time.Minute) }()
		// The NOOP is normally answered (it arrived within the grace
		// period); either way the BYE must arrive intact, not be lost to
		// a reset.
		l := c.Response()
		if strings.HasPrefix(l, "t1 OK") {
			l = c.Response()
		}
		if l != "* BYE server shutting down" {
			t.Fatalf("got %q", l)
		}
		c.EOF()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestSessionAutologout: the preauth and authenticated timers, IDLE
// included, end sessions with BYE (RFC 9051 §5.4), and each command
// starts the authenticated timer afresh.
func TestSessionAutologout(t *testing.T) {
	const timeout = 1500 * time.Millisecond
	h := newSessHarness(t, sessOptions{preauth: 200 * time.Millisecond, timeout: timeout})
	h.addUser(sessAlice, sessPass)
	c := h.dial()
	if l := c.Response(); !strings.HasPrefix(l, "* BYE autologout") {
		t.Errorf("preauth: %q", l)
	}
	c.EOF()

	c = h.dial()
	c.login(sessAlice, sessPass)
	// Twice 2/3 of the timeout: more than the timeout in all, so the
	// session survives only if the NOOPs reset the timer.
	for range 2 {
		time.Sleep(timeout * 2 / 3)
		c.OK("NOOP")
	}
	if l := c.Response(); !strings.HasPrefix(l, "* BYE autologout") {
		t.Errorf("authenticated: %q", l)
	}
	c.EOF()

	c = h.dial()
	c.login(sessAlice, sessPass)
	c.OK("SELECT INBOX")
	c.Send("t1 IDLE\r\n")
	if l := c.Response(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	if l := c.Response(); !strings.HasPrefix(l, "* BYE autologout") {
		t.Errorf("IDLE: %q", l)
	}
	c.EOF()
}

// TestSessionShutdownBlocked: a session blocked in an auth or store call
// (here a LOGIN waiting out an hour-long throttle delay) ends on Shutdown
// instead of holding it up: Shutdown cancels the sessions' context.
func TestSessionShutdownBlocked(t *testing.T) {
	policy := auth.Policy{BaseDelay: time.Hour, MaxDelay: time.Hour, Window: time.Hour, IPLockoutAfter: 1 << 30, Lockout: time.Hour}
	logs := &logBuffer{}
	h := newSessHarness(t, sessOptions{policy: &policy, logs: logs})
	h.addUser(sessAlice, sessPass)
	c := h.dial()
	c.Send("t1 LOGIN " + sessAlice + " wrong\r\n")
	// Shut down only once the LOGIN waits out its delay: before that,
	// the session would end at its next read with a plain BYE.
	wait.For(t, time.Minute, "the LOGIN to wait out its throttle delay", func() bool { return logs.Contains("login failed") })
	done := make(chan error, 1)
	go func() { done <- h.shutdown(time.Minute) }()
	if l := c.Response(); !strings.HasPrefix(l, "t1 NO ") {
		t.Errorf("LOGIN: %q, want NO", l)
	}
	if l := c.Response(); l != "* BYE server shutting down" {
		t.Errorf("got %q, want BYE", l)
	}
	c.EOF()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v (the blocked session did not end by itself)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown still waiting for a session blocked in LOGIN")
	}
}

// TestServerConfigUntouched: serving leaves the exported configuration as
// it was set; zero values mean the defaults without being rewritten.
func TestServerConfigUntouched(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.dial()
	if s := h.srv; s.Timeout != 0 || s.PreauthTimeout != 0 || s.WriteTimeout != 0 || s.AppendLimit != 0 || s.MaxLineLength != 0 || s.Log == nil {
		t.Errorf("Serve rewrote the configuration: %+v", s)
	}
}
