package imapd

import (
	"compress/flate"
	"io"
	"sync"
)

// The deflate streams of COMPRESS=DEFLATE (RFC 4978): raw DEFLATE (RFC
// 1951) in both directions, no zlib header.
//
// The server-to-client direction uses compress/flate's writer; the other
// direction has its own decoder (package inflate).
//
// Memory. A compress/flate writer costs about 1.2 MB at BestSpeed (its
// hash tables are arrays inside the compressor struct, whatever the level);
// the decoder about 35 KB (the 32 KB window the client may refer back to,
// plus Huffman tables). The decoder's window is state the client relies
// on, so each compressed session keeps its decoder. The writer's history is
// ours to drop: after a sync flush the stream is byte-aligned and has no
// final block, so the next burst of responses may come from a fresh (or
// reset) compressor that refers only to what it wrote itself, and the
// client's decompressor, which keeps its own window, reads on seamlessly.
// So a session borrows a compressor from a pool when it starts writing
// and returns it at the next flush: an idle compressed session holds no
// compressor, and the pool holds about as many as there are sessions
// writing at the same moment. BestSpeed also makes Reset cheap (the
// other levels clear 640 KB of hash chains on every Reset). The cost is
// that one flush's output cannot refer to an earlier flush's, which for
// IMAP (a command's responses form one burst) loses little.

// deflatePool holds idle BestSpeed compressors.
var deflatePool = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(io.Discard, flate.BestSpeed) // cannot fail for a valid level
	return w
}}

// compressWriter is the session's compressing layer under its bufio.Writer.
// It is used by one goroutine at a time (the session's writer).
type compressWriter struct {
	w  io.Writer     // the connection (or TLS) through the deadline writer
	zw *flate.Writer // borrowed from deflatePool between a Write and Flush
}

func (c *compressWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.zw == nil {
		c.zw = deflatePool.Get().(*flate.Writer)
		c.zw.Reset(c.w)
	}
	return c.zw.Write(p)
}

// Flush sync-flushes what was written (RFC 4978 §4: the sender flushes so
// the receiver can read every complete response) and gives the compressor
// back to the pool.
func (c *compressWriter) Flush() error {
	if c.zw == nil {
		return nil
	}
	err := c.zw.Flush()
	c.release()
	return err
}

// release returns the compressor to the pool without flushing (the
// session is ending).
func (c *compressWriter) release() {
	if c.zw == nil {
		return
	}
	c.zw.Reset(io.Discard) // drop the reference to the connection
	deflatePool.Put(c.zw)
	c.zw = nil
}
