package eventlog

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHandlerAndSearch(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var text bytes.Buffer
	// The text log is at warn: events still reach the event log.
	log := slog.New(NewHandler(slog.NewTextHandler(&text, &slog.HandlerOptions{Level: slog.LevelWarn}), l))
	conn := log.With("cid", 7, "remote", "192.0.2.1", slog.Group("g", "inner", true))
	conn.Info("not an event", "x", 1)
	conn.WithGroup("g2").Info("grouped: not an event", "event", Received)
	conn.Info("message received", "event", Received, "qid", "Q1", "msgid", "a@b", "from", "Alice@Example.org", "rcpts", []string{"bob@example.com", "carol@example.net"})
	log.Info("delivery", "event", Sent, "qid", "Q1", "msgid", "a@b", "rcpt", "carol@example.net", "code", 250)
	log.Info("rcpt refused", "event", Rejected, "from", "x@y.test", "rcpt", "nobody@example.com", "reason", "no such user", "code", 550)
	log.Warn("something", "event", Deferred, "qid", "Q2", "rcpt", "dave@example.net", "delay", 3*time.Second, "err", fmt.Errorf("boom"))
	if strings.Contains(text.String(), "message received") || !strings.Contains(text.String(), "something") {
		t.Fatalf("text log filtering wrong:\n%s", text.String())
	}

	all, err := l.Search(Query{})
	if err != nil || len(all) != 4 {
		t.Fatalf("all: %d %v", len(all), err)
	}
	if all[0].Kind != Deferred || all[3].Kind != Received {
		t.Fatalf("not newest first: %s ... %s", all[0].Kind, all[3].Kind)
	}
	r := all[3]
	if r.QID != "Q1" || r.MsgID != "a@b" || len(r.Rcpts) != 2 || r.Fields["cid"] != float64(7) || r.Fields["g.inner"] != true {
		t.Fatalf("received event: %+v", r)
	}
	if all[0].Fields["err"] != "boom" || all[0].Fields["delay"] != "3s" {
		t.Fatalf("deferred fields: %v", all[0].Fields)
	}
	for _, c := range []struct {
		q    Query
		want int
	}{
		{Query{From: "alice@example.org"}, 1},
		{Query{From: "@example.org"}, 1},
		{Query{To: "carol@example.net"}, 2},
		{Query{To: "example.com"}, 2},
		{Query{MsgID: "<a@b>"}, 2},
		{Query{QID: "Q1", Kind: Sent}, 1},
		{Query{Kind: Rejected}, 1},
		{Query{Since: time.Now().Add(time.Hour)}, 0},
		{Query{Until: time.Now().Add(time.Hour)}, 4},
		{Query{Limit: 2}, 2},
	} {
		got, err := Search(dir, c.q)
		if err != nil || len(got) != c.want {
			t.Errorf("%+v: %d events, want %d (%v)", c.q, len(got), c.want, err)
		}
	}
}

// TestEncoding: every string survives the JSON line (invalid UTF-8 as
// U+FFFD), and every attribute kind encodes.
func TestEncoding(t *testing.T) {
	l, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	log := slog.New(NewHandler(slog.DiscardHandler, l))
	weird := "we\"ird\\ \x01\n\t\r é 日本 \u2028"
	log.Info("m\"sg", "event", Rejected, "from", weird+"\xff", "rcpts", []string{weird}, "n", -3, "u", uint64(7), "f", 1.5, "ok", true,
		"when", time.Unix(0, 0), "err", fmt.Errorf("e\x00"), "any", map[string]int{"a": 1}, slog.Group("g", "k", "v"), "key\"q", 1)
	evs, err := l.Search(Query{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	f := evs[0].Fields
	if f["from"] != weird+"\ufffd" || evs[0].Rcpts[0] != weird || f["msg"] != "m\"sg" || f["n"] != float64(-3) || f["u"] != float64(7) ||
		f["f"] != 1.5 || f["ok"] != true || f["when"] != "1970-01-01T00:00:00Z" || f["err"] != "e\x00" || f["g.k"] != "v" || f["key\"q"] != float64(1) {
		t.Fatalf("fields: %#v", f)
	}
	if m, ok := f["any"].(map[string]any); !ok || m["a"] != float64(1) {
		t.Fatalf("any: %#v", f["any"])
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{MaxSize: 1000, Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	log := slog.New(NewHandler(slog.DiscardHandler, l))
	for i := range 100 {
		log.Info("x", "event", Queued, "qid", fmt.Sprintf("Q%03d", i))
		if i%7 == 0 {
			l.Flush() // batches of several lines, and single lines
		}
	}
	l.Flush()
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(names) != 3 {
		t.Fatalf("files: %v", names)
	}
	var total int64
	for _, n := range names {
		st, _ := os.Stat(n)
		total += st.Size()
		if st.Size() > 1000 {
			t.Fatalf("%s has %d bytes", n, st.Size())
		}
	}
	got, err := Search(dir, Query{Limit: 1000})
	if err != nil || len(got) == 0 || got[0].QID != "Q099" {
		t.Fatalf("newest: %v %v", got, err)
	}
	for i := 1; i < len(got); i++ {
		if got[i].QID >= got[i-1].QID {
			t.Fatalf("order at %d: %s after %s", i, got[i].QID, got[i-1].QID)
		}
	}
	// Limit spanning files keeps the newest.
	got, _ = Search(dir, Query{Limit: len(got) - 1})
	if got[0].QID != "Q099" {
		t.Fatalf("limited: %s", got[0].QID)
	}
}

func TestMessageID(t *testing.T) {
	for in, want := range map[string]string{
		"From: a\r\nMessage-ID: <x@y>\r\n\r\nbody":              "x@y",
		"message-id:\r\n <folded@y.test>\r\nSubject: s\r\n\r\n": "folded@y.test",
		"Subject: s\r\n\r\nMessage-ID: <body@x>\r\n":            "",
		"Message-Id: bare@x\n\n":                                "bare@x",
	} {
		if got := MessageIDOf([]byte(in)); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
		if got := MessageID(strings.NewReader(in), int64(len(in))); got != want {
			t.Errorf("reader %q: %q, want %q", in, got, want)
		}
	}
}

// BenchmarkEvent is the cost of one event line (the smtpd "message
// received" line): encoding and one write(2), no fsync.
func BenchmarkEvent(b *testing.B) {
	l, err := Open(b.TempDir(), Options{MaxSize: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	log := slog.New(NewHandler(slog.DiscardHandler, l)).With("cid", "abcdefgh", "proto", "smtp", "remote", "127.0.0.1:12345")
	rcpts := []string{"alice@example.org"}
	b.ReportAllocs()
	for b.Loop() {
		log.Info("message received", "event", Received, "qid", "kyxsqmrwszvniwfbj42c", "msgid", "local-1@remote.test", "from", "sender@remote.test",
			"rcpts", rcpts, "mailboxes", 1, "queued", 0, "size", 4096, "stored_size", 4300, "tls", "", "chunking", false)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"90m":                  now.Add(-90 * time.Minute),
		"7d":                   now.AddDate(0, 0, -7),
		"2026-12-01T00:00:00Z": time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
	} {
		if got, err := ParseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "yesterday", "-1h", "3"} {
		if _, err := ParseSince(bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
