package imapd_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/store"
)

// COMPRESS=DEFLATE (RFC 4978) over real connections.

func TestCompressSession(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	for i := range 3 {
		h.deliver(sessAlice, sessMessage(fmt.Sprintf("before %d", i)))
	}
	claim := h.dial() // takes \Recent (RFC 3501 §2.3.2) from c
	claim.login(sessAlice, sessPass)
	claim.OK("SELECT INBOX")
	c := h.dial()
	c.login(sessAlice, sessPass)
	c.Compress()

	u := c.OK("CAPABILITY")
	if capa := sessFind(u, "* CAPABILITY "); capa == "" || strings.Contains(capa, "COMPRESS=DEFLATE") {
		t.Errorf("CAPABILITY under compression: %q", u)
	}
	c.Expect("COMPRESS DEFLATE", "NO [COMPRESSIONACTIVE]")
	u = c.OK("SELECT INBOX")
	if sessFind(u, "* 3 EXISTS") == "" {
		t.Errorf("SELECT: %q", u)
	}

	// A synchronizing literal: the continuation must get through the
	// compressor before the server waits for the data.
	c.Send(`t100 ID ("name" {6}` + "\r\n")
	if l := c.Response(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("want continuation, got %q", l)
	}
	c.Send(`client)` + "\r\n")
	if _, r := c.Until("t100"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("ID with literal: %q", r)
	}

	// Many responses in one burst, then updates during IDLE.
	a := h.account(sessAlice)
	mb, msgs := sessMailbox(t, a, "INBOX")
	uids := []uint32{msgs[0].UID, msgs[1].UID, msgs[2].UID}
	if _, err := a.SetFlags(context.Background(), mb.ID, uids, store.FlagUpdate{Op: store.FlagsAdd, Flags: store.FlagFlagged}); err != nil {
		t.Fatal(err)
	}
	u = c.OK("NOOP")
	if len(u) != 3 || !sessHas(u, `FLAGS (\Flagged)`) {
		t.Errorf("NOOP after flag changes: %q", u)
	}
	c.Send("t200 IDLE\r\n")
	if l := c.Response(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	h.deliver(sessAlice, sessMessage("during idle"))
	if l := c.Response(); l != "* 4 EXISTS" {
		t.Fatalf("during IDLE: got %q, want * 4 EXISTS", l)
	}
	c.Send("DONE\r\n")
	if _, r := c.Until("t200"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("IDLE: %q", r)
	}
	u = c.OK("LOGOUT")
	if sessFind(u, "* BYE") == "" {
		t.Errorf("LOGOUT: %q", u)
	}
	c.EOF()
}

func TestCompressRefused(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	c := h.dial()
	c.Expect("COMPRESS DEFLATE", "BAD") // RFC 4978 §3: authenticated state
	c.login(sessAlice, sessPass)
	c.Expect("COMPRESS", "BAD")
	c.Expect("COMPRESS LZ4", "BAD")
	c.Expect("COMPRESS DEFLATE extra", "BAD")
	c.OK("NOOP")

	// Bytes after COMPRESS, sent before the reply, cannot be read either
	// way: BAD, BYE, close.
	c.Send("t1 COMPRESS DEFLATE\r\nt2 NOOP\r\n")
	if _, r := c.Until("t1"); !strings.HasPrefix(r, "BAD") {
		t.Fatalf("pipelined COMPRESS: %q", r)
	}
	c.EOF("* BYE ")
}

// TestCompressTLS: COMPRESS over implicit TLS, lower-case command.
func TestCompressTLS(t *testing.T) {
	h := newSessHarness(t, sessOptions{implicitTLS: true})
	h.addUser(sessAlice, sessPass)
	h.deliver(sessAlice, sessMessage("tls"))
	c := h.dialTLS()
	c.login(sessAlice, sessPass)
	c.OK("compress deflate")
	c.Deflate()
	u := c.OK("EXAMINE INBOX")
	if sessFind(u, "* 1 EXISTS") == "" {
		t.Errorf("EXAMINE: %q", u)
	}
}
