// Package netio holds the connection plumbing the protocol servers
// (smtpd, pop3d, imapd) share, so that they time out alike.
package netio

import (
	"net"
	"time"
)

// DeadlineWriter writes to Conn, first moving Conn's write deadline to
// Timeout from now: each write, not the whole session, gets the timeout,
// so a client that stops reading is dropped after Timeout while a slow
// one downloading a large message is not.
//
// Conn may be a *tls.Conn (its deadlines are those of the connection under
// it); after STARTTLS, point Conn at the new *tls.Conn. Timeout must be
// more than 0.
type DeadlineWriter struct {
	Conn    net.Conn
	Timeout time.Duration
}

// Write sets the deadline and writes p.
func (w *DeadlineWriter) Write(p []byte) (int, error) {
	w.Conn.SetWriteDeadline(time.Now().Add(w.Timeout))
	return w.Conn.Write(p)
}
