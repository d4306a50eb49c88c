package imapd

import (
	"bufio"
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/imapwire"
)

func qresyncTestSet(t *testing.T, s string) imapwire.SeqSet {
	t.Helper()
	if s == "" {
		return imapwire.SeqSet{}
	}
	d := imapwire.NewDecoder(bufio.NewReader(strings.NewReader(s+"\r\n")), nil, imapwire.DecoderOptions{})
	set, err := d.ReadSeqSet()
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return set
}

func TestQresyncIterAndCount(t *testing.T) {
	tests := []struct {
		set  string
		want []uint32
	}{
		{"1", []uint32{1}},
		{"1:3,7", []uint32{1, 2, 3, 7}},
		{"5:3", []uint32{5, 4, 3}},
		{"2,2", []uint32{2, 2}},
		{"4294967294:4294967295", []uint32{4294967294, 4294967295}},
	}
	for _, tc := range tests {
		set := qresyncTestSet(t, tc.set)
		it := newQresyncIter(set)
		var got []uint32
		for {
			n, ok := it.next()
			if !ok {
				break
			}
			got = append(got, n)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: iter %v, want %v", tc.set, got, tc.want)
		}
		if c := qresyncCount(set); c != uint64(len(tc.want)) {
			t.Errorf("%s: count %d, want %d", tc.set, c, len(tc.want))
		}
	}
	if c := qresyncCount(qresyncTestSet(t, "1:4294967295")); c != 4294967295 {
		t.Errorf("count of 1:4294967295 = %d", c)
	}
}

func TestQresyncUIDRanges(t *testing.T) {
	r := qresyncRanges(qresyncTestSet(t, "10:12,3,20:15,1"))
	for uid, want := range map[uint32]bool{1: true, 2: false, 3: true, 9: false, 10: true, 12: true, 13: false, 15: true, 20: true, 21: false} {
		if r.contains(uid) != want {
			t.Errorf("contains(%d) = %v", uid, !want)
		}
	}
	if !qresyncRanges(imapwire.SeqSet{}).contains(12345) {
		t.Error("an absent known-uids set must contain everything")
	}
}

// TestQresyncSeqMatchFloor: RFC 7162 §3.2.5.2 — walk the pairs in order;
// each match raises the floor to its UID, the first mismatch stops.
func TestQresyncSeqMatchFloor(t *testing.T) {
	s := &session{sel: &selected{uids: []uint32{2, 5, 8, 9, 12, 25}}}
	tests := []struct {
		seqs, uids string
		want       uint32
	}{
		{"", "", 0},
		{"1", "2", 2},
		{"1,3", "2,8", 8},
		{"3,5", "8,24", 8},    // the RFC's example: 5th message is UID 25, not 24
		{"1:4", "2,5,8,9", 9}, // ranges pair up element by element
		{"2", "4", 0},         // first pair differs
		{"6,7", "25,30", 25},  // 7 is past the end
		{"3,1", "8,2", 8},     // not ascending: stop
		{"1:4294967295", "2,5,8,9,12,25,26", 25},
	}
	for _, tc := range tests {
		q := &imapwire.QResync{KnownSeqs: qresyncTestSet(t, tc.seqs), KnownSeqUIDs: qresyncTestSet(t, tc.uids)}
		if got := s.qresyncSeqMatchFloor(q); got != tc.want {
			t.Errorf("(%s %s): floor %d, want %d", tc.seqs, tc.uids, got, tc.want)
		}
	}
	if err := qresyncCheck(&imapwire.QResync{KnownSeqs: qresyncTestSet(t, "1:3"), KnownSeqUIDs: qresyncTestSet(t, "4,9")}); err == nil {
		t.Error("sets of different sizes accepted")
	}
	if err := qresyncCheck(&imapwire.QResync{KnownSeqs: qresyncTestSet(t, "1:3"), KnownSeqUIDs: qresyncTestSet(t, "4,9,10")}); err != nil {
		t.Error(err)
	}
}

func TestQresyncWriteVanished(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	s := &session{enc: imapwire.NewEncoder(bw)}
	s.qresyncWriteVanished(true, []uint32{1, 2, 3, 5, 9, 10})
	s.qresyncWriteVanished(false, nil)
	s.qresyncWriteVanished(false, []uint32{7})
	bw.Flush()
	if got, want := buf.String(), "* VANISHED (EARLIER) 1:3,5,9:10\r\n* VANISHED 7\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	// Many scattered UIDs: several lines, each bounded, together all.
	buf.Reset()
	var uids []uint32
	for u := uint32(1000000); len(uids) < 5000; u += 2 {
		uids = append(uids, u)
	}
	s.qresyncWriteVanished(true, uids)
	bw.Flush()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\r\n"), "\r\n")
	if len(lines) < 2 {
		t.Fatalf("%d lines for %d scattered UIDs", len(lines), len(uids))
	}
	var got []uint32
	for _, l := range lines {
		if len(l) > maxVanishedLine+100 {
			t.Errorf("line of %d bytes", len(l))
		}
		set, ok := strings.CutPrefix(l, "* VANISHED (EARLIER) ")
		if !ok {
			t.Fatalf("line %q", l[:40])
		}
		for r := range strings.SplitSeq(set, ",") {
			n := qresyncTestSet(t, r)
			it := newQresyncIter(n)
			for {
				u, ok := it.next()
				if !ok {
					break
				}
				got = append(got, u)
			}
		}
	}
	if !slices.Equal(got, uids) {
		t.Errorf("the lines hold %d UIDs, want %d", len(got), len(uids))
	}
}

// TestSelectedRemove: removal returns the old sequence numbers highest
// first, each valid when sent, and drops the UIDs from pending.
func TestSelectedRemove(t *testing.T) {
	sel := &selected{uids: []uint32{3, 4, 7, 9, 10, 15}, pending: []uint32{4, 10}}
	seqs := sel.remove([]uint32{10, 4, 11, 3})
	if !slices.Equal(seqs, []uint32{5, 2, 1}) {
		t.Errorf("seqs %v", seqs)
	}
	if !slices.Equal(sel.uids, []uint32{7, 9, 15}) || len(sel.pending) != 0 {
		t.Errorf("after: uids %v pending %v", sel.uids, sel.pending)
	}
	if sel.remove(nil) != nil || sel.remove([]uint32{100}) != nil {
		t.Error("removing nothing returned numbers")
	}
}
