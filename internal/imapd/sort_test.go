package imapd_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sortMessages are filed with the internal dates in sortArrivals.
var sortMessages = []string{
	fetchCRLF("From: Zed <a@example.org>\nTo: m@example.org\nSubject: Re: beta\nDate: Sun, 5 Jan 2025 10:00:00 +0000\n\none\n"),
	fetchCRLF("From: b@example.org\nTo: Yvonne <l@example.org>\nCc: c@example.org\nSubject: alpha\nDate: Fri, 3 Jan 2025 10:00:00 +0000\n\ntwo two\n"),
	fetchCRLF("From: \"Adam\" <c@example.org>\nTo: k@example.org\nSubject: [list] Fwd: Alpha (fwd)\n\nthree three three\n"),
	fetchCRLF("From: =?UTF-8?Q?=C3=89mile?= <d@example.org>\nSubject: gamma\nDate: Thu, 2 Jan 2025 23:00:00 -0300\n\nfour\n"),
	fetchCRLF("From: bob <B@example.org>\nTo: z@example.org\nSubject: Re: re: BETA\nDate: Wed, 1 Jan 2025 10:00:00 +0000\n\nfive five five five five\n"),
}

var sortArrivals = []time.Time{
	time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2025, 1, 4, 0, 0, 0, 0, time.UTC),
	time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC),
}

func TestSort(t *testing.T) {
	env := fetchNewEnv(t)
	for i, m := range sortMessages {
		searchAppend(t, env, m, sortArrivals[i], 0)
	}
	fc := fetchDial(t, env, fetchUser, "secret-password")
	fc.ok("SELECT INBOX")

	bySize := []int{1, 2, 3, 4, 5}
	slices.SortStableFunc(bySize, func(a, b int) int { return len(sortMessages[a-1]) - len(sortMessages[b-1]) })
	var sizeOrder []string
	for _, n := range bySize {
		sizeOrder = append(sizeOrder, strconv.Itoa(n))
	}
	tests := []struct{ criteria, keys, want string }{
		{"ARRIVAL", "ALL", "2 5 3 1 4"},
		{"REVERSE ARRIVAL", "ALL", "4 1 3 5 2"},
		// The Date header in UTC; message 3 has none: its internal date.
		{"DATE", "ALL", "5 4 2 3 1"},
		{"REVERSE DATE", "ALL", "1 3 2 4 5"},
		// Base subjects, "Re:", "Fwd:", blobs and "(fwd)" removed, ASCII
		// case ignored; ties by sequence number.
		{"SUBJECT", "ALL", "2 3 1 5 4"},
		{"SUBJECT REVERSE DATE", "ALL", "3 2 1 5 4"},
		{"REVERSE SUBJECT", "ALL", "4 1 5 2 3"},
		// The mailbox (local part) of the first address.
		{"FROM", "ALL", "1 2 5 3 4"},
		{"TO", "ALL", "4 3 2 1 5"},
		{"CC", "ALL", "1 3 4 5 2"},
		// RFC 5957: the decoded display name, else the address.
		{"DISPLAYFROM", "ALL", "3 2 5 1 4"},
		{"DISPLAYTO", "ALL", "4 3 1 2 5"},
		{"SIZE", "ALL", strings.Join(sizeOrder, " ")},
		// A search program restricts the messages.
		{"ARRIVAL", "SUBJECT alpha", "2 3"},
		{"DATE", "NOT 1:2", "5 4 3"},
	}
	for _, tc := range tests {
		fc.expect(fmt.Sprintf("SORT (%s) UTF-8 %s", tc.criteria, tc.keys), "OK", "* SORT "+tc.want)
	}
	fc.expect("UID SORT (REVERSE ARRIVAL) US-ASCII 2:4", "OK", "* SORT 4 3 2")
	fc.expect("SORT (SUBJECT) UTF-8 KEYWORD none", "OK", "* SORT")
	fc.expect("SORT (SUBJECT) ISO-8859-1 ALL", "NO [BADCHARSET")
	fc.expect("SORT () UTF-8 ALL", "BAD")
	fc.expect("SORT (BOGUS) UTF-8 ALL", "BAD")
	// UIDs differ from sequence numbers once a message is gone.
	fetchExpunge(t, env, 2)
	fc.expect("NOOP", "OK", "* 2 EXPUNGE", "* 4 RECENT")
	fc.expect("UID SORT (ARRIVAL) UTF-8 ALL", "OK", "* SORT 5 3 1 4")
	fc.expect("SORT (ARRIVAL) UTF-8 ALL", "OK", "* SORT 4 2 1 3")
}

// threadMessages form, for REFERENCES: A with replies B (and its reply
// C), D (by In-Reply-To) and E (by subject only); F whose parent is
// missing; G and H, siblings under a missing parent.
var threadMessages = []string{
	fetchCRLF("Message-ID: <a@x>\nSubject: Topic\nDate: Wed, 1 Jan 2025 10:00:00 +0000\n\nA\n"),
	fetchCRLF("Message-ID: <b@x>\nReferences: <a@x>\nSubject: Re: Topic\nDate: Thu, 2 Jan 2025 10:00:00 +0000\n\nB\n"),
	fetchCRLF("Message-ID: <c@x>\nReferences: <a@x>\n <b@x>\nIn-Reply-To: <b@x>\nSubject: Re: Topic\nDate: Fri, 3 Jan 2025 10:00:00 +0000\n\nC\n"),
	fetchCRLF("Message-ID: <d@x>\nIn-Reply-To: <a@x> (Alice's message)\nSubject: Re: Topic\nDate: Sat, 4 Jan 2025 10:00:00 +0000\n\nD\n"),
	fetchCRLF("Message-ID: <e@x>\nSubject: RE: [list] topic\nDate: Sun, 5 Jan 2025 10:00:00 +0000\n\nE\n"),
	fetchCRLF("Message-ID: <f@x>\nReferences: <missing@x>\nSubject: Other\nDate: Mon, 6 Jan 2025 10:00:00 +0000\n\nF\n"),
	fetchCRLF("Message-ID: <g@x>\nReferences: <x@x>\nSubject: Gee\nDate: Tue, 7 Jan 2025 10:00:00 +0000\n\nG\n"),
	fetchCRLF("Message-ID: <h@x>\nReferences: <x@x>\nSubject: Aitch\nDate: Wed, 8 Jan 2025 10:00:00 +0000\n\nH\n"),
}

func TestThread(t *testing.T) {
	env := fetchNewEnv(t, threadMessages...)
	fc := fetchDial(t, env, fetchUser, "secret-password")
	fc.ok("SELECT INBOX")
	fc.expect("THREAD REFERENCES UTF-8 ALL", "OK", "* THREAD (1 (2 3)(4)(5))(6)((7)(8))")
	fc.expect("THREAD ORDEREDSUBJECT UTF-8 ALL", "OK", "* THREAD (1 (2)(3)(4)(5))(6)(7)(8)")
	fc.expect("thread orderedsubject us-ascii 2:3", "OK", "* THREAD (2 3)")
	// Only the messages found take part: B's reply C hangs from the
	// missing A.
	fc.expect("THREAD REFERENCES UTF-8 2:3", "OK", "* THREAD (2 3)")
	fc.expect("THREAD REFERENCES UTF-8 3:4", "OK", "* THREAD ((3)(4))")
	fc.expect("THREAD REFERENCES UTF-8 KEYWORD none", "OK", "* THREAD")
	fetchExpunge(t, env, 1)
	fc.expect("NOOP", "OK", "* 1 EXPUNGE", "* 7 RECENT")
	// Without A, its replies still gather by subject under a dummy.
	fc.expect("THREAD REFERENCES UTF-8 1:4", "OK", "* THREAD ((1 2)(3)(4))")
	fc.expect("UID THREAD REFERENCES UTF-8 1:4", "OK", "* THREAD ((2 3)(4)(5))")
	fc.expect("THREAD BOGUS UTF-8 ALL", "BAD")
	fc.expect("THREAD REFERENCES KOI8-R ALL", "NO [BADCHARSET")
}
