package imapd_test

import (
	"context"
	"testing"
)

func TestQuotaCommands(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	c.Expect("SETQUOTA \"\" (STORAGE 100)", "NO [NOPERM]")
	c.Expect("SETQUOTA \"\" ({7+}\r\nSTORAGE 100)", "NO [NOPERM]")
	// No limit: no quota root (RFC 9208 quota-list needs a resource).
	mboxSame(t, "unlimited GETQUOTAROOT", c.OK("GETQUOTAROOT INBOX"), []string{"* QUOTAROOT INBOX"})
	c.Expect(`GETQUOTA ""`, "NO [NONEXISTENT]")

	m := mboxMsg(1)
	for range 3 {
		c.appendMsg("Archive", `(\Deleted)`, m)
	}
	if err := env.Users.SetQuota(context.Background(), addr, 10<<20); err != nil {
		t.Fatal(err)
	}
	used := mboxItoa((3*len(m) + 1023) / 1024)
	mboxSame(t, "GETQUOTAROOT", c.OK("GETQUOTAROOT Archive"), []string{
		`* QUOTAROOT Archive ""`,
		`* QUOTA "" (STORAGE ` + used + ` 10240)`,
	})
	mboxSame(t, "GETQUOTA", c.OK(`GETQUOTA ""`), []string{`* QUOTA "" (STORAGE ` + used + ` 10240)`})
	c.Expect(`GETQUOTA "other"`, "NO [NONEXISTENT]")
	c.Expect("GETQUOTAROOT nosuch", "NO [NONEXISTENT]")
	c.Expect("GETQUOTAROOT", "BAD")
	c.Expect("GETQUOTA", "BAD")
	// RFC 9208 §4.2.2: what EXPUNGE would free.
	mboxSame(t, "DELETED-STORAGE", c.OK("STATUS Archive (DELETED-STORAGE)"), []string{
		"* STATUS Archive (DELETED-STORAGE " + mboxItoa(3*len(m)) + ")",
	})
	c.OK("SELECT Archive")
	c.OK("EXPUNGE")
	mboxSame(t, "after EXPUNGE", c.OK(`GETQUOTA ""`), []string{`* QUOTA "" (STORAGE 0 10240)`})
}
