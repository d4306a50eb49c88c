package imapd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/userdb"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("imapd: server closed")

// Defaults for zero Server fields.
const (
	DefaultTimeout        = 30 * time.Minute // RFC 9051 §5.4: at least 30 minutes
	DefaultPreauthTimeout = time.Minute
	DefaultWriteTimeout   = time.Minute
	DefaultAppendLimit    = 50 << 20
)

// Server is an IMAP server. Exported fields are its configuration; set them
// before Serve and do not change them afterwards. The server leaves them
// as set: zero values mean the defaults.
type Server struct {
	// Hostname names the server in the greeting.
	Hostname string
	// Store is the mail store.
	Store *store.Store
	// Users is the directory (quotas).
	Users *userdb.DB
	// Auth checks logins.
	Auth *auth.Authenticator
	// TLSConfig enables STARTTLS; nil: not offered.
	TLSConfig *tls.Config
	// ImplicitTLS: the listener hands out *tls.Conn (imaps).
	ImplicitTLS bool
	// Timeout, PreauthTimeout, WriteTimeout, MaxLineLength and
	// AppendLimit are the limits at start; SetLimits replaces them for
	// new sessions.
	//
	// Timeout is the autologout timer of authenticated sessions, IDLE
	// included; PreauthTimeout the one before login.
	Timeout, PreauthTimeout time.Duration
	// WriteTimeout bounds each write.
	WriteTimeout time.Duration
	// MaxLineLength bounds a command line (literals excluded).
	MaxLineLength int
	// AppendLimit is the largest message APPEND accepts (RFC 7889).
	AppendLimit int64
	// Log receives one line per session event; nil discards.
	Log *slog.Logger

	limits   limitsVar // SetLimits
	mu       sync.Mutex
	ls       map[net.Listener]struct{}
	sessions map[*session]struct{}
	closing  bool
	done     chan struct{} // closed by Shutdown
	wg       sync.WaitGroup
	cmdOnce  sync.Once
	cmds     map[string]command
	caps     []capability // capabilityList(cmds)

	// baseCtx is the context of every session's store and auth calls;
	// Shutdown cancels it, so a session blocked in one (a throttle
	// wait, a busy store) ends instead of holding Shutdown up.
	baseCtx context.Context
	cancel  context.CancelFunc
	log     *slog.Logger // Log or a discarding one
}

func (s *Server) init() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		s.done = make(chan struct{})
		s.ls = map[net.Listener]struct{}{}
		s.sessions = map[*session]struct{}{}
		s.baseCtx, s.cancel = context.WithCancel(context.Background())
		s.log = s.Log
		if s.log == nil {
			s.log = slog.New(slog.DiscardHandler)
		}
	}
}

// Serve accepts connections on l until Shutdown; it closes l when it
// returns.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	s.cmdOnce.Do(func() {
		s.cmds = commandTable()
		s.caps = capabilityList(s.cmds)
	})
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.ls[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.ls, l)
		s.mu.Unlock()
		l.Close()
	}()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		sess := newSession(s, c)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.sessions[sess] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			sess.serve()
			s.mu.Lock()
			delete(s.sessions, sess)
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting, tells every session "* BYE" at its next command
// boundary (at once when idle or in IDLE), and waits for them to end or for
// ctx, after which it closes the remaining connections.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.done)
	}
	for l := range s.ls {
		l.Close()
	}
	for sess := range s.sessions {
		sess.wake()
	}
	s.mu.Unlock()
	s.cancel()
	finished := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for sess := range s.sessions {
			sess.netConn.Close()
		}
		s.mu.Unlock()
		<-finished
		return ctx.Err()
	}
}

func (s *Server) shuttingDown() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

var cidEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func newCID() string {
	var b [6]byte
	rand.Read(b[:])
	return cidEncoding.EncodeToString(b[:])
}
