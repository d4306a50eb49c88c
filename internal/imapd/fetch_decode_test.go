package imapd

import (
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/message"
)

func TestFetchFindPart(t *testing.T) {
	leaf := func(typ, sub string) *message.Part { return &message.Part{MediaType: typ, MediaSubtype: sub} }
	innerText := leaf("text", "plain")
	innerMsg := &message.Part{MediaType: "multipart", MediaSubtype: "mixed", Parts: []*message.Part{innerText}}
	rfc822 := &message.Part{MediaType: "message", MediaSubtype: "rfc822", Message: innerMsg}
	singleInner := leaf("text", "html")
	rfc822Single := &message.Part{MediaType: "message", MediaSubtype: "rfc822", Message: singleInner}
	a := leaf("text", "plain")
	root := &message.Part{MediaType: "multipart", MediaSubtype: "mixed", Parts: []*message.Part{a, rfc822, rfc822Single}}
	tests := []struct {
		path []uint32
		want *message.Part
	}{
		{nil, root},
		{[]uint32{1}, a},
		{[]uint32{2}, rfc822},
		{[]uint32{2, 1}, innerText},
		{[]uint32{3, 1}, singleInner},
		{[]uint32{3, 2}, nil},
		{[]uint32{1, 1}, nil},
		{[]uint32{4}, nil},
		{[]uint32{2, 1, 1}, nil},
	}
	for _, tc := range tests {
		if got := fetchFindPart(root, tc.path); got != tc.want {
			t.Errorf("path %v: got %p, want %p", tc.path, got, tc.want)
		}
	}
	// A single-part message: part 1 is the message itself.
	single := leaf("text", "plain")
	if fetchFindPart(single, []uint32{1}) != single || fetchFindPart(single, []uint32{2}) != nil {
		t.Error("single part message")
	}
}

func TestFetchPartial(t *testing.T) {
	tests := []struct {
		off, n  int64
		p       *imapwire.Partial
		wantOff int64
		wantN   int64
	}{
		{off: 100, n: 50, p: nil, wantOff: 100, wantN: 50},
		{off: 100, n: 50, p: &imapwire.Partial{Offset: 0, Count: 10}, wantOff: 100, wantN: 10},
		{off: 100, n: 50, p: &imapwire.Partial{Offset: 45, Count: 10}, wantOff: 145, wantN: 5},
		{off: 100, n: 50, p: &imapwire.Partial{Offset: 50, Count: 10}, wantOff: 150, wantN: 0},
		{off: 100, n: 50, p: &imapwire.Partial{Offset: 500, Count: 10}, wantOff: 150, wantN: 0},
	}
	for _, tc := range tests {
		got := fetchApplyPartial(fetchSpan{off: tc.off, n: tc.n}, tc.p)
		if got.off != tc.wantOff || got.n != tc.wantN {
			t.Errorf("%d+%d %v: got %d+%d, want %d+%d", tc.off, tc.n, tc.p, got.off, got.n, tc.wantOff, tc.wantN)
		}
	}
	mem := fetchApplyPartial(fetchSpan{data: []byte("Subject: x\r\n\r\n"), inMem: true}, &imapwire.Partial{Offset: 9, Count: 100})
	if string(mem.data) != "x\r\n\r\n" {
		t.Errorf("in memory: %q", mem.data)
	}
	if got := fetchApplyPartial(fetchSpan{missing: true}, &imapwire.Partial{Offset: 1, Count: 1}); !got.missing {
		t.Error("missing section lost")
	}
	// Offsets beyond the file are clamped.
	if off, n := fetchClamp(90, 50, 100); off != 90 || n != 10 {
		t.Errorf("clamp: %d %d", off, n)
	}
	if off, n := fetchClamp(-5, 500, 100); off != 0 || n != 100 {
		t.Errorf("clamp: %d %d", off, n)
	}
}

func TestFetchScanHeader(t *testing.T) {
	long := "X-Long: " + strings.Repeat("y", 20000) + "\r\n"
	msg := "A: 1\r\n" + long + "B: 2\r\n\r\nbody\r\n"
	h, err := fetchScanHeader(strings.NewReader(msg), 1<<20)
	if err != nil || string(h) != msg[:len(msg)-len("body\r\n")] {
		t.Errorf("got %d bytes, %v", len(h), err)
	}
	// A line ending exactly at a buffer boundary is not a blank line.
	edge := "A: " + strings.Repeat("z", 8192-3) + "\r\n" + "B: 1\r\n\r\n"
	h, _ = fetchScanHeader(strings.NewReader(edge+"body"), 1<<20)
	if string(h) != edge {
		t.Errorf("boundary: got %d bytes, want %d", len(h), len(edge))
	}
	h, _ = fetchScanHeader(strings.NewReader(msg), 10)
	if string(h) != msg[:10] {
		t.Errorf("limit: %q", h)
	}
}

func TestFetchTopHeaderLen(t *testing.T) {
	long := strings.Repeat("x", 40000)
	for _, msg := range []string{
		"A: 1\r\nB: 2\r\n\r\nbody\r\n",
		"A: 1\nB: 2\n\nbody\n",
		"A: 1\r\n folded\r\n\r\n",
		"A: 1\r\nB: 2\r\n",
		"A: 1",
		"",
		"\r\nbody",
		"From someone Mon Jan  1\r\nA: 1\r\n\r\nbody",
		" leading space\r\n\r\nbody",
		"A: 1\r\nnot a field\r\n\r\nbody",
		"A: " + long + "\r\n\r\nbody",
		"A: " + long[:16384-5] + "\r\n\r\nbody",
		"A: " + long[:16384-3] + "\r\n\r\nbody",
		"X-Long: " + long + "\n\n\r\n",
		"A: 1\r\n \r\nB: 2\r\n\r\n",
	} {
		root, err := message.Parse(strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		got, err := fetchTopHeaderLen(strings.NewReader(msg))
		if err != nil || got != root.BodyStart {
			t.Errorf("%.40q: got %d, parser says %d (%v)", msg, got, root.BodyStart, err)
		}
		fetchCheckHeaderEnd(t, msg, root.BodyStart)
	}
}

// fetchCheckHeaderEnd checks fetchHeaderEnd on every prefix length that
// FETCH may have read of msg.
func fetchCheckHeaderEnd(t *testing.T, msg string, want int64) {
	t.Helper()
	for _, n := range []int{len(msg), min(len(msg), 10), min(len(msg), fetchHeadSize), min(len(msg), 100)} {
		got, ok := fetchHeaderEnd([]byte(msg[:n]), n == len(msg))
		if ok && got != want {
			t.Errorf("%.40q (first %d bytes): got %d, parser says %d", msg, n, got, want)
		}
		if !ok && n == len(msg) && len(msg) < fetchHeadSize-1 {
			t.Errorf("%.40q: whole short message not settled", msg)
		}
	}
}

func FuzzFetchTopHeaderLen(f *testing.F) {
	f.Add("A: 1\r\n\r\nbody")
	f.Add("no header\r\n\r\n")
	f.Fuzz(func(t *testing.T, msg string) {
		root, err := message.Parse(strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		got, err := fetchTopHeaderLen(strings.NewReader(msg))
		if err != nil || got != root.BodyStart {
			t.Errorf("%q: got %d, parser says %d (%v)", msg, got, root.BodyStart, err)
		}
		fetchCheckHeaderEnd(t, msg, root.BodyStart)
	})
}
