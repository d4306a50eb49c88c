package imapd

import (
	"bufio"

	"github.com/jodmai/jodmai/internal/inflate"
)

// compressBufSize is the size of the two read buffers of a compressed
// session (compressed input, decompressed input).
const compressBufSize = 1024

// cmdCompress is RFC 4978 COMPRESS DEFLATE: after the tagged OK both
// directions are raw DEFLATE streams (compress_deflate.go).
func cmdCompress(s *session, tag, name string, uid bool) error {
	alg, err := s.dec.ParseCompress()
	if err != nil {
		return err
	}
	// RFC 4978 §3: BAD for an unknown mechanism, NO [COMPRESSIONACTIVE]
	// when compression is already on (the capability is no longer
	// advertised then).
	if alg != "DEFLATE" {
		return bad("", "unknown compression mechanism")
	}
	if s.compressed {
		return no("COMPRESSIONACTIVE", "DEFLATE is active already")
	}
	if s.dec.Buffered() > 0 {
		// The client must wait for the OK before it compresses (RFC 4978
		// §3): bytes already here were sent without knowing whether they
		// would be read compressed, so neither reading is safe.
		return s.refusePipelined(tag, "COMPRESS")
	}
	s.tagged(tag, &status{kind: "OK", text: "DEFLATE active"})
	if err := s.flush(); err != nil {
		return err
	}
	// The decompressor (package inflate: not compress/flate's, which
	// would sit on a command ended by a partial flush) reads the
	// connection through a small buffer of its own, and the decoder reads
	// it through another: the decompressor's window already buffers what
	// it decoded, and both replace the session's 4 KB reader (empty, as
	// checked above), keeping an idle compressed session small.
	zr := inflate.NewReader(bufio.NewReaderSize(s.rawR, compressBufSize))
	s.zw = &compressWriter{w: s.rawW}
	s.rawR, s.rawW = zr, s.zw
	s.br = bufio.NewReaderSize(zr, compressBufSize)
	s.bw.Reset(s.zw)
	s.dec.Reset(s.br)
	s.enc.Reset(s.bw)
	s.compressed = true
	s.log.Debug("imap compression active")
	return errAlreadyAnswered
}
