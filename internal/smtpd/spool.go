package smtpd

import (
	"bufio"

	"github.com/jodmai/jodmai/internal/store"
)

// spool is the memory one message in DATA uses: the body itself while it
// is at most store.InlineMax bytes (it then never touches the file
// system; the store keeps it inline in the index), the write buffer in
// front of the body writer, and the read buffer of copyBody. Spools are
// pooled by the server; a connection holds at most one, for the length of
// one Data call, so the memory is bounded per connection.
type spool struct {
	body []byte
	bw   *bufio.Writer
	copy []byte
}

// Initial and kept sizes of a spool's buffers.
const (
	spoolInitial = 16 << 10
	spoolBufSize = 16 << 10
	spoolCopy    = 32 << 10
)

// getSpool takes a spool from the server's pool.
func (s *Server) getSpool() *spool {
	if sp, ok := s.spools.Get().(*spool); ok {
		return sp
	}
	return &spool{
		body: make([]byte, 0, spoolInitial),
		bw:   bufio.NewWriterSize(nil, spoolBufSize),
		copy: make([]byte, spoolCopy),
	}
}

// putSpool returns sp once nothing uses its memory any more: after the
// body was delivered and removed. body is the finished memory body (grown
// from sp.body), or nil.
func (s *Server) putSpool(sp *spool, body []byte) {
	if cap(body) > 0 && cap(body) <= store.InlineMax+spoolInitial {
		sp.body = body[:0]
	}
	sp.bw.Reset(nil)
	s.spools.Put(sp)
}
