package imapd_test

import (
	"testing"
)

// mboxSetup creates mailboxes and sets exactly the given subscriptions.
func mboxSetup(t *testing.T, c *mboxConn, mailboxes, subscribed []string) {
	t.Helper()
	mboxClean(t, c)
	for _, m := range mailboxes {
		c.OK("CREATE " + m)
	}
	for _, l := range c.OK(`LIST "" *`) {
		c.OK("UNSUBSCRIBE " + l[mboxNameAfterDelim(l):])
	}
	for _, m := range subscribed {
		c.OK("SUBSCRIBE " + m)
	}
}

// indexAfterDelim finds the mailbox name after `) "/" ` in a LIST line.
func mboxNameAfterDelim(s string) int {
	const sep = `) "/" `
	for i := 0; i+len(sep) <= len(s); i++ {
		if s[i:i+len(sep)] == sep {
			return i + len(sep)
		}
	}
	return len(s)
}

// The examples of RFC 9051 §6.3.9.8 (from RFC 5258 §5), on jodmai: INBOX
// has no \Marked or \NoInferiors, \HasChildren / \HasNoChildren are always
// sent, and every level of a hierarchy exists.
func TestMboxListExtendedExamples(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	mboxSetup(t, c,
		[]string{"Fruit/Apple", "Fruit/Banana", "Tofu", "Vegetable/Broccoli", "Vegetable/Corn"},
		[]string{"INBOX", "Fruit/Banana", "Vegetable", "Vegetable/Broccoli"})

	tests := []struct {
		name, cmd string
		want      []string
	}{
		{"1", `LIST "" "*"`, []string{
			`* LIST (\HasNoChildren) "/" INBOX`,
			`* LIST (\HasChildren) "/" Fruit`,
			`* LIST (\HasNoChildren) "/" Fruit/Apple`,
			`* LIST (\HasNoChildren) "/" Fruit/Banana`,
			`* LIST (\HasNoChildren) "/" Tofu`,
			`* LIST (\HasChildren) "/" Vegetable`,
			`* LIST (\HasNoChildren) "/" Vegetable/Broccoli`,
			`* LIST (\HasNoChildren) "/" Vegetable/Corn`,
		}},
		{"2", `LIST (SUBSCRIBED) "" "*"`, []string{
			`* LIST (\HasNoChildren \Subscribed) "/" INBOX`,
			`* LIST (\HasNoChildren \Subscribed) "/" Fruit/Banana`,
			`* LIST (\HasChildren \Subscribed) "/" Vegetable`,
			`* LIST (\HasNoChildren \Subscribed) "/" Vegetable/Broccoli`,
		}},
		{"3", `LIST () "" "%" RETURN (CHILDREN)`, []string{
			`* LIST (\HasNoChildren) "/" INBOX`,
			`* LIST (\HasChildren) "/" Fruit`,
			`* LIST (\HasNoChildren) "/" Tofu`,
			`* LIST (\HasChildren) "/" Vegetable`,
		}},
		{"4", `LIST (REMOTE) "" "%" RETURN (CHILDREN)`, []string{
			`* LIST (\HasNoChildren) "/" INBOX`,
			`* LIST (\HasChildren) "/" Fruit`,
			`* LIST (\HasNoChildren) "/" Tofu`,
			`* LIST (\HasChildren) "/" Vegetable`,
		}},
		{"5", `LIST (REMOTE SUBSCRIBED) "" "*"`, []string{
			`* LIST (\HasNoChildren \Subscribed) "/" INBOX`,
			`* LIST (\HasNoChildren \Subscribed) "/" Fruit/Banana`,
			`* LIST (\HasChildren \Subscribed) "/" Vegetable`,
			`* LIST (\HasNoChildren \Subscribed) "/" Vegetable/Broccoli`,
		}},
		{"6", `LIST (REMOTE) "" "*" RETURN (SUBSCRIBED)`, []string{
			`* LIST (\HasNoChildren \Subscribed) "/" INBOX`,
			`* LIST (\HasChildren) "/" Fruit`,
			`* LIST (\HasNoChildren) "/" Fruit/Apple`,
			`* LIST (\HasNoChildren \Subscribed) "/" Fruit/Banana`,
			`* LIST (\HasNoChildren) "/" Tofu`,
			`* LIST (\HasChildren \Subscribed) "/" Vegetable`,
			`* LIST (\HasNoChildren \Subscribed) "/" Vegetable/Broccoli`,
			`* LIST (\HasNoChildren) "/" Vegetable/Corn`,
		}},
		// Options in any case, given twice, and a reference.
		{"options", `LIST (subscribed SUBSCRIBED) Vegetable/ % RETURN (children)`, []string{
			`* LIST (\HasNoChildren \Subscribed) "/" Vegetable/Broccoli`,
		}},
		{"reference", `LIST Fruit/ %`, []string{
			`* LIST (\HasNoChildren) "/" Fruit/Apple`,
			`* LIST (\HasNoChildren) "/" Fruit/Banana`,
		}},
		{"inbox any case", `LIST "" inBox`, []string{`* LIST (\HasNoChildren) "/" INBOX`}},
		{"delimiter", `LIST "" ""`, []string{`* LIST (\Noselect) "/" ""`}},
		{"delimiter with reference", `LIST Fruit ""`, []string{`* LIST (\Noselect) "/" ""`}},
		// RFC 9051 §6.3.9: empty patterns are ignored in the extended
		// syntax; a mailbox matched by two patterns is listed once.
		{"extended empty", `LIST () "" ""`, nil},
		{"patterns", `LIST "" ("" Tofu "T*" nomatch)`, []string{`* LIST (\HasNoChildren) "/" Tofu`}},
		{"nothing", `LIST "" nomatch`, nil},
	}
	for _, tc := range tests {
		mboxSame(t, "example "+tc.name, c.OK(tc.cmd), tc.want)
	}

	bads := []string{
		// RFC 9051 §6.3.9.1: RECURSIVEMATCH alone, or only with REMOTE.
		`LIST (RECURSIVEMATCH) "" *`,
		`LIST (REMOTE RECURSIVEMATCH) "" *`,
		`LIST (BOGUS) "" *`,
		`LIST "" * RETURN (BOGUS)`,
		`LIST "" ()`,
		`LIST ""`,
		`LIST "" * RETURN (STATUS ())`,
	}
	for _, b := range bads {
		c.Expect(b, "BAD")
	}
}

// RFC 9051 §6.3.9.8 example 7: multiple patterns.
func TestMboxListMultiplePatterns(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	for _, m := range []string{"Sent/March2004", "Sent/December2003", "Sent/August2004"} {
		c.OK("CREATE " + m)
	}
	mboxSame(t, "BBB", c.OK(`LIST "" ("INBOX" "Drafts" "Sent/%")`), []string{
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasNoChildren \Drafts) "/" Drafts`,
		`* LIST (\HasNoChildren) "/" Sent/August2004`,
		`* LIST (\HasNoChildren) "/" Sent/December2003`,
		`* LIST (\HasNoChildren) "/" Sent/March2004`,
	})
}

// RFC 9051 §6.3.9.8 example 7 (RFC 5258 example 8): CHILDINFO versus
// \HasChildren.
func TestMboxListChildInfo(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	mboxSetup(t, c, []string{"Foo/Bar", "Foo/Baz", "Moo"}, []string{"Foo/Baz"})
	mboxSame(t, "CA3", c.OK(`LIST "" "%" RETURN (CHILDREN)`), []string{
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasChildren) "/" Foo`,
		`* LIST (\HasNoChildren) "/" Moo`,
	})
	// A) Only Foo/Baz is subscribed.
	mboxSame(t, "C02", c.OK(`LIST (SUBSCRIBED) "" "*"`), []string{`* LIST (\HasNoChildren \Subscribed) "/" Foo/Baz`})
	mboxSame(t, "A %", c.OK(`LIST (SUBSCRIBED) "" "%"`), nil)
	mboxSame(t, "A C04", c.OK(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`), []string{
		`* LIST (\HasChildren) "/" Foo ("CHILDINFO" ("SUBSCRIBED"))`,
	})
	// A1) Foo subscribed too.
	c.OK("SUBSCRIBE Foo")
	mboxSame(t, "A1 C04", c.OK(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`), []string{
		`* LIST (\HasChildren \Subscribed) "/" Foo ("CHILDINFO" ("SUBSCRIBED"))`,
	})
	// B) Nothing subscribed.
	c.OK("UNSUBSCRIBE Foo")
	c.OK("UNSUBSCRIBE Foo/Baz")
	mboxSame(t, "B C04", c.OK(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`), nil)
	// C) Foo and Moo.
	c.OK("SUBSCRIBE Foo")
	c.OK("SUBSCRIBE Moo")
	mboxSame(t, "C C04", c.OK(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)`), []string{
		`* LIST (\HasChildren \Subscribed) "/" Foo`,
		`* LIST (\HasNoChildren \Subscribed) "/" Moo`,
	})
}

// RFC 9051 §6.3.9.8 example 8: CHILDINFO whether or not the children match
// the pattern; a parent all of whose matching children are listed anyway is
// left out (§6.3.9.6: servers SHOULD suppress redundant CHILDINFO).
func TestMboxListRecursiveMatchPattern(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	subs := []string{"foo2/bar1", "foo2/bar2", "baz2/bar2", "baz2/bar22", "baz2/bar222", "eps2", "eps2/mamba", "qux2/bar2"}
	mboxSetup(t, c, subs, subs)
	mboxSame(t, "D02", c.OK(`LIST (SUBSCRIBED) "" "*"`), []string{
		`* LIST (\HasNoChildren \Subscribed) "/" baz2/bar2`,
		`* LIST (\HasNoChildren \Subscribed) "/" baz2/bar22`,
		`* LIST (\HasNoChildren \Subscribed) "/" baz2/bar222`,
		`* LIST (\HasChildren \Subscribed) "/" eps2`,
		`* LIST (\HasNoChildren \Subscribed) "/" eps2/mamba`,
		`* LIST (\HasNoChildren \Subscribed) "/" foo2/bar1`,
		`* LIST (\HasNoChildren \Subscribed) "/" foo2/bar2`,
		`* LIST (\HasNoChildren \Subscribed) "/" qux2/bar2`,
	})
	mboxSame(t, "D03", c.OK(`LIST (RECURSIVEMATCH SUBSCRIBED) "" "*2"`), []string{
		`* LIST (\HasNoChildren \Subscribed) "/" baz2/bar2`,
		`* LIST (\HasNoChildren \Subscribed) "/" baz2/bar22`,
		`* LIST (\HasNoChildren \Subscribed) "/" baz2/bar222`,
		`* LIST (\HasChildren \Subscribed) "/" eps2 ("CHILDINFO" ("SUBSCRIBED"))`,
		`* LIST (\HasChildren) "/" foo2 ("CHILDINFO" ("SUBSCRIBED"))`,
		`* LIST (\HasNoChildren \Subscribed) "/" foo2/bar2`,
		`* LIST (\HasNoChildren \Subscribed) "/" qux2/bar2`,
	})
}

// RFC 9051 §6.3.9.8 example 11 (RFC 5819 LIST-STATUS).
func TestMboxListStatus(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	mboxSetup(t, c, []string{"foo/sub"}, []string{"INBOX", "foo/sub"})
	c.appendMsg("INBOX", `(\Seen)`, mboxMsg(1))
	c.appendMsg("INBOX", "", mboxMsg(2))
	c.appendMsg("foo", "", mboxMsg(3))
	mboxSame(t, "A01", c.OK(`LIST "" % RETURN (STATUS (MESSAGES UNSEEN))`), []string{
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* STATUS INBOX (MESSAGES 2 UNSEEN 1)`,
		`* LIST (\HasChildren) "/" foo`,
		`* STATUS foo (MESSAGES 1 UNSEEN 1)`,
	})
	// foo is listed for its subscribed child, but gets no STATUS: it does
	// not meet the selection criteria itself.
	mboxSame(t, "A02", c.OK(`LIST (SUBSCRIBED RECURSIVEMATCH) "" % RETURN (STATUS (MESSAGES))`), []string{
		`* LIST (\HasNoChildren \Subscribed) "/" INBOX`,
		`* STATUS INBOX (MESSAGES 2)`,
		`* LIST (\HasChildren) "/" foo ("CHILDINFO" ("SUBSCRIBED"))`,
	})
	// With the selected mailbox too, several items, and CHILDREN.
	c.OK("SELECT foo")
	mboxSame(t, "selected", c.OK(`LIST "" foo* RETURN (CHILDREN STATUS (UIDNEXT MESSAGES SIZE))`), []string{
		`* LIST (\HasChildren) "/" foo`,
		`* STATUS foo (UIDNEXT 2 MESSAGES 1 SIZE ` + mboxItoa(len(mboxMsg(3))) + `)`,
		`* LIST (\HasNoChildren) "/" foo/sub`,
		`* STATUS foo/sub (UIDNEXT 1 MESSAGES 0 SIZE 0)`,
	})
}

// RFC 6154 §3: the SPECIAL-USE selection and return options.
func TestMboxListSpecialUse(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	c.OK("CREATE Other")
	c.OK(`CREATE Old/Stuff (USE (\Archive))`)
	all := []string{
		`* LIST (\HasNoChildren \Archive) "/" Archive`,
		`* LIST (\HasNoChildren \Drafts) "/" Drafts`,
		`* LIST (\HasNoChildren \Junk) "/" Junk`,
		`* LIST (\HasNoChildren \Archive) "/" Old/Stuff`,
		`* LIST (\HasNoChildren \Sent) "/" Sent`,
		`* LIST (\HasNoChildren \Trash) "/" Trash`,
	}
	mboxSame(t, "selection", c.OK(`LIST (SPECIAL-USE) "" *`), all)
	mboxSame(t, "return", c.OK(`LIST "" (Sent Other) RETURN (SPECIAL-USE)`), []string{
		`* LIST (\HasNoChildren) "/" Other`,
		`* LIST (\HasNoChildren \Sent) "/" Sent`,
	})
	mboxSame(t, "recursive", c.OK(`LIST (SPECIAL-USE RECURSIVEMATCH) "" %`), []string{
		`* LIST (\HasNoChildren \Archive) "/" Archive`,
		`* LIST (\HasNoChildren \Drafts) "/" Drafts`,
		`* LIST (\HasNoChildren \Junk) "/" Junk`,
		`* LIST (\HasChildren) "/" Old ("CHILDINFO" ("SPECIAL-USE"))`,
		`* LIST (\HasNoChildren \Sent) "/" Sent`,
		`* LIST (\HasNoChildren \Trash) "/" Trash`,
	})
	// Selection options combine: subscribed and special-use.
	c.OK("UNSUBSCRIBE Junk")
	mboxSame(t, "combined", c.OK(`LIST (SPECIAL-USE SUBSCRIBED) "" J*`), nil)
}
