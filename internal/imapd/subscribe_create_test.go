package imapd_test

import (
	"strings"
	"testing"
)

// TestCreateDoesNotSubscribe follows imaptest's subscribe and listext
// scripts: CREATE does not subscribe (RFC 9051 §6.3.9, clients subscribe
// for themselves), so LSUB and LIST (SUBSCRIBED) show exactly what was
// subscribed: an unsubscribed parent of a subscribed child is \Noselect
// for "%" (RFC 3501 §6.3.9), UNSUBSCRIBE removes, and RECURSIVEMATCH
// reports CHILDINFO on the unsubscribed parent (RFC 5258 §3.5).
func TestCreateDoesNotSubscribe(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	for _, name := range []string{"t/", "t/test", "t/test2/", "t/test3/", "t/test2/test", "t/test3/test3"} {
		c.OK("CREATE " + name)
	}
	for _, name := range []string{"t/test", "t/test2/test", "t/test3/test3"} {
		c.OK("SUBSCRIBE " + name)
	}
	other := mboxLogin(t, env, addr)
	mboxSame(t, `LSUB "" t/%`, other.OK(`LSUB "" t/%`), []string{
		`* LSUB () "/" t/test`, `* LSUB (\Noselect) "/" t/test2`, `* LSUB (\Noselect) "/" t/test3`})
	mboxSame(t, `LSUB "" *test`, other.OK(`LSUB "" *test`), []string{
		`* LSUB () "/" t/test`, `* LSUB () "/" t/test2/test`})
	c.OK("UNSUBSCRIBE t/test")
	mboxSame(t, `LSUB "" t/% after UNSUBSCRIBE`, other.OK(`LSUB "" t/%`), []string{
		`* LSUB (\Noselect) "/" t/test2`, `* LSUB (\Noselect) "/" t/test3`})
	c.OK("UNSUBSCRIBE t/test2/test")
	c.OK("UNSUBSCRIBE t/test3/test3")
	mboxSame(t, `LSUB "" t/* after all UNSUBSCRIBE`, other.OK(`LSUB "" t/*`), nil)

	// LIST-EXTENDED: SUBSCRIBE a parent, CREATE a child: the child is not
	// subscribed.
	c.OK("CREATE p")
	c.OK("SUBSCRIBE p")
	c.OK("CREATE p/child")
	c.OK("CREATE p/sub/leaf")
	c.OK("SUBSCRIBE p/sub/leaf")
	mboxSame(t, "LIST (SUBSCRIBED)", c.OK(`LIST (SUBSCRIBED) "" p*`), []string{
		`* LIST (\HasChildren \Subscribed) "/" p`, `* LIST (\HasNoChildren \Subscribed) "/" p/sub/leaf`})
	mboxSame(t, "LIST RETURN (CHILDREN SUBSCRIBED)", c.OK(`LIST "" p/% RETURN (CHILDREN SUBSCRIBED)`), []string{
		`* LIST (\HasNoChildren) "/" p/child`, `* LIST (\HasChildren) "/" p/sub`})
	u := c.OK(`LIST (SUBSCRIBED RECURSIVEMATCH) "" p/%`)
	mboxSame(t, "RECURSIVEMATCH", u, []string{`* LIST (\HasChildren) "/" p/sub ("CHILDINFO" ("SUBSCRIBED"))`})
	if strings.Contains(strings.Join(u, "\n"), "p/child") {
		t.Errorf("unsubscribed child listed: %q", u)
	}
}
