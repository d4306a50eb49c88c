package imapd_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestFetchEnvelopeWithHeaderFields: ENVELOPE and top-level header
// sections in one FETCH. Only the envelope is loaded then, and the
// sections must still come from the message header, not from the
// envelope's empty stub (imaptest's stress mode saw "Header Subject
// changed ... -> ”"). Several sessions fetch at once, as imaptest does.
func TestFetchEnvelopeWithHeaderFields(t *testing.T) {
	h := newSessHarness(t, sessOptions{noTLS: true})
	h.addUser(sessAlice, sessPass)
	const n = 20
	for i := range n {
		h.deliver(sessAlice, fmt.Sprintf("From: Bob <bob@example.net>\r\nTo: alice@example.org\r\nSubject: message %d\r\nReferences: <r%d@example.net>\r\nIn-Reply-To: <r%d@example.net>\r\n\r\nbody %d\r\n", i, i, i, i))
	}
	cmds := []string{
		"FETCH %d (ENVELOPE BODY.PEEK[HEADER.FIELDS (In-Reply-To Subject To)])",
		"FETCH %d (ENVELOPE BODY.PEEK[HEADER.FIELDS (References From To References)])",
		"FETCH %d (ENVELOPE BODY.PEEK[HEADER])",
		"FETCH %d (ENVELOPE RFC822.HEADER)",
		"FETCH %d (ENVELOPE BODY.PEEK[TEXT])",
		"FETCH %d (ENVELOPE BODY.PEEK[HEADER.FIELDS.NOT (From)])",
	}
	var wg sync.WaitGroup
	for w := range 4 {
		c := h.dial()
		c.login(sessAlice, sessPass)
		c.OK("EXAMINE INBOX")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= n; i++ {
				for j, f := range cmds {
					if (i+j+w)%2 == 0 {
						continue
					}
					u := c.OK(fmt.Sprintf(f, i))
					line := strings.Join(u, "\n")
					want := map[int]string{0: fmt.Sprintf("Subject: message %d", i-1), 1: "From: Bob", 2: "Subject: message", 3: "Subject: message", 4: fmt.Sprintf("body %d", i-1), 5: "Subject: message"}[j]
					if len(u) != 1 || !strings.Contains(line, want) {
						t.Errorf("%s: %q lacks %q", fmt.Sprintf(f, i), u, want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
