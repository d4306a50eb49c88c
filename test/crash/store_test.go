package crash

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/store"
)

// TestStoreCrash is the store-level crash test: a child process (this test
// binary, re-executed) runs the store operations IMAP is built on (APPEND,
// MULTIAPPEND, COPY, MOVE, EXPUNGE of UIDs and of \Deleted messages,
// STORE, CREATE, DELETE, RENAME) one at a time on
// one account, printing each operation before it starts and its result
// once it returned; the parent kills it with SIGKILL at a random moment,
// opens the store itself, and checks that the store holds exactly the
// acknowledged operations plus, all or nothing, the one in flight, with
// every body intact. Then the next child sweeps and continues.

const storeChildEnv = "JODMAI_CRASH_STORE_DIR"

// The mailboxes the child works on; "Scratch" comes and goes, and is
// renamed to "Scratch2" and back.
var tortureBoxes = []string{"INBOX", "Archive", "Trash"}

// tortureOp is one store operation, as the child logs it.
type tortureOp struct {
	Kind    string   `json:"k"` // append multiappend copy move expunge expungedeleted flags create delete rename
	Mailbox string   `json:"m,omitempty"`
	Dest    string   `json:"d,omitempty"`
	UIDs    []uint32 `json:"u,omitempty"`
	Marker  string   `json:"x,omitempty"`
	Markers []string `json:"xs,omitempty"` // multiappend
	Account int64    `json:"a,omitempty"`  // newaccount
	Flags   uint8    `json:"f,omitempty"`
	Remove  bool     `json:"r,omitempty"`
}

// tortureAck is an operation's result.
type tortureAck struct {
	UIDs []uint32 `json:"u,omitempty"` // append, multiappend: the new UIDs; copy/move: the destination UIDs
}

// TestStoreCrashChild is the child's body; it does nothing in a normal run.
func TestStoreCrashChild(t *testing.T) {
	dir := os.Getenv(storeChildEnv)
	if dir == "" {
		t.Skip("only run as TestStoreCrash's child")
	}
	seedV, _ := strconv.ParseUint(os.Getenv(storeChildEnv+"_SEED"), 10, 64)
	round, _ := strconv.Atoi(os.Getenv(storeChildEnv + "_ROUND"))
	rng := rand.New(rand.NewPCG(seedV, 7))
	ctx := context.Background()
	out := os.Stdout
	say := func(kind string, v any) {
		b, _ := json.Marshal(v)
		// One write per line: a line is whole or absent when killed.
		out.Write([]byte(kind + " " + string(b) + "\n"))
	}
	fail := func(format string, a ...any) {
		out.Write([]byte("FAIL " + fmt.Sprintf(format, a...) + "\n"))
		os.Exit(3)
	}
	s, err := store.Open(ctx, dir, nil)
	if err != nil {
		fail("open: %v", err)
	}
	if err := s.Sweep(ctx); err != nil {
		fail("sweep: %v", err)
	}
	a, err := s.Account(ctx, 1)
	if err != nil {
		fail("account: %v", err)
	}
	out.Write([]byte("READY\n"))
	for seq := 0; ; seq++ {
		mbs, err := a.Mailboxes(ctx)
		if err != nil {
			fail("mailboxes: %v", err)
		}
		byName := map[string]store.Mailbox{}
		for _, m := range mbs {
			byName[m.Name] = m
		}
		scratch := ""
		for _, n := range []string{"Scratch", "Scratch2"} {
			if _, ok := byName[n]; ok {
				scratch = n
			}
		}
		boxes := slices.Clone(tortureBoxes)
		if scratch != "" {
			boxes = append(boxes, scratch)
		}
		src := boxes[rng.IntN(len(boxes))]
		msgs, err := a.Messages(ctx, byName[src].ID)
		if err != nil {
			fail("messages: %v", err)
		}
		pick := func(max int) []uint32 {
			var u []uint32
			for _, m := range msgs {
				if rng.IntN(len(msgs)) < max {
					u = append(u, m.UID)
				}
			}
			return u
		}
		other := boxes[rng.IntN(len(boxes))]
		op := tortureOp{Mailbox: src}
		switch r := rng.IntN(100); {
		case r < 28 || len(msgs) == 0:
			op.Kind = "append"
			op.Marker = fmt.Sprintf("s%03d-%05d", round, seq)
		case r < 35:
			op.Kind = "multiappend"
			for i := range 2 + rng.IntN(4) {
				op.Markers = append(op.Markers, fmt.Sprintf("s%03d-%05d-%d", round, seq, i))
			}
		case r < 38:
			op.Kind = "expungedeleted"
		case r < 40:
			// SMTP's first message to an account creates its
			// directory and index.
			op.Kind = "newaccount"
			op.Account = int64(1000*round + seq + 2)
			op.Marker = fmt.Sprintf("s%03d-%05d-new", round, seq)
		case r < 47:
			op.Kind, op.Dest, op.UIDs = "copy", other, pick(3)
		case r < 59:
			op.Kind, op.Dest, op.UIDs = "move", other, pick(3)
		case r < 75 || len(msgs) > 40:
			op.Kind, op.UIDs = "expunge", pick(4)
		case r < 90:
			op.Kind, op.UIDs = "flags", pick(5)
			op.Flags = uint8([]store.Flags{store.FlagSeen, store.FlagFlagged | store.FlagSeen, store.FlagDeleted}[rng.IntN(3)])
			op.Remove = rng.IntN(3) == 0
		case scratch == "":
			op.Kind, op.Mailbox = "create", "Scratch"
		case r < 95:
			op.Kind, op.Mailbox = "delete", scratch
		default:
			op.Kind, op.Mailbox, op.Dest = "rename", scratch, map[string]string{"Scratch": "Scratch2", "Scratch2": "Scratch"}[scratch]
		}
		if op.Kind == "copy" || op.Kind == "move" {
			if op.Dest == src {
				op.Kind = "expunge"
			}
		}
		var ack tortureAck
		var body []byte
		var bodies [][]byte
		if op.Kind == "append" || op.Kind == "newaccount" {
			body = newMessage(rng, op.Marker, []string{"torture@example.org"})
		}
		for _, m := range op.Markers {
			bodies = append(bodies, newMessage(rng, m, []string{"torture@example.org"}))
		}
		say("BEGIN", op)
		switch op.Kind {
		case "append":
			w, err := s.NewBody()
			if err != nil {
				fail("new body: %v", err)
			}
			w.Write(body)
			tm, err := w.Finish()
			if err != nil {
				fail("finish: %v", err)
			}
			m, err := a.Append(ctx, op.Mailbox, tm, 0, nil, time.Now())
			tm.Remove()
			if err != nil {
				fail("append: %v", err)
			}
			ack.UIDs = []uint32{m.UID}
		case "multiappend":
			var ams []store.AppendMessage
			for _, b := range bodies {
				w, err := s.NewBody()
				if err != nil {
					fail("new body: %v", err)
				}
				w.Write(b)
				tm, err := w.Finish()
				if err != nil {
					fail("finish: %v", err)
				}
				ams = append(ams, store.AppendMessage{Body: tm})
			}
			res, err := a.AppendMessages(ctx, op.Mailbox, ams)
			for _, am := range ams {
				am.Body.Remove()
			}
			if err != nil {
				fail("multiappend: %v", err)
			}
			for _, m := range res.Messages {
				ack.UIDs = append(ack.UIDs, m.UID)
			}
		case "newaccount":
			w, err := s.NewBody()
			if err != nil {
				fail("new body: %v", err)
			}
			w.Write(body)
			tm, err := w.Finish()
			if err != nil {
				fail("finish: %v", err)
			}
			err = s.Deliver(ctx, tm, []store.Target{{AccountID: op.Account}})
			tm.Remove()
			if err != nil {
				fail("deliver to a new account: %v", err)
			}
		case "expungedeleted":
			if _, _, err := a.ExpungeDeleted(ctx, byName[src].ID, ^uint32(0), nil); err != nil {
				fail("expunge deleted: %v", err)
			}
		case "copy", "move":
			res, err := a.Copy(ctx, byName[src].ID, op.UIDs, op.Dest, op.Kind == "move")
			if err != nil {
				fail("%s: %v", op.Kind, err)
			}
			ack.UIDs = res.Dest
		case "expunge":
			if _, err := a.Expunge(ctx, byName[src].ID, op.UIDs); err != nil {
				fail("expunge: %v", err)
			}
		case "flags":
			u := store.FlagUpdate{Op: store.FlagsAdd, Flags: store.Flags(op.Flags)}
			if op.Remove {
				u.Op = store.FlagsRemove
			}
			if _, err := a.SetFlags(ctx, byName[src].ID, op.UIDs, u); err != nil {
				fail("flags: %v", err)
			}
		case "create":
			if _, err := a.CreateMailbox(ctx, op.Mailbox, ""); err != nil {
				fail("create: %v", err)
			}
		case "delete":
			if err := a.DeleteMailbox(ctx, op.Mailbox); err != nil {
				fail("delete: %v", err)
			}
		case "rename":
			if err := a.RenameMailbox(ctx, op.Mailbox, op.Dest); err != nil {
				fail("rename: %v", err)
			}
		}
		say("ACK", ack)
	}
}

// storeModel is what the store must hold: mailbox -> UID -> message, and
// each mailbox's UIDNEXT.
type storeModel struct {
	boxes   map[string]map[uint32]modelMsg
	uidnext map[string]uint32
	// accounts are the other accounts: id -> the marker of the one
	// message delivered to each ("" when it has none).
	accounts map[int64]string
}

type modelMsg struct {
	Marker string
	Flags  store.Flags
}

func (m storeModel) clone() storeModel {
	c := storeModel{boxes: map[string]map[uint32]modelMsg{}, uidnext: maps.Clone(m.uidnext), accounts: maps.Clone(m.accounts)}
	for k, v := range m.boxes {
		c.boxes[k] = maps.Clone(v)
	}
	return c
}

func (m storeModel) equal(o storeModel) bool {
	if !maps.Equal(m.uidnext, o.uidnext) || len(m.boxes) != len(o.boxes) || !maps.Equal(m.accounts, o.accounts) {
		return false
	}
	for k, v := range m.boxes {
		ov, ok := o.boxes[k]
		if !ok || !maps.Equal(v, ov) {
			return false
		}
	}
	return true
}

func (m storeModel) String() string {
	var b strings.Builder
	names := slices.Sorted(maps.Keys(m.boxes))
	for _, n := range names {
		fmt.Fprintf(&b, "%s (uidnext %d):", n, m.uidnext[n])
		for _, u := range slices.Sorted(maps.Keys(m.boxes[n])) {
			fmt.Fprintf(&b, " %d=%s/%d", u, m.boxes[n][u].Marker, m.boxes[n][u].Flags)
		}
		b.WriteString("\n")
	}
	for _, id := range slices.Sorted(maps.Keys(m.accounts)) {
		fmt.Fprintf(&b, "account %d: %q\n", id, m.accounts[id])
	}
	return b.String()
}

// apply applies op to m. For an acknowledged op, ack holds the UIDs the
// store gave; for the op in flight, ack is nil and the UIDs are predicted
// (UIDNEXT onwards, as a single writer hands them out). It returns an
// error when an acknowledged result contradicts the model.
func (m storeModel) apply(op tortureOp, ack *tortureAck) error {
	switch op.Kind {
	case "append":
		uid := m.uidnext[op.Mailbox]
		if ack != nil && (len(ack.UIDs) != 1 || ack.UIDs[0] != uid) {
			return fmt.Errorf("append to %s got UID %v, want %d", op.Mailbox, ack.UIDs, uid)
		}
		m.boxes[op.Mailbox][uid] = modelMsg{Marker: op.Marker}
		m.uidnext[op.Mailbox] = uid + 1
	case "multiappend":
		uid := m.uidnext[op.Mailbox]
		for i, x := range op.Markers {
			if ack != nil && (len(ack.UIDs) != len(op.Markers) || ack.UIDs[i] != uid) {
				return fmt.Errorf("multiappend of %d to %s got UIDs %v, want from %d", len(op.Markers), op.Mailbox, ack.UIDs, m.uidnext[op.Mailbox])
			}
			m.boxes[op.Mailbox][uid] = modelMsg{Marker: x}
			uid++
		}
		m.uidnext[op.Mailbox] = uid
	case "newaccount":
		m.accounts[op.Account] = op.Marker
	case "expungedeleted":
		for u, msg := range m.boxes[op.Mailbox] {
			if msg.Flags&store.FlagDeleted != 0 {
				delete(m.boxes[op.Mailbox], u)
			}
		}
	case "copy", "move":
		src := m.boxes[op.Mailbox]
		var uids []uint32
		for _, u := range op.UIDs {
			if _, ok := src[u]; ok && !slices.Contains(uids, u) {
				uids = append(uids, u)
			}
		}
		slices.Sort(uids)
		next := m.uidnext[op.Dest]
		for i, u := range uids {
			du := next + uint32(i)
			if ack != nil && (len(ack.UIDs) != len(uids) || ack.UIDs[i] != du) {
				return fmt.Errorf("%s %v from %s to %s got UIDs %v, want %d from %d", op.Kind, uids, op.Mailbox, op.Dest, ack.UIDs, len(uids), next)
			}
			m.boxes[op.Dest][du] = src[u]
			if op.Kind == "move" {
				delete(src, u)
			}
		}
		m.uidnext[op.Dest] = next + uint32(len(uids))
	case "expunge":
		for _, u := range op.UIDs {
			delete(m.boxes[op.Mailbox], u)
		}
	case "flags":
		for _, u := range op.UIDs {
			msg, ok := m.boxes[op.Mailbox][u]
			if !ok {
				continue
			}
			if op.Remove {
				msg.Flags &^= store.Flags(op.Flags)
			} else {
				msg.Flags |= store.Flags(op.Flags)
			}
			m.boxes[op.Mailbox][u] = msg
		}
	case "create":
		m.boxes[op.Mailbox] = map[uint32]modelMsg{}
		m.uidnext[op.Mailbox] = 1
	case "delete":
		delete(m.boxes, op.Mailbox)
		delete(m.uidnext, op.Mailbox)
	case "rename":
		m.boxes[op.Dest], m.uidnext[op.Dest] = m.boxes[op.Mailbox], m.uidnext[op.Mailbox]
		delete(m.boxes, op.Mailbox)
		delete(m.uidnext, op.Mailbox)
	default:
		return fmt.Errorf("unknown op %q", op.Kind)
	}
	return nil
}

// readStore reads the account's mailboxes and messages (bodies checked
// against their checksums) into a model, with each mailbox's
// UIDVALIDITY and HIGHESTMODSEQ.
func readStore(ctx context.Context, dir string, others []int64) (storeModel, map[uint32]int64, *store.Report, error) {
	s, err := store.Open(ctx, dir, nil)
	if err != nil {
		return storeModel{}, nil, nil, err
	}
	defer s.Close()
	// Before anything opens the account for writing: what the crash
	// left, exactly.
	rep, err := s.Check(ctx, store.CheckOptions{})
	if err != nil {
		return storeModel{}, nil, nil, err
	}
	a, err := s.Account(ctx, 1)
	if err != nil {
		return storeModel{}, nil, nil, err
	}
	mbs, err := a.Mailboxes(ctx)
	if err != nil {
		return storeModel{}, nil, nil, err
	}
	m := storeModel{boxes: map[string]map[uint32]modelMsg{}, uidnext: map[string]uint32{}, accounts: map[int64]string{}}
	for _, id := range others {
		if _, err := os.Stat(filepath.Join(dir, "accounts", strconv.FormatInt(id, 10))); err != nil {
			m.accounts[id] = "" // never created
			continue
		}
		o, err := s.Account(ctx, id)
		if err != nil {
			return storeModel{}, nil, nil, fmt.Errorf("account %d: %w", id, err)
		}
		_, msgs, err := o.MailboxMessages(ctx, "INBOX")
		if err != nil {
			return storeModel{}, nil, nil, fmt.Errorf("account %d: %w", id, err)
		}
		var markers []string
		for _, msg := range msgs {
			f, err := o.OpenBody(msg)
			if err != nil {
				markers = append(markers, "BODY-UNREADABLE")
				continue
			}
			b, err := io.ReadAll(f)
			f.Close()
			marker, perr := parseStored(b)
			if err != nil || perr != nil {
				marker = fmt.Sprintf("BAD BODY: %v %v", err, perr)
			}
			markers = append(markers, marker)
		}
		m.accounts[id] = strings.Join(markers, ",")
	}
	hms := map[uint32]int64{}
	for _, mb := range mbs {
		if !slices.Contains(tortureBoxes, mb.Name) && mb.Name != "Scratch" && mb.Name != "Scratch2" {
			continue // Sent, Drafts, Junk: never used
		}
		hms[mb.UIDValidity] = mb.HighestModSeq
		m.uidnext[mb.Name] = mb.UIDNext
		box := map[uint32]modelMsg{}
		msgs, err := a.Messages(ctx, mb.ID)
		if err != nil {
			return storeModel{}, nil, nil, err
		}
		for _, msg := range msgs {
			f, err := a.OpenBody(msg)
			if err != nil {
				// The Check report says more; the model comparison fails.
				box[msg.UID] = modelMsg{Marker: "BODY-UNREADABLE: " + err.Error(), Flags: msg.Flags}
				continue
			}
			b, err := io.ReadAll(f)
			f.Close()
			if err != nil {
				return storeModel{}, nil, nil, err
			}
			if int64(len(b)) != msg.Size {
				return storeModel{}, nil, nil, fmt.Errorf("%s uid %d: body %d bytes, index says %d", mb.Name, msg.UID, len(b), msg.Size)
			}
			marker, err := parseStored(b)
			if err != nil {
				return storeModel{}, nil, nil, fmt.Errorf("%s uid %d: %w", mb.Name, msg.UID, err)
			}
			box[msg.UID] = modelMsg{Marker: marker, Flags: msg.Flags}
		}
		m.boxes[mb.Name] = box
	}
	return m, hms, rep, nil
}

func TestStoreCrash(t *testing.T) {
	if os.Getenv(storeChildEnv) != "" {
		t.Skip("child")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sd := seed()
	rng := rand.New(rand.NewPCG(sd, 2))
	n := rounds()
	ctx := context.Background()

	// The initial state.
	model, hmsSeen, _, err := readStore(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var acked, inFlightApplied, inFlightNot, inFlightNone, orphans, stale, hot int
	kinds := map[string]int{}
	begin := time.Now()
	for round := 1; round <= n && !t.Failed(); round++ {
		cmd := exec.Command(exe, "-test.run=^TestStoreCrashChild$", "-test.v=false")
		cmd.Env = append(os.Environ(), storeChildEnv+"="+dir, fmt.Sprintf("%s_SEED=%d", storeChildEnv, rng.Uint64()), fmt.Sprintf("%s_ROUND=%d", storeChildEnv, round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		var log []string
		killAt := time.Duration(20+rng.IntN(600)) * time.Millisecond
		var timer <-chan time.Time
		if round%6 == 1 {
			timer = time.After(time.Duration(rng.IntN(40)) * time.Millisecond) // during the sweep
		}
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				log = append(log, l)
				if l == "READY" && timer == nil {
					timer = time.After(killAt)
				}
			case <-timer:
				cmd.Process.Kill()
				timer = nil
			case <-time.After(time.Minute):
				cmd.Process.Kill()
				t.Fatalf("round %d: child silent for a minute", round)
			}
		}
		cmd.Wait()

		// Replay the log.
		var inFlight *tortureOp
		for _, l := range log {
			kind, rest, _ := strings.Cut(l, " ")
			switch kind {
			case "BEGIN":
				var op tortureOp
				if err := json.Unmarshal([]byte(rest), &op); err != nil {
					t.Fatalf("round %d: bad line %q", round, l)
				}
				inFlight = &op
			case "ACK":
				var ack tortureAck
				if err := json.Unmarshal([]byte(rest), &ack); err != nil {
					t.Fatalf("round %d: bad line %q", round, l)
				}
				if err := model.apply(*inFlight, &ack); err != nil {
					t.Errorf("round %d: %v", round, err)
				}
				kinds[inFlight.Kind]++
				acked++
				inFlight = nil
			case "FAIL":
				t.Fatalf("round %d: child: %s\n%s", round, rest, stderr.String())
			}
		}

		others := slices.Collect(maps.Keys(model.accounts))
		if inFlight != nil && inFlight.Kind == "newaccount" {
			others = append(others, inFlight.Account)
		}
		got, hms, rep, err := readStore(ctx, dir, others)
		if err != nil {
			t.Fatalf("round %d: read store after the kill: %v", round, err)
		}
		for _, p := range rep.Problems {
			switch p.Kind {
			case store.ProblemOrphanBody:
				orphans++
			case store.ProblemStaleTemp:
				stale++
			case store.ProblemHotJournal:
				hot++
			default:
				t.Errorf("round %d: after SIGKILL: %s", round, p)
			}
		}
		switch {
		case inFlight == nil:
			inFlightNone++
			if !got.equal(model) {
				t.Errorf("round %d: store differs from the acknowledged operations\nwant:\n%s\ngot:\n%s", round, model, got)
			}
		default:
			with := model.clone()
			if err := with.apply(*inFlight, nil); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			without := model
			if inFlight.Kind == "newaccount" {
				without = model.clone()
				without.accounts[inFlight.Account] = ""
			}
			switch {
			case got.equal(without):
				inFlightNot++
				model = without
			case got.equal(with):
				inFlightApplied++
				model = with
			default:
				t.Errorf("round %d: operation in flight %+v applied partly, or an acknowledged one lost\nwithout it:\n%s\nwith it:\n%s\ngot:\n%s", round, *inFlight, without, with, got)
			}
		}
		for v, h := range hms {
			if h < hmsSeen[v] {
				t.Errorf("round %d: HIGHESTMODSEQ of mailbox %d went back from %d to %d", round, v, hmsSeen[v], h)
			}
			hmsSeen[v] = h
		}
		model = got
	}
	msgs := 0
	for _, b := range model.boxes {
		msgs += len(b)
	}
	summary := fmt.Sprintf("store crash test: %d rounds in %v, seed %d: %d operations acknowledged %v; in flight at the kill: %d applied whole, %d not applied, %d rounds with none; %d orphan bodies, %d tmp/ leftovers, %d hot journals after kills (nothing else); %d messages at the end",
		n, time.Since(begin).Round(time.Millisecond), sd, acked, kinds, inFlightApplied, inFlightNot, inFlightNone, orphans, stale, hot, msgs)
	t.Log(summary)
	fmt.Println(summary)
	if acked == 0 {
		t.Error("no operation was acknowledged")
	}
}
