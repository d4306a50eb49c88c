package store

import (
	"strings"
	"testing"
)

// TestChangesUsesIndexes: the queries behind Account.Changes, run at every
// IMAP sync, read only the rows changed since a MODSEQ, through an index,
// not every row of the mailbox.
func TestChangesUsesIndexes(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	for _, tc := range []struct{ query, index string }{
		{`SELECT uid, modseq FROM expunged WHERE mailbox_id=? AND modseq>? ORDER BY uid`, "expunged_modseq"},
		{`SELECT ` + messageCols + ` FROM messages WHERE mailbox_id=? AND modseq>? ORDER BY uid`, "messages_modseq"},
	} {
		rows, err := a.db.W.Query(`EXPLAIN QUERY PLAN `+tc.query, 1, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if !strings.Contains(strings.Join(plan, "; "), tc.index) {
			t.Errorf("%s\nplan %q does not use %s", tc.query, plan, tc.index)
		}
	}
}
