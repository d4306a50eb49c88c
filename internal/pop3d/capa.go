package pop3d

import (
	"strings"
)

// cmdCapa: RFC 2449 §5 CAPA. The list depends on the state and on whether
// passwords may be sent in the clear (RFC 2595 §4, RFC 5034 §3).
func (s *session) cmdCapa(args string) reply {
	if !noArgs(args) {
		return badReply("CAPA takes no arguments")
	}
	w := s.bw
	w.WriteString("+OK capability list follows\r\n")
	w.WriteString("TOP\r\n")
	if s.state == stateAuthorization {
		if s.plaintextAllowed() {
			w.WriteString("USER\r\n")
			w.WriteString("SASL " + strings.Join(s.mechanisms(), " ") + "\r\n")
		}
		if s.stlsAvailable() {
			w.WriteString("STLS\r\n")
		}
	}
	w.WriteString("RESP-CODES\r\n")
	w.WriteString("AUTH-RESP-CODE\r\n")
	w.WriteString("PIPELINING\r\n")
	w.WriteString("UIDL\r\n")
	// RFC 2449 §6.7: jodmai never deletes mail on its own; only clients
	// (DELE, IMAP EXPUNGE) and the administrator do. A retention policy
	// would have to change this line.
	w.WriteString("EXPIRE NEVER\r\n")
	w.WriteString("IMPLEMENTATION jodmai\r\n")
	w.WriteString(".\r\n")
	return multiline
}
