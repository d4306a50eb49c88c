package pop3d

import (
	"sync/atomic"
	"time"
)

// Limits are a POP3 server's limits and timeouts: at start the Server
// fields of the same names; SetLimits replaces them while it serves. Zero
// fields mean the defaults.
type Limits struct {
	MaxLineLength int
	Timeout       time.Duration
	WriteTimeout  time.Duration
}

// limitsVar holds the limits SetLimits set; nil: the Server fields.
type limitsVar = atomic.Pointer[Limits]

// SetLimits replaces the server's limits and timeouts for the sessions
// that start from now on; sessions already open keep the limits they
// started with. It is safe to call while the server runs.
func (s *Server) SetLimits(l Limits) { s.limits.Store(&l) }

// sessionLimits are the limits a new session gets.
func (s *Server) sessionLimits() Limits {
	if l := s.limits.Load(); l != nil {
		return *l
	}
	return Limits{MaxLineLength: s.MaxLineLength, Timeout: s.Timeout, WriteTimeout: s.WriteTimeout}
}

func (l *Limits) timeout() time.Duration {
	if l.Timeout > 0 {
		return l.Timeout
	}
	return DefaultTimeout
}

func (l *Limits) writeTimeout() time.Duration {
	if l.WriteTimeout > 0 {
		return l.WriteTimeout
	}
	return DefaultWriteTimeout
}

func (l *Limits) maxLineLength() int {
	if l.MaxLineLength > 0 {
		return l.MaxLineLength
	}
	return DefaultMaxLineLength
}

func (l *Limits) maxAuthLine() int {
	return max(l.maxLineLength(), maxAuthLineLength)
}
