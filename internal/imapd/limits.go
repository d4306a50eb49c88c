package imapd

import (
	"sync/atomic"
	"time"

	"github.com/jodmai/jodmai/internal/imapwire"
)

// Limits are an IMAP server's limits and timeouts: at start the Server
// fields of the same names; SetLimits replaces them while it serves. Zero
// fields mean the defaults.
type Limits struct {
	Timeout, PreauthTimeout time.Duration
	WriteTimeout            time.Duration
	MaxLineLength           int
	AppendLimit             int64
}

// limitsVar holds the limits SetLimits set; nil: the Server fields.
type limitsVar = atomic.Pointer[Limits]

// SetLimits replaces the server's limits and timeouts for the sessions
// that start from now on (what CAPABILITY announces as APPENDLIMIT and
// what they enforce); sessions already open keep the limits they started
// with. It is safe to call while the server runs.
func (s *Server) SetLimits(l Limits) { s.limits.Store(&l) }

// sessionLimits are the limits a new session gets.
func (s *Server) sessionLimits() Limits {
	if l := s.limits.Load(); l != nil {
		return *l
	}
	return Limits{Timeout: s.Timeout, PreauthTimeout: s.PreauthTimeout, WriteTimeout: s.WriteTimeout, MaxLineLength: s.MaxLineLength, AppendLimit: s.AppendLimit}
}

func (l *Limits) timeout() time.Duration {
	if l.Timeout > 0 {
		return l.Timeout
	}
	return DefaultTimeout
}

func (l *Limits) preauthTimeout() time.Duration {
	if l.PreauthTimeout > 0 {
		return l.PreauthTimeout
	}
	return DefaultPreauthTimeout
}

func (l *Limits) writeTimeout() time.Duration {
	if l.WriteTimeout > 0 {
		return l.WriteTimeout
	}
	return DefaultWriteTimeout
}

func (l *Limits) appendLimit() int64 {
	if l.AppendLimit > 0 {
		return l.AppendLimit
	}
	return DefaultAppendLimit
}

func (l *Limits) maxLineLength() int {
	if l.MaxLineLength > 0 {
		return l.MaxLineLength
	}
	return imapwire.DefaultMaxLineLength
}
