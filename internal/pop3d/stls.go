package pop3d

import (
	"crypto/tls"
)

// cmdSTLS: RFC 2595 §4 STLS. After the handshake the session starts over
// in AUTHORIZATION, knowing nothing it learned before (RFC 2595 §4: the
// client must send CAPA and authenticate again). Input the client pipelined
// behind STLS is discarded unread: it arrived in the clear and could have
// been injected by a man in the middle.
func (sess *session) cmdSTLS(args string) (reply, bool) {
	if !noArgs(args) {
		return badReply("STLS takes no arguments"), false
	}
	if !sess.stlsAvailable() {
		if sess.isTLS {
			return badReply("TLS already active"), false
		}
		return badReply("STLS not available"), false
	}
	sess.writeLine("+OK begin TLS negotiation")
	if err := sess.flush(); err != nil {
		return noReply, true
	}
	if n := sess.br.Buffered(); n > 0 {
		sess.log.Warn("pop3 discarding input pipelined after STLS", "octets", n)
		sess.br.Discard(n)
	}
	tc := tls.Server(sess.raw, sess.srv.TLSConfig)
	sess.conn = tc
	if !sess.handshake(tc) {
		return noReply, true
	}
	sess.setBuffers()
	sess.user = ""
	return noReply, false
}
