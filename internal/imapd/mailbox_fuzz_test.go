package imapd_test

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzMboxCommands drives the session loop, logged in, through the mailbox,
// APPEND, COPY/MOVE, EXPUNGE and QUOTA commands against a real on-disk
// store. A panic in a session shows as "* BYE internal server error"
// (the session's recover); any such output fails.
func FuzzMboxCommands(f *testing.F) {
	seeds := []string{
		"a CREATE x/y\r\nb LIST \"\" *\r\nc RENAME x z\r\nd DELETE z/y\r\n",
		"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (% \"*\") RETURN (CHILDREN STATUS (MESSAGES SIZE MAILBOXID))\r\n",
		"a APPEND INBOX (\\Seen) {5+}\r\nhello {3+}\r\nabc\r\nb SELECT INBOX\r\nc UID MOVE 1:* Trash\r\nd EXPUNGE\r\n",
		"a APPEND INBOX ~{4+}\r\n\x00\x01\x02\x03\r\nb STATUS INBOX (DELETED-STORAGE HIGHESTMODSEQ)\r\n",
		"a SELECT INBOX\r\nb COPY 1:* Archive\r\nc UID EXPUNGE $\r\nd MOVE 9 x\r\n",
		"a GETQUOTAROOT INBOX\r\nb GETQUOTA \"\"\r\nc SETQUOTA \"\" (STORAGE 1)\r\n",
		"a CREATE \"&Jjo\"\r\nb SUBSCRIBE nosuch\r\nc LSUB \"\" %\r\nd NAMESPACE\r\n",
		"a APPEND INBOX UTF8 (~{2+}\r\nhi)\r\nb APPEND nosuch {1+}\r\nx\r\n",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	env, addr := mboxUser(f)
	f.Fuzz(func(t *testing.T, in string) {
		c, err := net.Dial("tcp", env.Addr("imap"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		// Write in the background: a synchronizing literal in the input
		// makes the server stop reading until it answers.
		go func() {
			io.WriteString(c, "L LOGIN "+addr+" \""+mboxPass+"\"\r\n"+in+"\r\nZZ LOGOUT\r\n")
		}()
		out, _ := io.ReadAll(c)
		if strings.Contains(string(out), "internal server error") {
			t.Fatalf("server error for %q:\n%s", in, out)
		}
	})
}
