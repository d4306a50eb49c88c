package imapd

import (
	"bytes"
	"compress/flate"
	"io"
	"strings"
	"testing"
)

// TestCompressWriterBursts: bursts written by different pooled
// compressors, each ended by a sync flush, read as one DEFLATE stream by a
// single decompressor, which sees each burst as soon as it is flushed; an
// idle writer holds no compressor.
func TestCompressWriterBursts(t *testing.T) {
	var wire bytes.Buffer
	cw := &compressWriter{w: &wire}
	zr := flate.NewReader(&wire)
	bursts := []string{
		"* 1 EXISTS\r\n",
		strings.Repeat("* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n", 500),
		"",
		"t1 OK done\r\n",
		strings.Repeat("x", 100000) + "\r\n",
	}
	for i, b := range bursts {
		if _, err := io.WriteString(cw, b); err != nil {
			t.Fatal(err)
		}
		if err := cw.Flush(); err != nil {
			t.Fatal(err)
		}
		if cw.zw != nil {
			t.Fatalf("burst %d: compressor held after Flush", i)
		}
		got := make([]byte, len(b))
		if _, err := io.ReadFull(zr, got); err != nil {
			t.Fatalf("burst %d: %v", i, err)
		}
		if string(got) != b {
			t.Fatalf("burst %d: got %d bytes, differing", i, len(got))
		}
		if wire.Len() != 0 {
			t.Fatalf("burst %d: %d bytes left unread: the reader would block on a complete response", i, wire.Len())
		}
	}
	// The repetitive burst compressed.
	var w2 bytes.Buffer
	cw2 := &compressWriter{w: &w2}
	io.WriteString(cw2, bursts[1])
	cw2.Flush()
	if w2.Len() > len(bursts[1])/10 {
		t.Errorf("compressed %d bytes to %d", len(bursts[1]), w2.Len())
	}
	cw2.release() // no-op when nothing is held
}

func BenchmarkCompressWriterBurst(b *testing.B) {
	line := []byte("* 12345 FETCH (UID 67890 FLAGS (\\Seen \\Answered) MODSEQ (123456))\r\n")
	cw := &compressWriter{w: io.Discard}
	b.ReportAllocs()
	for b.Loop() {
		for range 10 {
			cw.Write(line)
		}
		cw.Flush()
	}
}
