package message

import "testing"

func TestFilterHeader(t *testing.T) {
	hdr := crlf(`From: a@example.org
Subject: one
 two
garbage line
to: b@example.org
Received: x
	y

`)
	for _, tc := range []struct {
		names   []string
		exclude bool
		want    string
	}{
		{[]string{"subject", "TO"}, false, crlf("Subject: one\n two\nto: b@example.org\n")},
		{[]string{"Subject", "Received"}, true, crlf("From: a@example.org\nto: b@example.org\n")},
		{[]string{"X-None"}, false, ""},
		{nil, true, crlf("From: a@example.org\nSubject: one\n two\nto: b@example.org\nReceived: x\n\ty\n")},
	} {
		if got := string(FilterHeader([]byte(hdr), tc.names, tc.exclude)); got != tc.want {
			t.Errorf("FilterHeader(%v, %v) = %q, want %q", tc.names, tc.exclude, got, tc.want)
		}
	}
	// A header without a final blank line or line break, and bare LF.
	if got := string(FilterHeader([]byte("A: 1\nB: 2"), []string{"b"}, false)); got != "B: 2" {
		t.Errorf("unterminated header: %q", got)
	}
}
