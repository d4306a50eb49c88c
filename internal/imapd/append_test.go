package imapd_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv"
)

// appendUIDValidity returns INBOX's UIDVALIDITY as text.
func appendUIDValidity(t *testing.T, c *mboxConn, mailbox string) string {
	t.Helper()
	return strings.TrimPrefix(mboxStatusItems(t, c, mailbox, "UIDVALIDITY"), "UIDVALIDITY ")
}

func TestAppendSyncLiteral(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	uv := appendUIDValidity(t, c, "INBOX")
	body := mboxMsg(1)
	tag := c.Tag()
	c.Send(fmt.Sprintf("%s APPEND INBOX (\\Flagged $Work) \"14-Jul-2020 10:11:12 +0200\" {%d}\r\n", tag, len(body)))
	if l := c.Response(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("want continuation, got %q", l)
	}
	c.Send(body + "\r\n")
	_, tagged := c.Until(tag)
	if tagged != "OK [APPENDUID "+uv+" 1] APPEND completed" {
		t.Fatalf("APPEND: %q", tagged)
	}
	msgs := env.Inbox(t, addr)
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if string(m.Body) != body || m.Size != int64(len(body)) {
		t.Errorf("stored %q (size %d)", m.Body, m.Size)
	}
	if m.Flags != store.FlagFlagged || len(m.Keywords) != 1 || m.Keywords[0] != "$Work" {
		t.Errorf("flags %v %q", m.Flags, m.Keywords)
	}
	want := time.Date(2020, 7, 14, 10, 11, 12, 0, time.FixedZone("", 2*3600))
	if !m.InternalDate.Equal(want) {
		t.Errorf("internal date %v, want %v", m.InternalDate, want)
	}
	if _, off := m.InternalDate.Zone(); off != 2*3600 {
		t.Errorf("internal date zone offset %d", off)
	}
}

func TestAppendNonSyncAndLineEnds(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	uv := appendUIDValidity(t, c, "Drafts")
	// Bare LF line ends become CRLF; the stored size is the CRLF size.
	raw := "Subject: lf\n\nline one\nline two\r\nend\n"
	_, tagged := c.Cmd(fmt.Sprintf("APPEND Drafts {%d+}\r\n%s", len(raw), raw))
	if tagged != "OK [APPENDUID "+uv+" 1] APPEND completed" {
		t.Fatalf("APPEND: %q", tagged)
	}
	m := env.Mailbox(t, addr, "Drafts")[0]
	crlf := "Subject: lf\r\n\r\nline one\r\nline two\r\nend\r\n"
	if string(m.Body) != crlf || m.Size != int64(len(crlf)) {
		t.Errorf("stored %q size %d, want %q", m.Body, m.Size, crlf)
	}
	// No date: the internal date is now.
	if d := time.Since(m.InternalDate); d < 0 || d > time.Minute {
		t.Errorf("internal date %v", m.InternalDate)
	}
	bads := []string{
		`APPEND Drafts "31-Feb-2020 10:00:00 +0000" {1+}` + "\r\nx",
		`APPEND Drafts (\Bogus) {1+}` + "\r\nx",
		`APPEND Drafts "text"`,
		`APPEND Drafts`,
		`APPEND Drafts {1+}` + "\r\nx extra",
	}
	for _, b := range bads {
		c.Expect(b, "BAD")
	}
	c.OK("NOOP")
	if n := len(env.Mailbox(t, addr, "Drafts")); n != 1 {
		t.Errorf("%d messages after refused APPENDs", n)
	}
}

func TestAppendRefusedBeforeContinuation(t *testing.T) {
	env, addr := mboxUser(t, func(o *testenv.Options) {
		o.Configure = func(cfg *config.Config) { cfg.Limits.MaxMessageSize = 1000 }
	})
	c := mboxLogin(t, env, addr)
	if caps := c.OK("CAPABILITY"); !strings.Contains(caps[0], " APPENDLIMIT=1000") {
		t.Errorf("capabilities %q", caps)
	}
	// Each refusal comes instead of the continuation; the client sends
	// no data and the session goes on.
	for _, tc := range []struct{ line, want string }{
		// RFC 9051 §6.3.12: missing mailbox, NO [TRYCREATE].
		{"APPEND nosuch {10}", "NO [TRYCREATE]"},
		// RFC 7889 §4: over APPENDLIMIT, NO [TOOBIG].
		{"APPEND INBOX {1001}", "NO [TOOBIG]"},
		{"APPEND INBOX (\\Seen) ~{5000}", "NO [TOOBIG]"},
	} {
		tag := c.Tag()
		c.Send(tag + " " + tc.line + "\r\n")
		l := c.Response()
		if !strings.HasPrefix(l, tag+" "+tc.want) {
			t.Errorf("%s: got %q, want %s", tc.line, l, tc.want)
		}
		c.OK("NOOP")
	}
	// A non-synchronizing literal's data is sent anyway and skipped.
	big := strings.Repeat("x", 1001)
	c.Expect("APPEND INBOX {1001+}\r\n"+big, "NO [TOOBIG]")
	c.Expect("APPEND nosuch {3+}\r\nabc", "NO [TRYCREATE]")
	c.OK("NOOP")
	// Exactly the limit is fine.
	c.appendMsg("INBOX", "", "Subject: x\r\n\r\n"+strings.Repeat("y", 1000-len("Subject: x\r\n\r\n")))
	if n := len(env.Inbox(t, addr)); n != 1 {
		t.Errorf("%d messages", n)
	}
}

func TestAppendMulti(t *testing.T) {
	env, addr := mboxUser(t, func(o *testenv.Options) {
		o.Configure = func(cfg *config.Config) { cfg.Limits.MaxMessageSize = 1000 }
	})
	c := mboxLogin(t, env, addr)
	uv := appendUIDValidity(t, c, "Sent")
	m1, m2, m3 := mboxMsg(1), mboxMsg(2), mboxMsg(3)
	_, tagged := c.Cmd(fmt.Sprintf("APPEND Sent {%d+}\r\n%s (\\Seen) {%d+}\r\n%s \"01-Jan-2024 00:00:00 +0000\" {%d+}\r\n%s",
		len(m1), m1, len(m2), m2, len(m3), m3))
	if tagged != "OK [APPENDUID "+uv+" 1:3] APPEND completed" {
		t.Fatalf("MULTIAPPEND: %q", tagged)
	}
	msgs := env.Mailbox(t, addr, "Sent")
	if len(msgs) != 3 || string(msgs[0].Body) != m1 || string(msgs[2].Body) != m3 || msgs[1].Flags != store.FlagSeen {
		t.Fatalf("stored %+v", msgs)
	}

	// RFC 3502 §3: if any message fails, none is kept.
	rollbacks := []struct{ name, cmd, want string }{
		{"too big", fmt.Sprintf("APPEND Sent {%d+}\r\n%s {2000+}\r\n%s", len(m1), m1, strings.Repeat("z", 2000)), "NO [TOOBIG]"},
		{"empty", fmt.Sprintf("APPEND Sent {%d+}\r\n%s {0+}\r\n", len(m1), m1), "NO [CANNOT]"},
		{"syntax", fmt.Sprintf("APPEND Sent {%d+}\r\n%s (\\Nope) {1+}\r\nx", len(m1), m1), "BAD"},
	}
	for _, tc := range rollbacks {
		if u, tagged := c.Cmd(tc.cmd); !strings.HasPrefix(tagged, tc.want) {
			t.Errorf("%s: %q %q, want %s", tc.name, u, tagged, tc.want)
		}
		c.OK("NOOP")
		if n := len(env.Mailbox(t, addr, "Sent")); n != 3 {
			t.Fatalf("%s: %d messages, want 3", tc.name, n)
		}
	}
	// A synchronizing literal refused midway: the client got the first
	// continuation, then NO instead of the second.
	tag := c.Tag()
	c.Send(fmt.Sprintf("%s APPEND Sent {%d}\r\n", tag, len(m1)))
	if l := c.Response(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("want continuation, got %q", l)
	}
	c.Send(m1 + " {1001}\r\n")
	if l := c.Response(); !strings.HasPrefix(l, tag+" NO [TOOBIG]") {
		t.Fatalf("second literal: %q", l)
	}
	c.OK("NOOP")
	if n := len(env.Mailbox(t, addr, "Sent")); n != 3 {
		t.Fatalf("%d messages, want 3", n)
	}
}

func TestAppendQuota(t *testing.T) {
	env, addr := mboxUser(t)
	ctx := context.Background()
	c := mboxLogin(t, env, addr)
	m1 := mboxMsg(1)
	c.appendMsg("INBOX", "", m1)
	// The limit applies at once, without a new login.
	if err := env.Users.SetQuota(ctx, addr, int64(len(m1))+100); err != nil {
		t.Fatal(err)
	}
	tag := c.Tag()
	c.Send(tag + " APPEND INBOX {101}\r\n")
	if l := c.Response(); !strings.HasPrefix(l, tag+" NO [OVERQUOTA]") {
		t.Fatalf("over quota: %q", l)
	}
	// Within the quota by the literal's size, over it once bare LFs
	// became CRLF.
	lf := "Subject: q\n\n" + strings.Repeat("a\n", 44)
	if len(lf) > 100 || len(strings.ReplaceAll(lf, "\n", "\r\n")) <= 100 {
		t.Fatalf("bad test message size %d", len(lf))
	}
	c.Expect(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(lf), lf), "NO [OVERQUOTA]")
	// MULTIAPPEND counts all messages together.
	half := "Subject: h\r\n\r\n" + strings.Repeat("b", 50-len("Subject: h\r\n\r\n"))
	c.Expect(fmt.Sprintf("APPEND INBOX {50+}\r\n%s {50+}\r\n%s {50+}\r\n%s", half, half, half), "NO [OVERQUOTA]")
	if n := len(env.Inbox(t, addr)); n != 1 {
		t.Fatalf("%d messages after refusals", n)
	}
	c.appendMsg("INBOX", "", strings.ReplaceAll(lf, "\n", "\r\n")[:100])
	if n := len(env.Inbox(t, addr)); n != 2 {
		t.Fatalf("%d messages", n)
	}
}

// RFC 3516 §4.4: literal8 carries binary data, stored exactly as sent
// (bare LF included: BINARY.SIZE is what the client sent, imaptest's
// append-binary). A plain literal with NUL is accepted too, as Dovecot
// does; FETCH never sends NUL outside literal8 (RFC 9051 §4.3): BODY[]
// has 0x80 in its place, BINARY[] the data itself.
func TestAppendBinary(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	hdr := "From: user@domain.org\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
	bin := hdr + "\x00-\xe4\n\r\n\n"
	_, tagged := c.Cmd(fmt.Sprintf("APPEND INBOX ~{%d+}\r\n%s", len(bin), bin))
	if !strings.HasPrefix(tagged, "OK [APPENDUID ") {
		t.Fatalf("literal8: %q", tagged)
	}
	if got := string(env.Inbox(t, addr)[0].Body); got != bin {
		t.Errorf("stored %q", got)
	}
	plain := hdr + "a\x00b\r\n"
	c.Expect(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(plain), plain), "OK [APPENDUID ")
	if msgs := env.Inbox(t, addr); len(msgs) != 2 || string(msgs[1].Body) != plain {
		t.Fatalf("stored %+v", msgs)
	}
	c.OK("SELECT INBOX")
	tests := []struct{ cmd, want string }{
		{"FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])", "* 1 FETCH (BINARY.SIZE[1] 7 BINARY[1] ~{7}\r\n\x00-\xe4\n\r\n\n)"},
		{"FETCH 1 BODY.PEEK[1]", "* 1 FETCH (BODY[1] {7}\r\n\x80-\xe4\n\r\n\n)"},
		{"FETCH 2 BODY.PEEK[TEXT]", "* 2 FETCH (BODY[TEXT] {5}\r\na\x80b\r\n)"},
		{"FETCH 2 RFC822.SIZE", fmt.Sprintf("* 2 FETCH (RFC822.SIZE %d)", len(plain))},
	}
	for _, tc := range tests {
		u := c.OK(tc.cmd)
		if len(u) != 1 || u[0] != tc.want {
			t.Errorf("%s: %q, want %q", tc.cmd, u, tc.want)
		}
	}
}

// RFC 6855 §4: the UTF8 data item, after ENABLE UTF8=ACCEPT only.
func TestAppendUTF8(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	msg := "Subject: Grüße\r\nFrom: jörg@example.org\r\n\r\nHallo\r\n"
	line := fmt.Sprintf("APPEND INBOX UTF8 (~{%d+}\r\n%s)", len(msg), msg)
	c.Expect(line, "BAD")
	c.OK("ENABLE UTF8=ACCEPT")
	c.Expect(line, "OK [APPENDUID ")
	c.Expect(fmt.Sprintf("APPEND INBOX UTF8 ({%d+}\r\n%s)", len(msg), msg), "BAD")
	if msgs := env.Inbox(t, addr); len(msgs) != 1 || string(msgs[0].Body) != msg {
		t.Errorf("stored %+v", msgs)
	}
}

// A message appended to a selected mailbox reaches this session and the
// others as EXISTS.
func TestAppendToSelected(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	other := mboxLogin(t, env, addr)
	c.OK("SELECT INBOX")
	other.OK("SELECT INBOX")
	body := mboxMsg(1)
	u, tagged := c.Cmd(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(body), body))
	if !strings.HasPrefix(tagged, "OK [APPENDUID ") || !mboxHas(u, "* 1 EXISTS") {
		t.Errorf("APPEND to selected: %q %q", u, tagged)
	}
	if u := other.OK("NOOP"); !mboxHas(u, "* 1 EXISTS") {
		t.Errorf("other session: %q", u)
	}
}

// TestAppendMultiMemory: a MULTIAPPEND keeps at most about 1 MiB of its
// bodies in memory (kept inline in the index); the rest are body files,
// and all are stored.
func TestAppendMultiMemory(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	body := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", 3000)    // ~192 KiB: a file anyway
	small := "Subject: small\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", 1500) // ~96 KiB
	var cmd strings.Builder
	cmd.WriteString("APPEND Sent")
	for i := 0; i < 14; i++ {
		m := small
		if i == 0 {
			m = body
		}
		fmt.Fprintf(&cmd, " {%d+}\r\n%s", len(m), m)
	}
	if _, tagged := c.Cmd(cmd.String()); !strings.HasPrefix(tagged, "OK [APPENDUID") {
		t.Fatalf("MULTIAPPEND: %q", tagged)
	}
	msgs := env.Mailbox(t, addr, "Sent")
	if len(msgs) != 14 || string(msgs[0].Body) != body || string(msgs[13].Body) != small {
		t.Fatalf("stored %d messages", len(msgs))
	}
	var inline int
	for _, m := range msgs {
		if store.IsInlineBody(m.Blob) {
			inline++
		}
	}
	// The first spills to a file; then bodies of 99,018 bytes stay in
	// memory while less than 1 MiB is: 11 of them.
	if want := (1<<20 + len(small) - 1) / len(small); inline != want {
		t.Errorf("%d bodies inline, want %d", inline, want)
	}
}
