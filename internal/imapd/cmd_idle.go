package imapd

import (
	"time"
)

// cmdIdle is RFC 2177 / RFC 9051 §6.3.13 IDLE: updates are sent as they
// happen until the client sends DONE on a line of its own.
func cmdIdle(s *session, tag, name string, uid bool) error {
	if err := s.dec.ExpectCRLF(); err != nil {
		return err
	}
	s.enc.Atom("+ idling").CRLF()
	if s.sel != nil {
		// A failure is logged, not answered: after the continuation a
		// tagged NO would end IDLE under a client about to send DONE.
		if err := s.sync(true); err != nil {
			s.log.Warn("sync at idle start", "err", err)
		}
	}
	if err := s.flush(); err != nil {
		return err
	}
	// The reader goroutine owns the decoder until it reports; this
	// goroutine only writes.
	done := make(chan error, 1)
	s.conn.SetReadDeadline(time.Now().Add(s.lim.timeout()))
	go func() { done <- s.dec.ReadIdleDone() }()
	var sub <-chan struct{}
	if s.sub != nil {
		sub = s.sub.C
	}
	for {
		select {
		case err := <-done:
			if err != nil {
				return err
			}
			return nil
		case <-sub:
			if s.sel != nil {
				if err := s.sync(true); err != nil {
					s.log.Warn("sync during idle", "err", err)
				}
			}
			if err := s.flush(); err != nil {
				s.conn.Close()
				<-done
				return err
			}
		case <-s.srv.done:
			s.bye("server shutting down")
			// Stop the reader (a read past its deadline fails at once);
			// the session then closes the connection gracefully.
			s.netConn.SetReadDeadline(time.Now())
			<-done
			return errAlreadyAnswered
		}
	}
}
