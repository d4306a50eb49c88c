package imapd_test

import (
	"context"
	"testing"
)

func TestQuotaCommands(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	c.expect("SETQUOTA \"\" (STORAGE 100)", "NO [NOPERM]")
	c.expect("SETQUOTA \"\" ({7+}\r\nSTORAGE 100)", "NO [NOPERM]")
	// No limit: no quota root (RFC 9208 quota-list needs a resource).
	mboxSame(t, "unlimited GETQUOTAROOT", c.ok("GETQUOTAROOT INBOX"), []string{"* QUOTAROOT INBOX"})
	c.expect(`GETQUOTA ""`, "NO [NONEXISTENT]")

	m := mboxMsg(1)
	for range 3 {
		c.appendMsg("Archive", `(\Deleted)`, m)
	}
	if err := env.Users.SetQuota(context.Background(), addr, 10<<20); err != nil {
		t.Fatal(err)
	}
	used := mboxItoa((3*len(m) + 1023) / 1024)
	mboxSame(t, "GETQUOTAROOT", c.ok("GETQUOTAROOT Archive"), []string{
		`* QUOTAROOT Archive ""`,
		`* QUOTA "" (STORAGE ` + used + ` 10240)`,
	})
	mboxSame(t, "GETQUOTA", c.ok(`GETQUOTA ""`), []string{`* QUOTA "" (STORAGE ` + used + ` 10240)`})
	c.expect(`GETQUOTA "other"`, "NO [NONEXISTENT]")
	c.expect("GETQUOTAROOT nosuch", "NO [NONEXISTENT]")
	c.expect("GETQUOTAROOT", "BAD")
	c.expect("GETQUOTA", "BAD")
	// RFC 9208 §4.2.2: what EXPUNGE would free.
	mboxSame(t, "DELETED-STORAGE", c.ok("STATUS Archive (DELETED-STORAGE)"), []string{
		"* STATUS Archive (DELETED-STORAGE " + mboxItoa(3*len(m)) + ")",
	})
	c.ok("SELECT Archive")
	c.ok("EXPUNGE")
	mboxSame(t, "after EXPUNGE", c.ok(`GETQUOTA ""`), []string{`* QUOTA "" (STORAGE 0 10240)`})
}
