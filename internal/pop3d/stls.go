package pop3d

import (
	"crypto/tls"
)

// cmdSTLS: RFC 2595 §4 STLS. After the handshake the session starts over
// in AUTHORIZATION, knowing nothing it learned before (RFC 2595 §4: the
// client must send CAPA and authenticate again). Input the client pipelined
// behind STLS is discarded unread: it arrived in the clear and could have
// been injected by a man in the middle.
func (s *session) cmdSTLS(args string) (reply, bool) {
	if !noArgs(args) {
		return badReply("STLS takes no arguments"), false
	}
	if !s.stlsAvailable() {
		if s.isTLS {
			return badReply("TLS already active"), false
		}
		return badReply("STLS not available"), false
	}
	s.writeLine("+OK begin TLS negotiation")
	if err := s.flush(); err != nil {
		return noReply, true
	}
	if n := s.br.Buffered(); n > 0 {
		s.log.Warn("pop3 discarding input pipelined after STLS", "octets", n)
		s.br.Discard(n)
	}
	tc := tls.Server(s.raw, s.srv.TLSConfig)
	s.conn = tc
	if !s.handshake(tc) {
		return noReply, true
	}
	s.setBuffers()
	s.user = ""
	return noReply, false
}
