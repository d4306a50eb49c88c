package imapd

import (
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/imapwire"
)

func TestSearchFold(t *testing.T) {
	same := [][2]string{
		{"Hello", "hELLO"},
		{"Straße", "STRAßE"},
		{"ÉCOLE", "école"},
		{"\u212a", "k"}, // Kelvin sign
		{"ΣΊΣΥΦΟΣ", "σίσυφος"},
		{"Ⅻ", "ⅻ"},
	}
	for _, p := range same {
		if a, b := string(searchFoldString(p[0])), string(searchFoldString(p[1])); a != b {
			t.Errorf("%q and %q fold to %q and %q", p[0], p[1], a, b)
		}
	}
	if string(searchFoldString("ss")) == string(searchFoldString("ß")) {
		t.Error("ß folded to ss")
	}
	if got := string(searchFold(nil, []byte("a\xffb"))); got != "A\uFFFDB" {
		t.Errorf("invalid UTF-8: %q", got)
	}
}

func TestSearchScanner(t *testing.T) {
	text := "Grüße aus der Stadt, with a needle\r\nacross lines and €uro signs"
	needles := []string{"GRÜSSE", "grüße", "needle", "Needle\r\nAcross", "€URO", "absent", ""}
	want := []bool{false, true, true, true, true, false, true}
	var folded [][]byte
	for _, n := range needles {
		folded = append(folded, searchFoldString(n))
	}
	// Every chunk size, so matches and runes are split at every offset.
	for size := 1; size <= len(text); size++ {
		sc := newSearchScanner(folded)
		b := []byte(text)
		for len(b) > 0 {
			n := min(size, len(b))
			sc.Write(b[:n])
			b = b[n:]
		}
		sc.flush()
		for i := range needles {
			if sc.found[i] != want[i] {
				t.Errorf("chunk %d: %q found=%v, want %v", size, needles[i], sc.found[i], want[i])
			}
		}
	}
	// reset separates texts: no match across them.
	sc := newSearchScanner([][]byte{searchFoldString("ab")})
	sc.Write([]byte("a"))
	sc.reset()
	sc.Write([]byte("b"))
	sc.flush()
	if sc.found[0] {
		t.Error("match across reset")
	}
}

func TestSearchParseHeader(t *testing.T) {
	h := "Subject: =?ISO-8859-1?Q?Caf=E9?=\r\n  =?UTF-8?B?w6lsw6k=?= folded\r\n" +
		"From: =?KOI8-R?B?8NLJ18XU?= <x@example.org>\r\n" +
		"not a field\r\n" +
		"X-Empty:\r\n" +
		"\r\nBody: no\r\n"
	got := searchParseHeader([]byte(h))
	want := []searchField{
		{name: "Subject", value: "Caféélé folded"},
		{name: "From", value: "Привет <x@example.org>"},
		{name: "X-Empty", value: ""},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i].name != want[i].name || got[i].value != want[i].value {
			t.Errorf("field %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestSearchDates(t *testing.T) {
	day := time.Date(2025, 2, 3, 0, 0, 0, 0, time.UTC)
	// 23:30 on 2-Feb in New York is 3-Feb in UTC: it is the 2nd that counts.
	ny := time.Date(2025, 2, 2, 23, 30, 0, 0, time.FixedZone("", -5*3600))
	if searchDateMatch(imapwire.SearchOn, ny, day) || !searchDateMatch(imapwire.SearchBefore, ny, day) || searchDateMatch(imapwire.SearchSince, ny, day) {
		t.Error("date compared in UTC")
	}
	on := time.Date(2025, 2, 3, 0, 0, 0, 0, time.FixedZone("", 3600))
	if !searchDateMatch(imapwire.SearchOn, on, day) || !searchDateMatch(imapwire.SearchSince, on, day) || searchDateMatch(imapwire.SearchBefore, on, day) {
		t.Error("same day")
	}
	for _, v := range []string{
		"Mon, 3 Feb 2025 10:00:00 +0100",
		"3 Feb 2025 10:00 +0100",
		"Mon,  3 Feb 2025 10:00:00 +0100 (CET)",
		"Mon, 3 Feb 2025 10:00:00 (comment) +0100",
	} {
		got, ok := searchParseDate(v)
		if !ok || !got.Equal(time.Date(2025, 2, 3, 9, 0, 0, 0, time.UTC)) {
			t.Errorf("%q: %v %v", v, got, ok)
		}
	}
	for _, v := range []string{"", "yesterday", "32 Feb 2025"} {
		if _, ok := searchParseDate(v); ok {
			t.Errorf("%q parsed", v)
		}
	}
}

// searchEvalCase evaluates a key against a message with given data known.
func TestSearchEvalThreeValued(t *testing.T) {
	p := &searchProgram{needle: map[*imapwire.SearchKey]int{}, headerValue: map[*imapwire.SearchKey][]byte{}}
	body := &imapwire.SearchKey{Op: imapwire.SearchBody, Value: "x"}
	p.needle[body] = 0
	p.needles = [][]byte{searchFoldString("x")}
	seen := &imapwire.SearchKey{Op: imapwire.SearchFlag, Flag: 1}
	msg := &searchMsg{}
	and := &imapwire.SearchKey{Op: imapwire.SearchAnd, Children: []*imapwire.SearchKey{seen, body}}
	or := &imapwire.SearchKey{Op: imapwire.SearchOr, Children: []*imapwire.SearchKey{not(seen), body}}
	// Unseen: AND is decided without the body, OR is not... until NOT.
	if p.eval(and, msg) != searchNo {
		t.Error("AND with a false row key should be false")
	}
	if p.eval(or, msg) != searchYes {
		t.Error("OR with a true row key should be true")
	}
	if p.eval(not(body), msg) != searchMaybe {
		t.Error("NOT BODY should wait for the body")
	}
	msg.m.Flags = 1
	if p.eval(and, msg) != searchMaybe || p.eval(or, msg) != searchMaybe {
		t.Error("undecided keys")
	}
	msg.bodyFound = []bool{true}
	if p.eval(and, msg) != searchYes || p.eval(not(body), msg) != searchNo {
		t.Error("decided keys")
	}
	// TEXT: the header alone can say yes, only both can say no.
	text := &imapwire.SearchKey{Op: imapwire.SearchText, Value: "x"}
	p.needle[text] = 0
	m2 := &searchMsg{hdrRead: true, hdrFound: []bool{true}}
	if p.eval(text, m2) != searchYes {
		t.Error("TEXT found in header")
	}
	m3 := &searchMsg{hdrRead: true, hdrFound: []bool{false}}
	if p.eval(text, m3) != searchMaybe {
		t.Error("TEXT needs the body")
	}
	m3.bodyFound = []bool{false}
	if p.eval(text, m3) != searchNo {
		t.Error("TEXT nowhere")
	}
	if strings.Contains("", "x") {
		t.Fatal()
	}
}

// not negates k, as the SEARCH parser does.
func not(k *imapwire.SearchKey) *imapwire.SearchKey {
	return &imapwire.SearchKey{Op: imapwire.SearchNot, Children: []*imapwire.SearchKey{k}}
}
