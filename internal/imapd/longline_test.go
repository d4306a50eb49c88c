package imapd_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestLongCommandLine: the whole server (default config, max_line_length
// 8192) accepts IMAP command lines of up to 64 KiB, as Dovecot does:
// imaptest's id test sends ID with 30 values of 1,000 octets. A longer
// line is refused with BAD and the session goes on.
func TestLongCommandLine(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	var b strings.Builder
	b.WriteString("ID (")
	for i := range 30 {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, `"k%02d" "%s"`, i, strings.Repeat("1234567890", 100))
	}
	b.WriteString(")")
	if b.Len() < 30000 {
		t.Fatalf("line of %d bytes", b.Len())
	}
	c.OK(b.String())
	c.OK("NOOP")
	c.Expect(`ID ("name" "`+strings.Repeat("x", 70<<10)+`")`, "BAD")
	c.OK("NOOP")
}
