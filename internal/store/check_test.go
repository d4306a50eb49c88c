package store

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// kinds returns the kinds of problems in r, sorted.
func kinds(r *Report) []string {
	var out []string
	for _, p := range r.Problems {
		out = append(out, string(p.Kind))
	}
	slices.Sort(out)
	return out
}

func sorted(k ...ProblemKind) []string {
	out := []string{}
	for _, x := range k {
		out = append(out, string(x))
	}
	slices.Sort(out)
	return out
}

func exec(t testing.TB, a *Account, q string, args ...any) {
	t.Helper()
	if _, err := a.db.W.ExecContext(ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// plantOrphan puts a body file no row references into account id.
func plantOrphan(t testing.TB, dir string, id string, account string) string {
	t.Helper()
	shard := filepath.Join(dir, "accounts", account, "msg", id[:2])
	if err := os.MkdirAll(shard, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(shard, id)
	if err := os.WriteFile(p, []byte("Subject: orphan\r\n\r\nnobody's\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// checkFixture is a small store with shared bodies: account 1 has three
// messages in INBOX, one of them also copied into Archive; account 2 has
// one message whose body file is a hard link of account 1's first.
type checkFixture struct {
	s     *Store
	dir   string
	inbox []Message // account 1 INBOX
}

func newCheckFixture(t *testing.T) *checkFixture {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	deliver(t, s, testBody(1), Target{AccountID: 1}, Target{AccountID: 2})
	deliver(t, s, testBody(2), Target{AccountID: 1})
	deliver(t, s, testBody(3), Target{AccountID: 1})
	a := account(t, s, 1)
	inbox := messages(t, a, "INBOX")
	if _, err := a.Copy(ctx, mailbox(t, a, "INBOX").ID, []uint32{inbox[2].UID}, "Archive", false); err != nil {
		t.Fatal(err)
	}
	return &checkFixture{s: s, dir: dir, inbox: inbox}
}

// reopen closes the fixture's store (its databases checkpoint and close)
// and opens a new one on the same directory.
func (f *checkFixture) reopen(t *testing.T) {
	t.Helper()
	f.s.Close()
	s, err := Open(ctx, f.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f.s = s
}

// plantHotJournal leaves in dir an index.db the way a crash in the middle
// of a rollback-journal transaction does: the files are copied while the
// transaction, big enough to spill into the database file, is open.
func plantHotJournal(t *testing.T, dir string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "index.db")
	db, err := sql.Open("sqlite", "file:"+src+"?_pragma=journal_mode(DELETE)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{strings.Join(migrations, ";\n"), fmt.Sprintf("PRAGMA user_version=%d", len(migrations)),
		`CREATE TABLE junk(b BLOB)`, `INSERT INTO junk SELECT randomblob(1000) FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<4000) SELECT i FROM c)`,
		`PRAGMA cache_size=10`, `BEGIN`, `UPDATE junk SET b=randomblob(1000)`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-journal"} {
		b, err := os.ReadFile(src + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "index.db"+suffix), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db.Exec(`ROLLBACK`)
	// SQLite agrees that it is hot: a reader must roll it back first.
	ro, err := openReadOnly(filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var v int
	if err := ro.QueryRow(`PRAGMA user_version`).Scan(&v); err == nil || !hotJournal(filepath.Join(dir, "index.db")) {
		t.Fatalf("no hot journal planted (read-only read: %v)", err)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		// damage breaks the fixture.
		damage func(t *testing.T, f *checkFixture)
		// want are the problems found; remain those a repair leaves.
		want, remain []ProblemKind
		// lost is how many messages the repair gives up.
		lost int
		// after checks the repaired store.
		after func(t *testing.T, f *checkFixture)
	}{
		{
			name:   "clean",
			damage: func(t *testing.T, f *checkFixture) {},
		},
		{
			name: "orphan body",
			damage: func(t *testing.T, f *checkFixture) {
				plantOrphan(t, f.dir, "aaaaaaaaaaaaaaaaaaaa", "1")
				plantOrphan(t, f.dir, "bbbbbbbbbbbbbbbbbbbb", "2")
			},
			want: []ProblemKind{ProblemOrphanBody, ProblemOrphanBody},
			after: func(t *testing.T, f *checkFixture) {
				for _, p := range []string{"1/msg/aa/aaaaaaaaaaaaaaaaaaaa", "2/msg/bb/bbbbbbbbbbbbbbbbbbbb"} {
					if exists(filepath.Join(f.dir, "accounts", p)) {
						t.Errorf("orphan %s not removed", p)
					}
				}
				// Referenced bodies are all still there.
				a := account(t, f.s, 1)
				for _, m := range messages(t, a, "INBOX") {
					stat(t, a, m)
				}
			},
		},
		{
			name: "missing body",
			damage: func(t *testing.T, f *checkFixture) {
				a := account(t, f.s, 1)
				if err := os.Remove(a.bodies.Path(f.inbox[1].Blob)); err != nil {
					t.Fatal(err)
				}
			},
			want: []ProblemKind{ProblemMissingBody},
			lost: 1,
			after: func(t *testing.T, f *checkFixture) {
				a := account(t, f.s, 1)
				mb := mailbox(t, a, "INBOX")
				if got := uids(messages(t, a, "INBOX")); !slices.Equal(got, []uint32{f.inbox[0].UID, f.inbox[2].UID}) {
					t.Errorf("INBOX UIDs after repair %v", got)
				}
				// Clients learn of it as of any expunge (QRESYNC).
				_, gone, err := a.Changes(ctx, mb.ID, f.inbox[2].ModSeq)
				if err != nil {
					t.Fatal(err)
				}
				if len(gone) != 1 || gone[0].UID != f.inbox[1].UID || gone[0].ModSeq <= f.inbox[2].ModSeq {
					t.Errorf("expunged after repair %+v", gone)
				}
				if mb.UIDNext != f.inbox[2].UID+1 {
					t.Errorf("UIDNEXT %d after repair", mb.UIDNext)
				}
			},
		},
		{
			name: "missing shared body",
			damage: func(t *testing.T, f *checkFixture) {
				// INBOX uid 3 and its Archive copy share one file.
				a := account(t, f.s, 1)
				if err := os.Remove(a.bodies.Path(f.inbox[2].Blob)); err != nil {
					t.Fatal(err)
				}
			},
			want: []ProblemKind{ProblemMissingBody, ProblemMissingBody},
			lost: 2,
			after: func(t *testing.T, f *checkFixture) {
				a := account(t, f.s, 1)
				if n := len(messages(t, a, "Archive")); n != 0 {
					t.Errorf("Archive has %d messages after repair", n)
				}
				if n := len(messages(t, a, "INBOX")); n != 2 {
					t.Errorf("INBOX has %d messages after repair", n)
				}
			},
		},
		{
			name: "size mismatch",
			damage: func(t *testing.T, f *checkFixture) {
				a := account(t, f.s, 1)
				if err := os.Truncate(a.bodies.Path(f.inbox[1].Blob), 10); err != nil {
					t.Fatal(err)
				}
			},
			want:   []ProblemKind{ProblemSizeMismatch},
			remain: []ProblemKind{ProblemSizeMismatch},
		},
		{
			name: "uidnext behind",
			damage: func(t *testing.T, f *checkFixture) {
				exec(t, account(t, f.s, 1), `UPDATE mailboxes SET uidnext=2 WHERE name='INBOX'`)
			},
			want: []ProblemKind{ProblemUIDNext},
			after: func(t *testing.T, f *checkFixture) {
				if mb := mailbox(t, account(t, f.s, 1), "INBOX"); mb.UIDNext != 4 {
					t.Errorf("UIDNEXT %d after repair, want 4", mb.UIDNext)
				}
			},
		},
		{
			name: "uidnext behind an expunged uid",
			damage: func(t *testing.T, f *checkFixture) {
				a := account(t, f.s, 1)
				if _, err := a.Expunge(ctx, mailbox(t, a, "INBOX").ID, []uint32{f.inbox[2].UID}); err != nil {
					t.Fatal(err)
				}
				exec(t, a, `UPDATE mailboxes SET uidnext=3 WHERE name='INBOX'`)
			},
			want: []ProblemKind{ProblemUIDNext},
			after: func(t *testing.T, f *checkFixture) {
				if mb := mailbox(t, account(t, f.s, 1), "INBOX"); mb.UIDNext != 4 {
					t.Errorf("UIDNEXT %d after repair, want 4 (UID 3 was used)", mb.UIDNext)
				}
			},
		},
		{
			name: "highestmodseq and counters behind",
			damage: func(t *testing.T, f *checkFixture) {
				a := account(t, f.s, 1)
				exec(t, a, `UPDATE mailboxes SET highestmodseq=1 WHERE name='Archive'`)
				exec(t, a, `UPDATE counters SET value=1 WHERE name='modseq'`)
				exec(t, a, `UPDATE counters SET value=1 WHERE name='uidvalidity'`)
			},
			want: []ProblemKind{ProblemHighestModSeq, ProblemCounter, ProblemCounter},
			after: func(t *testing.T, f *checkFixture) {
				a := account(t, f.s, 1)
				arch := messages(t, a, "Archive")
				if mb := mailbox(t, a, "Archive"); mb.HighestModSeq != arch[0].ModSeq {
					t.Errorf("Archive HIGHESTMODSEQ %d after repair, want %d", mb.HighestModSeq, arch[0].ModSeq)
				}
				// The next change gets a MODSEQ above every one used.
				res, err := a.SetFlags(ctx, mailbox(t, a, "INBOX").ID, []uint32{1}, FlagUpdate{Op: FlagsAdd, Flags: FlagSeen})
				if err != nil {
					t.Fatal(err)
				}
				if res.Changed[0].ModSeq <= arch[0].ModSeq {
					t.Errorf("MODSEQ %d handed out again", res.Changed[0].ModSeq)
				}
			},
		},
		{
			name: "unknown account",
			damage: func(t *testing.T, f *checkFixture) {
				deliver(t, f.s, testBody(9), Target{AccountID: 7})
			},
			want: []ProblemKind{ProblemUnknownAccount},
			after: func(t *testing.T, f *checkFixture) {
				if exists(filepath.Join(f.dir, "accounts", "7")) {
					t.Error("directory of the deleted account 7 not removed")
				}
			},
		},
		{
			name: "unknown account never issued",
			damage: func(t *testing.T, f *checkFixture) {
				// Above the directory's high-water mark (10): global.db
				// is older than this mail, which must be kept.
				deliver(t, f.s, testBody(9), Target{AccountID: 11})
			},
			want:   []ProblemKind{ProblemUnknownAccount},
			remain: []ProblemKind{ProblemUnknownAccount},
			after: func(t *testing.T, f *checkFixture) {
				if !exists(filepath.Join(f.dir, "accounts", "11", "index.db")) {
					t.Error("account 11 removed")
				}
			},
		},
		{
			name: "foreign key",
			damage: func(t *testing.T, f *checkFixture) {
				a := account(t, f.s, 1)
				conn, err := a.db.W.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				for _, q := range []string{
					`PRAGMA foreign_keys=OFF`,
					`INSERT INTO messages(mailbox_id, uid, modseq, blob, size, internal_date, save_date, email_id, meta) SELECT 999, 1, modseq, blob, size, internal_date, save_date, email_id, meta FROM messages WHERE uid=1 AND mailbox_id=(SELECT id FROM mailboxes WHERE name='INBOX')`,
					`PRAGMA foreign_keys=ON`,
				} {
					if _, err := conn.ExecContext(ctx, q); err != nil {
						t.Fatal(err)
					}
				}
			},
			want:   []ProblemKind{ProblemForeignKey},
			remain: []ProblemKind{ProblemForeignKey},
		},
		{
			name: "index missing",
			damage: func(t *testing.T, f *checkFixture) {
				f.reopen(t)
				for _, suffix := range []string{"", "-wal", "-shm"} {
					os.Remove(filepath.Join(f.dir, "accounts", "2", "index.db"+suffix))
				}
			},
			want:   []ProblemKind{ProblemIndexMissing},
			remain: []ProblemKind{ProblemIndexMissing},
			after: func(t *testing.T, f *checkFixture) {
				files, err := listBodies(filepath.Join(f.dir, "accounts", "2", "msg"))
				if err != nil || len(files) != 1 {
					t.Errorf("account 2 bodies after repair: %d, %v", len(files), err)
				}
			},
		},
		{
			name: "index of an interrupted first delivery",
			damage: func(t *testing.T, f *checkFixture) {
				d := filepath.Join(f.dir, "accounts", "3")
				os.MkdirAll(filepath.Join(d, "msg"), 0o700)
				os.WriteFile(filepath.Join(d, "index.db"), nil, 0o600)
			},
		},
		{
			name:   "hot journal",
			damage: func(t *testing.T, f *checkFixture) { plantHotJournal(t, filepath.Join(f.dir, "accounts", "3")) },
			want:   []ProblemKind{ProblemHotJournal},
			after: func(t *testing.T, f *checkFixture) {
				if hotJournal(filepath.Join(f.dir, "accounts", "3", "index.db")) {
					t.Error("hot journal still there after repair")
				}
			},
		},
		{
			name: "corrupt index",
			damage: func(t *testing.T, f *checkFixture) {
				plantOrphan(t, f.dir, "cccccccccccccccccccc", "1")
				f.reopen(t)
				p := filepath.Join(f.dir, "accounts", "1", "index.db")
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if len(b) < 4*4096 {
					t.Fatalf("index only %d bytes", len(b))
				}
				// Scribble over every page but the first (the header).
				for i := 4096; i < len(b); i++ {
					b[i] = byte(i * 7)
				}
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			// Integrity lines (or an unreadable index), and the planted
			// orphan is kept: with the index damaged, nothing can tell.
			after: func(t *testing.T, f *checkFixture) {
				if !exists(filepath.Join(f.dir, "accounts", "1", "msg", "cc", "cccccccccccccccccccc")) {
					t.Error("repair removed a body file of an account whose index is damaged")
				}
				a1, err := listBodies(filepath.Join(f.dir, "accounts", "1", "msg"))
				if err != nil || len(a1) != 4 {
					t.Errorf("account 1 has %d bodies after repair (%v), want 4", len(a1), err)
				}
			},
		},
		{
			name: "stale tmp",
			damage: func(t *testing.T, f *checkFixture) {
				os.WriteFile(filepath.Join(f.dir, "tmp", "body-123"), []byte("half"), 0o600)
				os.MkdirAll(filepath.Join(f.dir, "tmp", "deleted-account-9-1", "msg"), 0o700)
			},
			want: []ProblemKind{ProblemStaleTemp},
			after: func(t *testing.T, f *checkFixture) {
				if ents, _ := os.ReadDir(filepath.Join(f.dir, "tmp")); len(ents) != 0 {
					t.Errorf("%d entries left in tmp", len(ents))
				}
			},
		},
	}
	opts := CheckOptions{KnownAccounts: []int64{1, 2, 3}, IssuedAccounts: 10}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newCheckFixture(t)
			tc.damage(t, f)

			rep, err := f.s.Check(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range rep.Problems {
				t.Logf("found: %s", p)
			}
			corrupt := tc.name == "corrupt index"
			if corrupt {
				if len(rep.Problems) == 0 {
					t.Fatal("corrupt index not detected")
				}
				for _, p := range rep.Problems {
					if p.Account != 1 || p.Kind != ProblemIntegrity && p.Kind != ProblemIndexUnreadable {
						t.Errorf("corrupt index: unexpected problem %s", p)
					}
				}
			} else if got := kinds(rep); !slices.Equal(got, sorted(tc.want...)) {
				t.Fatalf("found %v, want %v", got, sorted(tc.want...))
			}
			if rep.Accounts < 2 || rep.Messages < 4 && !corrupt && tc.name != "index missing" {
				t.Errorf("counted %d accounts, %d messages", rep.Accounts, rep.Messages)
			}

			repOpts := opts
			repOpts.Repair = true
			rep, err = f.s.Check(ctx, repOpts)
			if err != nil {
				t.Fatal(err)
			}
			lost := 0
			for _, p := range rep.Problems {
				t.Logf("repair: %s", p)
				if p.Lost {
					lost++
				}
				if !p.Repaired && p.NotRepaired == "" {
					t.Errorf("not repaired and no reason given: %s", p)
				}
			}
			if lost != tc.lost || rep.Lost() != tc.lost {
				t.Errorf("repair lost %d messages, want %d", lost, tc.lost)
			}
			if !corrupt && rep.Remaining() != len(tc.remain) {
				t.Errorf("%d problems remain after repair, want %d", rep.Remaining(), len(tc.remain))
			}

			rep, err = f.s.Check(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			if corrupt {
				if len(rep.Problems) == 0 {
					t.Error("corruption gone after repair?")
				}
			} else if got := kinds(rep); !slices.Equal(got, sorted(tc.remain...)) {
				t.Errorf("after repair found %v, want %v", got, sorted(tc.remain...))
			}
			if tc.after != nil {
				tc.after(t, f)
			}
		})
	}
}

// TestCheckLive: beside a running server, a body file linked moments ago
// and not yet in the index is a delivery in flight, not an orphan; an old
// one is an orphan. A live check refuses to repair.
func TestCheckLive(t *testing.T) {
	f := newCheckFixture(t)
	fresh := plantOrphan(t, f.dir, "dddddddddddddddddddd", "1")
	old := plantOrphan(t, f.dir, "eeeeeeeeeeeeeeeeeeee", "1")
	long := time.Now().Add(-2 * InFlightGrace)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	rep, err := f.s.Check(ctx, CheckOptions{Live: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(rep); !slices.Equal(got, sorted(ProblemOrphanBody)) || !strings.Contains(rep.Problems[0].Detail, "eeee") {
		t.Errorf("live check found %v", rep.Problems)
	}
	if rep.SkippedRecent != 1 {
		t.Errorf("SkippedRecent = %d, want 1", rep.SkippedRecent)
	}
	if !rep.Live {
		t.Error("report not marked live")
	}
	if !exists(fresh) || !exists(old) {
		t.Error("live check removed a file")
	}
	// Not live: both are orphans.
	rep, err = f.s.Check(ctx, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(rep); !slices.Equal(got, sorted(ProblemOrphanBody, ProblemOrphanBody)) {
		t.Errorf("check found %v", rep.Problems)
	}
	if _, err := f.s.Check(ctx, CheckOptions{Live: true, Repair: true}); err == nil {
		t.Error("live repair was not refused")
	}
	// An index caught in its creation is busy, not broken, to a live check.
	plantHotJournal(t, filepath.Join(f.dir, "accounts", "3"))
	rep, err = f.s.Check(ctx, CheckOptions{Live: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.SkippedBusy != 1 || len(rep.Problems) != 1 {
		t.Errorf("live check of an index with a hot journal: skipped %d, problems %v", rep.SkippedBusy, rep.Problems)
	}
}

// TestCheckConcurrentWithWriters runs live checks while messages arrive,
// are copied and are expunged: a live check must never report a problem
// that is only a write in progress.
func TestCheckConcurrentWithWriters(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	inbox := mailbox(t, a, "INBOX")
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			w, err := s.NewBody()
			if err != nil {
				done <- err
				return
			}
			w.Write(testBody(i))
			tm, err := w.Finish()
			if err != nil {
				done <- err
				return
			}
			err = s.Deliver(ctx, tm, []Target{{AccountID: 1}})
			tm.Remove()
			if err != nil {
				done <- err
				return
			}
			if i%3 == 2 {
				ms, err := a.Messages(ctx, inbox.ID)
				if err != nil {
					done <- err
					return
				}
				if _, err := a.Copy(ctx, inbox.ID, []uint32{ms[0].UID}, "Archive", i%2 == 0); err != nil {
					done <- err
					return
				}
				if _, err := a.Expunge(ctx, inbox.ID, uids(ms[1:])); err != nil {
					done <- err
					return
				}
			}
		}
	}()
	deadline := time.Now().Add(2 * time.Second)
	checks := 0
	for time.Now().Before(deadline) {
		rep, err := s.Check(ctx, CheckOptions{Live: true, KnownAccounts: []int64{1}})
		if err != nil {
			t.Fatal(err)
		}
		checks++
		for _, p := range rep.Problems {
			t.Errorf("live check during writes: %s", p)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rep, err := s.Check(ctx, CheckOptions{KnownAccounts: []int64{1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 {
		t.Errorf("after writes: %v", rep.Problems)
	}
	t.Logf("%d live checks; %d messages, %d bodies at the end", checks, rep.Messages, rep.Bodies)
}
