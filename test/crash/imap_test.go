package crash

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// The IMAP part of the power-loss test: one account that only IMAP
// touches. Its worker APPENDs to Archive, COPYs from there to Trash,
// MOVEs to Junk, and expunges (STORE \Deleted, UID EXPUNGE) in all three;
// the model knows, for each mailbox and marker, the fewest and the most
// copies the mailbox may hold (an operation whose reply a kill cut off may
// or may not have happened). verify compares the server with it.

const (
	imapUser = "imap@example.org"
	imapPass = "crash-password-imap"
)

// imapBoxes are the mailboxes the IMAP worker uses (all exist in a new
// account).
var imapBoxes = []string{"Archive", "Trash", "Junk"}

// span is how many copies of a message a mailbox may hold.
type span struct{ lo, hi int }

// imapModel is what the IMAP client knows for sure.
type imapModel struct {
	mu    sync.Mutex
	boxes map[string]map[string]*span // mailbox -> marker -> span
	sent  map[string]bool             // markers ever appended

	appends, appendOK, copies, copyOK, moves, moveOK, expunges, expungeOK int
	sessions, verified                                                    int
	// Broken promises found by verify.
	lost, back, foreign int
	errs                []string
}

func newIMAPModel() *imapModel {
	m := &imapModel{boxes: map[string]map[string]*span{}, sent: map[string]bool{}}
	for _, b := range imapBoxes {
		m.boxes[b] = map[string]*span{}
	}
	return m
}

// at returns the span of marker in box, creating it.
func (m *imapModel) at(box, marker string) *span {
	s := m.boxes[box][marker]
	if s == nil {
		s = &span{}
		m.boxes[box][marker] = s
	}
	return s
}

// change records an operation that adds d (+1 or -1) copies of marker to
// box: begin widens the span toward the change, then ok (the server said
// OK) or failed (the server said NO or BAD) settles it; without either
// (the reply never came) the span stays wide.
func (m *imapModel) begin(box, marker string, d int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.at(box, marker)
	if d > 0 {
		s.hi += d
	} else {
		s.lo += d
	}
}

func (m *imapModel) settle(box, marker string, d int, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.at(box, marker)
	switch {
	case ok && d > 0:
		s.lo += d
	case ok:
		s.hi += d
	case d > 0:
		s.hi -= d
	default:
		s.lo -= d
	}
}

func (m *imapModel) count(f *int) {
	m.mu.Lock()
	*f++
	m.mu.Unlock()
}

func (m *imapModel) fail(format string, a ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.errs = append(m.errs, fmt.Sprintf(format, a...))
}

// dialIMAP logs in to the IMAP account; conn is there for deadlines.
func dialIMAP(addr string) (*imapclient.Client, net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return nil, nil, err
	}
	conn.SetDeadline(time.Now().Add(ioTimeout))
	c := imapclient.New(conn, nil)
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, nil, err
	}
	if err := c.Login(imapUser, imapPass).Wait(); err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, conn, nil
}

// isNo reports whether err is the server's NO or BAD (the command is known
// to have failed), not a broken connection.
func isNo(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie)
}

// markers fetches the marker of every message of the selected mailbox,
// checking each body against its checksum when full is set.
func markers(c *imapclient.Client, conn net.Conn, full bool) (map[imap.UID]string, error) {
	conn.SetDeadline(time.Now().Add(ioTimeout))
	section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"X-Crash-Marker"}, Peek: true}
	if full {
		section = &imap.FetchItemBodySection{Peek: true}
	}
	msgs, err := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return nil, err
	}
	out := map[imap.UID]string{}
	for _, msg := range msgs {
		var body []byte
		for _, b := range msg.BodySection {
			body = b.Bytes
		}
		if full {
			marker, err := parseStored(body)
			if err != nil {
				return nil, fmt.Errorf("UID %d: %w", msg.UID, err)
			}
			out[msg.UID] = marker
			continue
		}
		h := strings.ReplaceAll(string(body), "\r\n", "\n")
		v, ok := strings.CutPrefix(strings.TrimSpace(h), "X-Crash-Marker: ")
		if !ok {
			return nil, fmt.Errorf("UID %d: no marker in %q", msg.UID, body)
		}
		out[msg.UID] = strings.TrimSpace(v)
	}
	return out, nil
}

// verify compares every mailbox of the IMAP account with the model (the
// server running, no IMAP worker), reports what is outside its span, and
// then takes the server's counts as the model's: every span is exact
// again. what says when, for messages.
func (m *imapModel) verify(addr, what string) error {
	c, conn, err := dialIMAP(addr)
	if err != nil {
		return fmt.Errorf("IMAP login: %w", err)
	}
	defer c.Close()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.verified++
	for _, box := range imapBoxes {
		conn.SetDeadline(time.Now().Add(ioTimeout))
		if _, err := c.Select(box, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			return fmt.Errorf("EXAMINE %s: %w", box, err)
		}
		got, err := markers(c, conn, true)
		if err != nil {
			m.errs = append(m.errs, fmt.Sprintf("%s: %s: %v", what, box, err))
			return fmt.Errorf("FETCH %s: %w", box, err)
		}
		counts := map[string]int{}
		for _, mk := range got {
			counts[mk]++
		}
		for _, mk := range slices.Sorted(maps.Keys(m.boxes[box])) {
			s := m.boxes[box][mk]
			c := counts[mk]
			switch {
			case c < s.lo:
				m.lost += s.lo - c
				m.errs = append(m.errs, fmt.Sprintf("%s: IMAP %s holds %d copies of %s, want %d to %d: acknowledged copy lost", what, box, c, mk, s.lo, s.hi))
			case c > s.hi:
				m.back += c - s.hi
				m.errs = append(m.errs, fmt.Sprintf("%s: IMAP %s holds %d copies of %s, want %d to %d: expunged or moved copy back, or duplicated", what, box, c, mk, s.lo, s.hi))
			}
			s.lo, s.hi = c, c
		}
		for mk, c := range counts {
			if _, ok := m.boxes[box][mk]; !ok {
				m.foreign += c
				m.errs = append(m.errs, fmt.Sprintf("%s: IMAP %s holds %s, which was never put there", what, box, mk))
				m.boxes[box][mk] = &span{c, c}
			}
		}
	}
	c.Logout().Wait()
	return nil
}

// imapWorker runs IMAP sessions until stop.
func imapWorker(addr string, rc *roundCtl, rng *rand.Rand, m *imapModel) {
	seq := 0
	for !stopped(rc.stop) {
		c, conn, err := dialIMAP(addr)
		if err != nil {
			pause(rc.stop, 20*time.Millisecond)
			continue
		}
		m.count(&m.sessions)
		imapSession(c, conn, rc, rng, m, &seq)
		c.Close()
	}
}

// imapSession runs up to 30 operations in one session.
func imapSession(c *imapclient.Client, conn net.Conn, rc *roundCtl, rng *rand.Rand, m *imapModel, seq *int) {
	deadline := func() { conn.SetDeadline(time.Now().Add(ioTimeout)) }
	selectBox := func(box string) (map[imap.UID]string, bool) {
		deadline()
		if _, err := c.Select(box, nil).Wait(); err != nil {
			return nil, false
		}
		uids, err := markers(c, conn, false)
		return uids, err == nil
	}
	archive, ok := selectBox("Archive")
	if !ok {
		return
	}
	pickUID := func() (imap.UID, string, bool) {
		if len(archive) == 0 {
			return 0, "", false
		}
		uids := slices.Sorted(maps.Keys(archive))
		u := uids[rng.IntN(len(uids))]
		return u, archive[u], true
	}
	for i := 0; i < 30 && !stopped(rc.stop); i++ {
		deadline()
		switch k := rng.IntN(100); {
		case k < 50 || len(archive) == 0: // APPEND
			marker := fmt.Sprintf("r%03d-i-%05d", rc.round, *seq)
			*seq++
			msg := newMessage(rng, marker, []string{imapUser})
			m.mu.Lock()
			m.sent[marker] = true
			m.appends++
			m.mu.Unlock()
			m.begin("Archive", marker, 1)
			cmd := c.Append("Archive", int64(len(msg)), nil)
			if _, err := cmd.Write(msg); err != nil {
				return
			}
			if err := cmd.Close(); err != nil {
				return
			}
			data, err := cmd.Wait()
			if err != nil {
				if isNo(err) {
					m.settle("Archive", marker, 1, false)
					m.fail("round %d: APPEND %s: %v", rc.round, marker, err)
					continue
				}
				return
			}
			m.settle("Archive", marker, 1, true)
			m.count(&m.appendOK)
			if data.UID != 0 {
				archive[data.UID] = marker
			}
		case k < 65: // UID COPY to Trash
			u, marker, _ := pickUID()
			m.count(&m.copies)
			m.begin("Trash", marker, 1)
			if _, err := c.Copy(imap.UIDSetNum(u), "Trash").Wait(); err != nil {
				if isNo(err) {
					m.settle("Trash", marker, 1, false)
					continue
				}
				return
			}
			m.settle("Trash", marker, 1, true)
			m.count(&m.copyOK)
		case k < 80: // UID MOVE to Junk
			u, marker, _ := pickUID()
			m.count(&m.moves)
			m.begin("Archive", marker, -1)
			m.begin("Junk", marker, 1)
			if _, err := c.Move(imap.UIDSetNum(u), "Junk").Wait(); err != nil {
				if isNo(err) {
					m.settle("Archive", marker, -1, false)
					m.settle("Junk", marker, 1, false)
					continue
				}
				return
			}
			m.settle("Archive", marker, -1, true)
			m.settle("Junk", marker, 1, true)
			m.count(&m.moveOK)
			delete(archive, u)
		case k < 93: // expunge one message of Archive
			u, marker, _ := pickUID()
			if !expunge(c, m, "Archive", map[imap.UID]string{u: marker}) {
				return
			}
			delete(archive, u)
		default: // empty Trash or Junk, then back to Archive
			box := imapBoxes[1+rng.IntN(2)]
			all, ok := selectBox(box)
			if !ok {
				return
			}
			if len(all) > 0 && !expunge(c, m, box, all) {
				return
			}
			if archive, ok = selectBox("Archive"); !ok {
				return
			}
		}
	}
	deadline()
	c.Logout().Wait()
}

// expunge marks the messages uids (-> marker) of the selected mailbox box
// \Deleted and expunges exactly them (UID EXPUNGE); false means the
// connection broke.
func expunge(c *imapclient.Client, m *imapModel, box string, uids map[imap.UID]string) bool {
	var set imap.UIDSet
	for u := range uids {
		set.AddNum(u)
	}
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return isNo(err)
	}
	m.count(&m.expunges)
	for _, mk := range uids {
		m.begin(box, mk, -1)
	}
	err := c.UIDExpunge(set).Close()
	if err != nil && !isNo(err) {
		return false
	}
	for _, mk := range uids {
		m.settle(box, mk, -1, err == nil)
	}
	if err == nil {
		m.count(&m.expungeOK)
	}
	return true
}

// summary describes the IMAP load and what verify found.
func (m *imapModel) summary() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	held := 0
	for _, b := range m.boxes {
		for _, s := range b {
			held += s.lo
		}
	}
	return fmt.Sprintf("  imap: %d sessions; APPEND %d (%d OK), UID COPY %d (%d OK), UID MOVE %d (%d OK), UID EXPUNGE %d (%d OK); %d verifications, %d messages held at the end\n"+
		"  imap broken promises: %d acknowledged copies lost, %d expunged/moved copies back or duplicated, %d never put there",
		m.sessions, m.appends, m.appendOK, m.copies, m.copyOK, m.moves, m.moveOK, m.expunges, m.expungeOK, m.verified, held,
		m.lost, m.back, m.foreign)
}
