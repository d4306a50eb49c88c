// Package eventlog owns the mail event log: one record per message event
// (received, delivered to a mailbox, queued, sent to a remote server,
// deferred, bounced, rejected), kept as JSON lines in DATA/log/events.jsonl
// so that an operator (and the web admin) can search what happened to a
// message.
//
// The events are the server's own slog lines: a log line with an "event"
// attribute is a mail event. Handler wraps the server's slog handler and
// copies every such line, with all its attributes, to the Log; protocol
// packages only log. The field names are the same in both places: event,
// qid (the queue id, also the "queued as" id of the 250 reply), msgid
// (the Message-ID, without angle brackets), from, rcpt (one address) or
// rcpts (a list), reason, code.
//
// Durability: the event log is a log, not mail. Lines are buffered and
// appended by a flusher goroutine moments later, many to one write(2), and
// fsynced at most every SyncInterval (and at rotation and Close), never on
// a mail path: a crash or power cut loses at most the last seconds of
// events (the mail itself is durable before it is acknowledged, whatever
// this file says), and an operator looking into a power cut still finds
// what came before it. The file is size-bounded: past MaxSize it is renamed to
// events.jsonl.1 (the older ones shift up) and the oldest beyond Keep is
// removed. A search running during a rotation may miss or repeat a few
// events.
package eventlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/jodmai/jodmai/internal/safeio"
)

// Event kinds: the values of the "event" attribute.
const (
	Received  = "received"  // a message was accepted (the 250 after DATA)
	Delivered = "delivered" // filed into local mailboxes (a received message, or a DSN the queue files for a local sender)
	Queued    = "queued"    // added to the outbound queue
	Sent      = "sent"      // a remote server accepted it for a recipient
	Deferred  = "deferred"  // a delivery attempt failed temporarily
	Bounced   = "bounced"   // delivery failed for good (a DSN follows when asked for)
	Rejected  = "rejected"  // refused in the SMTP dialogue, with the reason
)

// Kinds lists every event kind.
var Kinds = []string{Received, Delivered, Queued, Sent, Deferred, Bounced, Rejected}

// Defaults for Options.
const (
	DefaultMaxSize = 32 << 20
	DefaultKeep    = 4
)

// SyncInterval is how often written events are fsynced.
const SyncInterval = 2 * time.Second

// FileName is the current event log under the directory.
const FileName = "events.jsonl"

// Dir returns the event log directory of a data directory.
func Dir(dataDir string) string { return filepath.Join(dataDir, "log") }

// Options bound the log's size.
type Options struct {
	// MaxSize is the size in bytes past which the current file is
	// rotated; 0: DefaultMaxSize.
	MaxSize int64
	// Keep is how many files (the current one included) are kept; 0:
	// DefaultKeep.
	Keep int
}

// maxPending is how many bytes of lines may wait for the flusher before
// a writer flushes them itself.
const maxPending = 256 << 10

// Log appends events to the files of one directory. Its methods are safe
// for concurrent use.
//
// Write only appends the line to a buffer and wakes a flusher goroutine,
// which writes whatever has gathered with one write(2): the session that
// logs an event does not wait for the file (a system call is dear in a
// sandbox such as gVisor), and under load many events share one write.
type Log struct {
	dir string

	mu      sync.Mutex
	opts    Options
	pending []byte // lines not yet written
	closed  bool

	wake chan struct{} // capacity 1
	stop chan struct{}
	done chan struct{}

	flushMu sync.Mutex // serializes writing; guards f and size
	f       *os.File
	size    int64
	// unsynced: written since the last fsync.
	unsynced bool
	spare    []byte // the previous pending buffer, reused
}

// Open opens (creating) the event log in dir.
func Open(dir string, opts Options) (*Log, error) {
	if err := safeio.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("event log: %w", err)
	}
	l := &Log{dir: dir, opts: withDefaults(opts), wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if err := l.open(); err != nil {
		return nil, err
	}
	go l.flusher()
	return l, nil
}

func withDefaults(opts Options) Options {
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.Keep <= 0 {
		opts.Keep = DefaultKeep
	}
	return opts
}

func (l *Log) open() error {
	f, err := os.OpenFile(filepath.Join(l.dir, FileName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("event log: %w", err)
	}
	l.f, l.size = f, st.Size()
	if st.Size() == 0 {
		// Possibly new: its name must survive a power cut too.
		if err := safeio.SyncDir(l.dir); err != nil {
			return fmt.Errorf("event log: %w", err)
		}
	}
	return nil
}

// SetOptions changes the size bounds (on reload); they apply from the
// next write.
func (l *Log) SetOptions(opts Options) {
	l.mu.Lock()
	l.opts = withDefaults(opts)
	l.mu.Unlock()
}

// Write appends one event, given as its JSON object (one line, no
// newline). The line reaches the file moments later (Flush: now).
func (l *Log) Write(line []byte) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("event log: closed")
	}
	l.pending = append(append(l.pending, line...), '\n')
	full := len(l.pending) >= maxPending
	l.mu.Unlock()
	if full {
		return l.Flush()
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return nil
}

func (l *Log) flusher() {
	defer close(l.done)
	tick := time.NewTicker(SyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-l.wake:
			l.Flush()
		case <-tick.C:
			l.sync()
		case <-l.stop:
			return
		}
	}
}

// sync fsyncs what was written since the last sync.
func (l *Log) sync() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	return l.syncLocked()
}

// syncLocked is sync for a caller holding flushMu.
func (l *Log) syncLocked() error {
	if l.f == nil || !l.unsynced {
		return nil
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("event log: fsync: %w", err)
	}
	l.unsynced = false
	return nil
}

// Flush writes the pending lines to the file, rotating it when full.
func (l *Log) Flush() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	b := l.pending
	l.pending = l.spare[:0]
	opts := l.opts
	l.mu.Unlock()
	defer func(orig []byte) { l.spare = orig[:0] }(b)
	for len(b) > 0 {
		if l.f == nil {
			return fmt.Errorf("event log: closed")
		}
		n := len(b)
		if l.size+int64(n) > opts.MaxSize {
			// What fits, in whole lines; at least one line into an
			// empty file.
			room := max(0, opts.MaxSize-l.size)
			n = bytes.LastIndexByte(b[:min(int64(len(b)), room)], '\n') + 1
			if n == 0 && l.size == 0 {
				n = bytes.IndexByte(b, '\n') + 1
			}
		}
		if n > 0 {
			w, err := l.f.Write(b[:n])
			l.size += int64(w)
			l.unsynced = l.unsynced || w > 0
			if err != nil {
				return fmt.Errorf("event log: %w", err)
			}
			b = b[n:]
		}
		if len(b) > 0 {
			if err := l.rotate(opts.Keep); err != nil {
				return err
			}
		}
	}
	return nil
}

// rotate shifts events.jsonl.N up by one, dropping the oldest, and starts
// a new current file. The caller holds flushMu.
func (l *Log) rotate(keep int) error {
	l.syncLocked() // best effort: the file is full either way
	l.f.Close()
	l.f = nil
	base := filepath.Join(l.dir, FileName)
	os.Remove(base + "." + strconv.Itoa(keep-1))
	for i := keep - 2; i >= 1; i-- {
		os.Rename(base+"."+strconv.Itoa(i), base+"."+strconv.Itoa(i+1))
	}
	if keep > 1 {
		if err := os.Rename(base, base+".1"); err != nil {
			return fmt.Errorf("event log: rotate: %w", err)
		}
	} else if err := os.Remove(base); err != nil {
		return fmt.Errorf("event log: rotate: %w", err)
	}
	return l.open()
}

// Close writes what is pending and closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	err := l.Flush()
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	if serr := l.syncLocked(); err == nil {
		err = serr
	}
	if l.f != nil {
		if cerr := l.f.Close(); err == nil {
			err = cerr
		}
		l.f = nil
	}
	return err
}

// Event is one event as read back.
type Event struct {
	Time  time.Time `json:"time"`
	Kind  string    `json:"event"`
	QID   string    `json:"qid,omitempty"`
	MsgID string    `json:"msgid,omitempty"`
	From  string    `json:"from,omitempty"`
	// Rcpts are the recipients the event is about (rcpt or rcpts).
	Rcpts  []string `json:"rcpts,omitempty"`
	Reason string   `json:"reason,omitempty"`
	// Fields are all the line's attributes (the ones above included),
	// as logged: numbers, strings, lists.
	Fields map[string]any `json:"-"`
}

// parseEvent decodes one line; ok is false for a damaged line.
func parseEvent(line []byte) (Event, bool) {
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		return Event{}, false
	}
	e := Event{Fields: m}
	str := func(k string) string { s, _ := m[k].(string); return s }
	t, err := time.Parse(time.RFC3339Nano, str("time"))
	if err != nil {
		return Event{}, false
	}
	e.Time, e.Kind, e.QID, e.MsgID, e.From, e.Reason = t, str("event"), str("qid"), str("msgid"), str("from"), str("reason")
	if r := str("rcpt"); r != "" {
		e.Rcpts = append(e.Rcpts, r)
	}
	if l, ok := m["rcpts"].([]any); ok {
		for _, v := range l {
			if s, ok := v.(string); ok {
				e.Rcpts = append(e.Rcpts, s)
			}
		}
	}
	return e, true
}

// files returns the log's files, newest first.
func files(dir string) []string {
	base := filepath.Join(dir, FileName)
	out := []string{base}
	for i := 1; ; i++ {
		p := base + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err != nil {
			return out
		}
		out = append(out, p)
	}
}

// scanLines calls fn for each line of r.
func scanLines(r io.Reader, fn func([]byte)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: gather it.
			buf := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				buf = append(buf, line...)
			}
			line = buf
		}
		if l := bytes.TrimSpace(line); len(l) > 0 {
			fn(l)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
