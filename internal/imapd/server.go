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
	"github.com/jodmai/jodmai/internal/imapwire"
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
// before Serve.
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
}

func (srv *Server) init() {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.done == nil {
		srv.done = make(chan struct{})
		srv.ls = map[net.Listener]struct{}{}
		srv.sessions = map[*session]struct{}{}
		srv.baseCtx, srv.cancel = context.WithCancel(context.Background())
	}
	if srv.Log == nil {
		srv.Log = slog.New(slog.DiscardHandler)
	}
	if srv.Timeout <= 0 {
		srv.Timeout = DefaultTimeout
	}
	if srv.PreauthTimeout <= 0 {
		srv.PreauthTimeout = DefaultPreauthTimeout
	}
	if srv.WriteTimeout <= 0 {
		srv.WriteTimeout = DefaultWriteTimeout
	}
	if srv.AppendLimit <= 0 {
		srv.AppendLimit = DefaultAppendLimit
	}
	if srv.MaxLineLength <= 0 {
		srv.MaxLineLength = imapwire.DefaultMaxLineLength
	}
}

// Serve accepts connections on l until Shutdown; it closes l when it
// returns.
func (srv *Server) Serve(l net.Listener) error {
	srv.init()
	srv.cmdOnce.Do(func() {
		srv.cmds = commandTable()
		srv.caps = capabilityList(srv.cmds)
	})
	srv.mu.Lock()
	if srv.closing {
		srv.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	srv.ls[l] = struct{}{}
	srv.mu.Unlock()
	defer func() {
		srv.mu.Lock()
		delete(srv.ls, l)
		srv.mu.Unlock()
		l.Close()
	}()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			srv.mu.Lock()
			closing := srv.closing
			srv.mu.Unlock()
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
		s := newSession(srv, c)
		srv.mu.Lock()
		if srv.closing {
			srv.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		srv.sessions[s] = struct{}{}
		srv.wg.Add(1)
		srv.mu.Unlock()
		go func() {
			defer srv.wg.Done()
			s.serve()
			srv.mu.Lock()
			delete(srv.sessions, s)
			srv.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting, tells every session "* BYE" at its next command
// boundary (at once when idle or in IDLE), and waits for them to end or for
// ctx, after which it closes the remaining connections.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.init()
	srv.mu.Lock()
	if !srv.closing {
		srv.closing = true
		close(srv.done)
	}
	for l := range srv.ls {
		l.Close()
	}
	for s := range srv.sessions {
		s.wake()
	}
	srv.mu.Unlock()
	srv.cancel()
	finished := make(chan struct{})
	go func() {
		srv.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		srv.mu.Lock()
		for s := range srv.sessions {
			s.netConn.Close()
		}
		srv.mu.Unlock()
		<-finished
		return ctx.Err()
	}
}

func (srv *Server) shuttingDown() bool {
	select {
	case <-srv.done:
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
