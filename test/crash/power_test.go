package crash

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/powerfs"
	"github.com/jodmai/jodmai/internal/testenv/proc"
)

// TestPowerLoss is the crash test with power cuts: the data directory is
// on a power-loss file system (internal/powerfs), and after each SIGKILL
// the power is cut too, so everything jodmai wrote but did not fsync
// (file data, and directory entries whose directory was not fsynced) is
// gone, and every other round tears the last unsynced write of each file.
// A SIGKILL alone proves nothing about fsync: the kernel still writes the
// page cache out.
//
// Each round: maybe a new account (its store is created by its first
// delivery), start, load, SIGKILL, power cut, `jodmai check`, and at the
// next start the IMAP account is compared with what its client knows. The
// load is TestCrash's (SMTP deliveries to 1-3 accounts, POP3
// download-and-delete; account 0 only receives until the end), plus an
// IMAP client (APPEND, UID COPY, UID MOVE,
// UID EXPUNGE) on an account of its own, and submissions of mail for a
// remote domain (sometimes with a local recipient too) that stays in the
// outbound queue (its relay host refuses connections, its retries are a
// day apart). At the end every acknowledged message must be present
// exactly once (POP3, IMAP, `jodmai queue list`), nothing deleted by a
// completed QUIT or EXPUNGE may be back, and `jodmai check` must pass.
//
// Rounds: -crash.rounds or JODMAI_CRASH_ROUNDS, as for TestCrash.
func TestPowerLoss(t *testing.T) {
	sd := seed()
	rng := rand.New(rand.NewPCG(sd, 2))
	n := rounds()
	if powerRaceRounds > 0 && *roundsFlag == 0 && os.Getenv("JODMAI_CRASH_ROUNDS") == "" {
		n = powerRaceRounds
	}
	bin := proc.Build(t)
	closed := proc.FreePort(t, "127.0.0.1") // nothing listens there
	in := proc.New(t, bin, proc.Options{
		Services: []string{"smtp", "submission", "pop3", "imap"},
		Extra: fmt.Sprintf(`[remote]
relay_host = %q
connect_timeout = "1s"

[queue]
retry_min = "24h"
retry_max = "48h"

%s`, closed, smallStore),
	})
	if err := os.MkdirAll(in.Data, 0o700); err != nil {
		t.Fatal(err)
	}
	pfs := powerfs.MountTest(t, in.Data, powerfs.Options{Seed: sd})
	t.Cleanup(in.Kill)              // before the unmount
	t.Setenv(segmentDivisorEnv, "") // restored at the end; set per round
	t.Logf("seed %d (JODMAI_CRASH_SEED), %d rounds, data directory on powerfs", sd, n)

	users := []string{senderUser, imapUser}
	in.MustRun("", "domain", "add", "example.org")
	in.MustRun(senderPass+"\n", "user", "add", "--password-stdin", senderUser)
	in.MustRun(imapPass+"\n", "user", "add", "--password-stdin", imapUser)
	accounts := make([]int, numAccounts)
	for i := range numAccounts {
		in.MustRun(accountPass(i)+"\n", "user", "add", "--password-stdin", accountAddr(i))
		accounts[i] = i
		users = append(users, accountAddr(i))
	}
	// The admin commands said they were done: a power cut now must not
	// undo them.
	cut(t, pfs, 0, false)
	checkUsers(t, in, users, "after the set-up and a power cut")

	lg := newLedger(numAccounts)
	im := newIMAPModel()
	q := &queueLedger{sent: map[string]bool{}, acked: map[string]bool{}}
	jw := &journalWatch{}
	var ak afterKill
	var lost []string
	var cuts []powerfs.CutReport
	startupKills, fresh := 0, 0
	aimedKills := map[aim]int{}
	var spent struct{ start, load, cut, check time.Duration }
	begin := time.Now()
	for round := 1; round <= n; round++ {
		if round%4 == 2 {
			// A new account: the round's first delivery to it creates
			// its store (directory, index, body directory).
			i := lg.addAccount()
			in.MustRun(accountPass(i)+"\n", "user", "add", "--password-stdin", accountAddr(i))
			accounts = append(accounts, i)
			users = append(users, accountAddr(i))
			fresh++
		}
		// Two rounds in three shrink the journal's segments (1/64: 16
		// KiB doubling to 1 MiB), so that they fill and are retired
		// within the round; the third keeps the real sizes.
		if round%3 != 0 {
			os.Setenv(segmentDivisorEnv, "64")
		} else {
			os.Setenv(segmentDivisorEnv, "")
		}
		if round%7 == 3 {
			// Kill during start-up: the journal's replay and its
			// forced sync, the sweep, the opening of the databases.
			in.Start(false)
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
			in.Kill()
			startupKills++
		} else {
			t0 := time.Now()
			in.Start(true)
			spent.start += time.Since(t0)
			if err := im.verify(in.Addr("imap"), fmt.Sprintf("round %d start", round)); err != nil {
				t.Errorf("round %d: IMAP verification: %v", round, err)
			}
			t0 = time.Now()
			rc := newRoundCtl(round, accounts)
			// Account 0 only receives (read at the end): only the
			// journal's retirements and the replays sync its index,
			// as in issue 14's report.
			rc.quiet = map[int]bool{0: true}
			if round%4 == 3 {
				// Kill just after a journal segment was retired:
				// what its records' accounts wrote without fsync
				// must be durable by then.
				rc.aim = aimRetire
			}
			l := startLoad(in, rc, rng, lg, func(wg *sync.WaitGroup) {
				wg.Add(3)
				irng := rand.New(rand.NewPCG(rng.Uint64(), 200))
				srng := rand.New(rand.NewPCG(rng.Uint64(), 201))
				go func() {
					defer wg.Done()
					imapWorker(in.Addr("imap"), rc, irng, im)
				}()
				go func() {
					defer wg.Done()
					submitWorker(in.Addr("submission"), rc, srng, lg, q)
				}()
				go func() {
					defer wg.Done()
					jw.watch(filepath.Join(in.Data, "journal"), rc)
				}()
			})
			delay := time.Duration(500+rng.IntN(2000)) * time.Millisecond
			if a := rc.waitAndKill(in, rng, delay); a != aimNone {
				aimedKills[a]++
			}
			l.stop()
			spent.load += time.Since(t0)
		}
		t0 := time.Now()
		r := cut(t, pfs, round, round%2 == 0)
		cuts = append(cuts, r)
		spent.cut += time.Since(t0)
		t0 = time.Now()
		ak.check(t, in, round, "power cut")
		spent.check += time.Since(t0)
		if round%5 == 0 {
			checkUsers(t, in, users, fmt.Sprintf("round %d, after the power cut", round))
		}
	}

	// The final state, with a clean start and stop.
	in.Start(true)
	if err := im.verify(in.Addr("imap"), "final"); err != nil {
		t.Errorf("final IMAP verification: %v", err)
	}
	fin := finalCheck(t, in, lg, accounts)
	in.Stop()
	checkFinalStore(t, in, &ak)
	qc := q.check(t, in)
	checkUsers(t, in, users, "at the end")
	im.mu.Lock()
	for i, e := range im.errs {
		if i == 30 {
			t.Errorf("... and %d more IMAP errors", len(im.errs)-i)
			break
		}
		t.Error(e)
	}
	im.mu.Unlock()
	for _, rd := range slices.Sorted(maps.Keys(fin.lostByRound)) {
		lost = append(lost, fmt.Sprintf("round %d: %d", rd, fin.lostByRound[rd]))
	}

	var cutFiles, cutEntries, cutTorn int
	var cutKiB int64
	for _, r := range cuts {
		cutFiles += len(r.Files)
		cutEntries += len(r.Entries)
		cutTorn += len(r.Torn)
		for _, f := range r.Files {
			cutKiB += int64(f.Pages) * 4
		}
	}
	st := pfs.Stats()
	summary := fmt.Sprintf("power-loss test: %d rounds (%d killed during start-up, %d aimed at an end of DATA, %d at a POP3 QUIT, %d at a journal retirement), %d accounts created during the run, in %v, seed %d\n"+
		"%s\n"+
		"  lost acknowledged messages by the round they were sent in: %s\n"+
		"%s\n"+
		"%s\n"+
		"  power cuts: %d, every other one tearing: %d files reverted (%d KiB of unsynced pages dropped), %d directory entries reverted, %d writes torn\n"+
		"  powerfs: %d writes (%d MiB), %d fsyncs, %d fdatasyncs, %d directory fsyncs, %d renames, %d links, %d removes\n"+
		"  delivery journal under load: %s\n"+
		"  jodmai check: %d runs after a power cut (%d orphan bodies, %d tmp/ leftovers, %d indexes with a hot journal seen), clean at the end\n"+
		"  delivery journal replays: %d cuts left acknowledged deliveries unapplied; %d replayed\n"+
		"  time: %v starting servers, %v under load, %v in power cuts, %v in checks",
		n, startupKills, aimedKills[aimData], aimedKills[aimQuit], aimedKills[aimRetire], fresh, time.Since(begin).Round(time.Millisecond), sd,
		fin.summary(lg),
		orNone(lost),
		im.summary(),
		qc,
		len(cuts), cutFiles, cutKiB, cutEntries, cutTorn,
		st.Writes, st.WriteBytes>>20, st.Fsyncs, st.Fdatasyncs, st.DirFsyncs, st.Renames, st.Links, st.Removes,
		jw.summary(),
		ak.checks, ak.orphans, ak.staleTemp, ak.hotJournal,
		ak.replayRounds, ak.replayed,
		spent.start.Round(time.Millisecond), spent.load.Round(time.Millisecond), spent.cut.Round(time.Millisecond), spent.check.Round(time.Millisecond))
	t.Log(summary)
	fmt.Println(summary)
	if len(lg.acked) == 0 || len(lg.deleted) == 0 || im.appendOK == 0 || len(q.acked) == 0 {
		t.Errorf("the test did too little to mean anything: %d acknowledged, %d deleted, %d APPENDs, %d queued", len(lg.acked), len(lg.deleted), im.appendOK, len(q.acked))
	}
	if (jw.rotations == 0 || jw.retired == 0) && powerRaceRounds == 0 {
		t.Errorf("no journal segment both filled and was retired under load: %s", jw.summary())
	}
	if t.Failed() {
		t.Logf("server log (end):\n%s", in.LogTail())
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// powerRaceRounds, when set (race_test.go: under the race detector), is
// TestPowerLoss's default number of rounds, and its check that the
// journal's segments rotated and were retired is only reported.
var powerRaceRounds int

// segmentDivisorEnv divides the delivery journal's segment sizes of the
// servers started (see internal/store/journal.go).
const segmentDivisorEnv = "JODMAI_TEST_JOURNAL_SEGMENT_DIVISOR"

// cut cuts the power and logs what it dropped, briefly.
func cut(t *testing.T, pfs *powerfs.FS, round int, tear bool) powerfs.CutReport {
	t.Helper()
	r, err := pfs.PowerCut(powerfs.CutOptions{Tear: tear})
	if err != nil {
		t.Fatalf("round %d: %v", round, err)
	}
	var kib int64
	big := ""
	files := slices.Clone(r.Files)
	slices.SortFunc(files, func(x, y powerfs.FileLoss) int { return y.Pages - x.Pages })
	for _, f := range r.Files {
		kib += int64(f.Pages) * 4
	}
	for _, f := range files[:min(2, len(files))] {
		big += fmt.Sprintf("; %s %d -> %d bytes", f.Path, f.Size, f.DurableSize)
	}
	var ents []string
	for _, e := range r.Entries {
		if len(ents) == 8 {
			ents = append(ents, "...")
			break
		}
		ents = append(ents, e.Change+" "+e.Path)
	}
	t.Logf("round %d: power cut (tear %v): %d files reverted, %d KiB unsynced%s; %d entries reverted (%s); %d torn",
		round, tear, len(r.Files), kib, big, len(r.Entries), strings.Join(ents, ", "), len(r.Torn))
	return r
}

// checkUsers checks that every account the admin commands added is still
// there.
func checkUsers(t *testing.T, in *proc.Instance, users []string, when string) {
	t.Helper()
	out := in.MustRun("", "user", "list")
	for _, u := range users {
		if !strings.Contains(out, u) {
			t.Errorf("%s: account %s, added by a successful `jodmai user add`, is gone", when, u)
		}
	}
}

// The submission part: the sender account submits mail for the remote
// domain, which waits in the outbound queue; one in three also has a local
// recipient, delivered like the SMTP load's.
const (
	senderUser = "sender@example.org"
	senderPass = "crash-password-sender"
)

// queueLedger is what the submission client knows: the remote
// recipients (one per message, named after its marker) sent and
// acknowledged.
type queueLedger struct {
	mu                 sync.Mutex
	sent, acked        map[string]bool
	tx, txOK, txFailed int
}

// submitWorker submits messages over reused connections until stop.
func submitWorker(addr string, rc *roundCtl, rng *rand.Rand, lg *ledger, q *queueLedger) {
	seq := 0
	for !stopped(rc.stop) {
		c, conn, err := dialSMTP(addr)
		if err != nil {
			pause(rc.stop, 20*time.Millisecond)
			continue
		}
		conn.SetDeadline(time.Now().Add(ioTimeout))
		if err := c.Auth(smtp.PlainAuth("", senderUser, senderPass, "127.0.0.1")); err != nil {
			conn.Close()
			pause(rc.stop, 20*time.Millisecond)
			continue
		}
		for i := 0; i < maxPerConn && !stopped(rc.stop); i++ {
			marker := fmt.Sprintf("r%03d-s-%05d", rc.round, seq)
			seq++
			remote := "q-" + marker + "@remote.test"
			rcpts := []string{remote}
			var keys []key
			if rng.IntN(3) == 0 {
				a := pickAccounts(rng, rc.accounts, 1)[0]
				rcpts = append(rcpts, accountAddr(a))
				keys = append(keys, key{a, marker})
			}
			msg := newMessage(rng, marker, rcpts)
			lg.mark(lg.sent, keys)
			q.mu.Lock()
			q.sent[remote] = true
			q.tx++
			q.mu.Unlock()
			err := sendMail(c, conn, senderUser, rcpts, msg, func() {})
			q.mu.Lock()
			if err == nil {
				q.acked[remote] = true
				q.txOK++
			} else {
				q.txFailed++
			}
			q.mu.Unlock()
			if err != nil {
				break
			}
			lg.mark(lg.acked, keys)
		}
		conn.Close()
	}
}

var remoteRcpt = regexp.MustCompile(`q-r[0-9]+-s-[0-9]+@remote\.test`)

// check lists the queue (`jodmai queue list`, the server stopped) and
// checks that every acknowledged submission is queued exactly once, and
// nothing unknown is. It returns a summary line.
func (q *queueLedger) check(t *testing.T, in *proc.Instance) string {
	t.Helper()
	code, out := in.Run("", "queue", "list")
	if code != 0 {
		t.Errorf("jodmai queue list: exit %d\n%s", code, out)
		return "  queue: not listed"
	}
	count := map[string]int{}
	for _, a := range remoteRcpt.FindAllString(out, -1) {
		count[a]++
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	var lost, dup, unknown, unackedQueued int
	report := func(format string, a ...any) {
		if lost+dup+unknown <= 30 {
			t.Errorf(format, a...)
		} else {
			t.Fail()
		}
	}
	for _, a := range slices.Sorted(maps.Keys(q.sent)) {
		c := count[a]
		switch {
		case c > 1:
			dup++
			report("queue: %s queued %d times", a, c)
		case q.acked[a] && c == 0:
			lost++
			report("queue: acknowledged submission to %s is not in the queue", a)
		case !q.acked[a] && c == 1:
			unackedQueued++
		}
	}
	for a := range count {
		if !q.sent[a] {
			unknown++
			report("queue: %s queued but never submitted", a)
		}
	}
	return fmt.Sprintf("  queue: %d submissions, %d acknowledged, %d failed or cut by a kill; %d queued at the end (%d without a 250); lost acknowledged: %d, queued twice: %d, unknown: %d",
		q.tx, q.txOK, q.txFailed, len(count), unackedQueued, lost, dup, unknown)
}

// journalWatch records the delivery journal's segments seen under load:
// each server start opens one segment; every further one seen in the
// same run exists because the one before it filled (a rotation), and a
// segment that disappears while the server runs was retired.
type journalWatch struct {
	mu                    sync.Mutex
	rotations, retired    int
	sizes                 map[int64]int // capacity -> segments seen
	roundsWithRotation    int
	maxRotationsInARound  int
	roundsWithRetirement  int
	roundsWithoutRotation int
}

// watch lists dir every 10 ms until stop. (Plain system calls on the
// mount: the test process serves it, and must not mmap its files.)
// A segment's disappearance fires rc's aimRetire.
func (w *journalWatch) watch(dir string, rc *roundCtl) {
	stop := rc.stop
	seen := map[string]int64{}
	gone := map[string]bool{}
	for {
		ents, _ := os.ReadDir(dir)
		now := map[string]bool{}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".log") {
				continue
			}
			now[e.Name()] = true
			if info, err := e.Info(); err == nil {
				seen[e.Name()] = max(seen[e.Name()], info.Size())
			}
		}
		for name := range seen {
			if !now[name] && !gone[name] {
				gone[name] = true
				rc.fire(aimRetire)
			}
		}
		if stopped(stop) {
			break
		}
		pause(stop, 10*time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sizes == nil {
		w.sizes = map[int64]int{}
	}
	for _, size := range seen {
		w.sizes[size]++
	}
	rot := max(len(seen)-1, 0)
	w.rotations += rot
	w.retired += len(gone)
	w.maxRotationsInARound = max(w.maxRotationsInARound, rot)
	if rot > 0 {
		w.roundsWithRotation++
	} else {
		w.roundsWithoutRotation++
	}
	if len(gone) > 0 {
		w.roundsWithRetirement++
	}
}

func (w *journalWatch) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var parts []string
	for _, size := range slices.Sorted(maps.Keys(w.sizes)) {
		parts = append(parts, fmt.Sprintf("%d of %d KiB", w.sizes[size], size>>10))
	}
	return fmt.Sprintf("%d rotations (in %d rounds, up to %d in one), %d segments retired under load (in %d rounds); segments seen: %s",
		w.rotations, w.roundsWithRotation, w.maxRotationsInARound, w.retired, w.roundsWithRetirement, strings.Join(parts, ", "))
}
