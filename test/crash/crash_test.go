package crash

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv/proc"
	"github.com/jodmai/jodmai/internal/userdb"
)

var roundsFlag = flag.Int("crash.rounds", 0, "kill-and-restart rounds of TestCrash (default 20, or $JODMAI_CRASH_ROUNDS)")

const (
	defaultRounds = 20
	numAccounts   = 3
	smtpWorkers   = 4
	// maxPerConn is how many messages an SMTP connection sends before
	// it reconnects.
	maxPerConn = 20
)

// key is one copy of one test message: the account (index) and the
// message's marker.
type key struct {
	acct   int
	marker string
}

// ledger is what the clients know for sure. A message is acked once the
// 250 after its DATA was read; deleted once the +OK to the QUIT of the
// session that DELEted it was read; maybe deleted when that QUIT was sent
// but its reply never came.
type ledger struct {
	mu      sync.Mutex
	sent    map[key]bool
	acked   map[key]bool
	deleted map[key]bool
	maybe   map[key]bool
	// uidls maps account -> UIDL -> marker, over the whole run: a UIDL
	// must never name two messages (RFC 1939 §7), crashes included.
	uidls   []map[string]string
	markers []map[string]string // account -> marker -> UIDL
	errs    []string

	smtpTx, smtpAcked, smtpFailed                             int
	popSessions, popQuitOK, popQuitErr, popQuitLost, popDrops int
	retrieved                                                 int
	// Broken promises seen while retrieving (seen): a UIDL naming a
	// second message, a message stored twice, one deleted by a
	// completed QUIT seen again.
	uidlReused, storedTwice, deletedBack int
}

// newLedger returns a ledger for accounts 0 to n-1.
func newLedger(n int) *ledger {
	l := &ledger{sent: map[key]bool{}, acked: map[key]bool{}, deleted: map[key]bool{}, maybe: map[key]bool{}}
	for range n {
		l.addAccount()
	}
	return l
}

// addAccount adds an account to the ledger and returns its index.
func (l *ledger) addAccount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.uidls = append(l.uidls, map[string]string{})
	l.markers = append(l.markers, map[string]string{})
	return len(l.uidls) - 1
}

func (l *ledger) fail(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, fmt.Sprintf(format, a...))
}

// seen records that UIDL id of account acct holds marker.
func (l *ledger) seen(acct int, id, marker string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.retrieved++
	if m, ok := l.uidls[acct][id]; ok && m != marker {
		l.uidlReused++
		l.errs = append(l.errs, fmt.Sprintf("account %d: UIDL %s named %s and later %s: UIDL reused", acct, id, m, marker))
	}
	l.uidls[acct][id] = marker
	if u, ok := l.markers[acct][marker]; ok && u != id {
		l.storedTwice++
		l.errs = append(l.errs, fmt.Sprintf("account %d: message %s stored twice (UIDL %s and %s)", acct, marker, u, id))
	}
	if l.deleted[key{acct, marker}] {
		// Caught here, not only at the end: a later session could
		// delete it again before the final count.
		l.deletedBack++
		l.errs = append(l.errs, fmt.Sprintf("account %d: message %s deleted by a completed POP3 QUIT is back (UIDL %s)", acct, marker, id))
	}
	l.markers[acct][marker] = id
	if !l.sent[key{acct, marker}] {
		l.errs = append(l.errs, fmt.Sprintf("account %d: message %s was never sent to it", acct, marker))
	}
}

func (l *ledger) mark(m map[key]bool, keys []key) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		m[k] = true
	}
}

// smallStore keeps at most two accounts open, closing idle ones after a
// second, so that accounts close and reopen (their journaled deliveries
// applied and synced at close) between and during the kills.
const smallStore = `[store]
max_open_accounts = 2
account_idle = "1s"
`

// forwardAndVacation makes address forward its mail to a remote address,
// keeping its copy (so the ledger still finds every message in its
// mailbox), and turns its vacation reply on: every delivery to it also
// writes a forwarded copy into the outbound queue before the 250, under
// the same kills, and the first one queues an auto-reply.
func forwardAndVacation(t *testing.T, dataDir, address string) {
	t.Helper()
	ctx := context.Background()
	db, err := userdb.Open(ctx, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	acc, err := db.Account(ctx, address)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetForward(ctx, acc.ID, userdb.Forward{To: []string{"fwd@remote.test"}, KeepCopy: true}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetVacation(ctx, acc.ID, userdb.Vacation{Enabled: true, Body: "Away.\n"}); err != nil {
		t.Fatal(err)
	}
}

// checkForwards checks, with the server stopped, that every
// acknowledged delivery to account acct (forwardAndVacation) has its
// forwarded copy in the queue (they cannot leave it: the queue's DNS
// lookups fail), and that the sender got at most one vacation reply. It
// returns a summary line.
func checkForwards(t *testing.T, in *proc.Instance, lg *ledger, acct int) string {
	t.Helper()
	code, out := in.Run("", "queue", "list")
	if code != 0 {
		t.Errorf("jodmai queue list: exit %d\n%s", code, out)
		return "  forwarding: queue not listed"
	}
	forwards := strings.Count(out, "fwd@remote.test")
	replies := strings.Count(out, "crash@sender.example")
	lg.mu.Lock()
	acked := 0
	for k := range lg.acked {
		if k.acct == acct {
			acked++
		}
	}
	lg.mu.Unlock()
	if forwards < acked {
		t.Errorf("forwarding: %d deliveries to %s acknowledged, only %d forwarded copies queued", acked, accountAddr(acct), forwards)
	}
	if replies > 1 {
		t.Errorf("vacation: %d replies queued to the one sender, want at most 1", replies)
	}
	return fmt.Sprintf("  forwarding: %d deliveries to %s acknowledged, %d forwarded copies queued; vacation replies queued: %d",
		acked, accountAddr(acct), forwards, replies)
}

func accountAddr(i int) string { return fmt.Sprintf("user%d@example.org", i) }
func accountPass(i int) string { return fmt.Sprintf("crash-password-%d", i) }

func rounds() int {
	n := defaultRounds
	if v, err := strconv.Atoi(os.Getenv("JODMAI_CRASH_ROUNDS")); err == nil && v > 0 {
		n = v
	}
	if *roundsFlag > 0 {
		n = *roundsFlag
	}
	return n
}

func seed() uint64 {
	if v, err := strconv.ParseUint(os.Getenv("JODMAI_CRASH_SEED"), 10, 64); err == nil {
		return v
	}
	return uint64(time.Now().UnixNano())
}

// TestCrash kills jodmai with SIGKILL under SMTP and POP3 load, again and
// again, and checks that it kept its promises. See the package doc.
func TestCrash(t *testing.T) {
	bin := proc.Build(t)
	in := proc.New(t, bin, proc.Options{Extra: smallStore})
	sd := seed()
	rng := rand.New(rand.NewPCG(sd, 1))
	n := rounds()
	t.Logf("seed %d (JODMAI_CRASH_SEED), %d rounds", sd, n)

	in.MustRun("", "domain", "add", "example.org")
	accounts := make([]int, numAccounts)
	for i := range numAccounts {
		in.MustRun(accountPass(i)+"\n", "user", "add", "--password-stdin", accountAddr(i))
		accounts[i] = i
	}
	forwardAndVacation(t, in.Data, accountAddr(1))

	lg := newLedger(numAccounts)
	var ak afterKill
	startupKills := 0
	aimedKills := map[aim]int{}
	var spent struct{ start, load, check time.Duration }
	begin := time.Now()
	for round := 1; round <= n; round++ {
		if round == 1 || round%7 == 3 {
			// Kill during start-up: before or during the sweep, the
			// certificate's creation, the opening of the databases.
			in.Start(false)
			time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
			in.Kill()
			startupKills++
		} else {
			t0 := time.Now()
			in.Start(true)
			spent.start += time.Since(t0)
			t0 = time.Now()
			rc := newRoundCtl(round, accounts)
			delay := time.Duration(100+rng.IntN(1400)) * time.Millisecond
			l := startLoad(in, rc, rng, lg, nil)
			if round%5 == 0 {
				// `jodmai check` beside the running, busy server: it
				// must find nothing wrong and change nothing.
				code, out := in.Run("", "check")
				ak.liveChecks++
				if code != 0 || !strings.Contains(out, "server running") {
					t.Errorf("round %d: jodmai check beside the running server: exit %d\n%s", round, code, out)
				}
			}
			if a := rc.waitAndKill(in, rng, delay); a != aimNone {
				aimedKills[a]++
			}
			l.stop()
			spent.load += time.Since(t0)
		}

		// With the server dead, before the restart's sweep: the only
		// inconsistencies a crash may leave are unreferenced files.
		t0 := time.Now()
		ak.check(t, in, round, "SIGKILL")
		spent.check += time.Since(t0)
		if t.Failed() {
			break
		}
	}

	// The final state, with a clean start and stop.
	in.Start(true)
	fin := finalCheck(t, in, lg, accounts)
	in.Stop()
	checkFinalStore(t, in, &ak)
	fwdSummary := checkForwards(t, in, lg, 1)

	summary := fmt.Sprintf("crash test: %d rounds (%d killed during start-up, %d aimed at an end of DATA, %d at a POP3 QUIT) in %v, seed %d\n"+
		"%s\n"+
		"  jodmai check: %d runs after SIGKILL (%d orphan bodies, %d tmp/ leftovers, %d indexes with a hot journal seen, nothing else), %d beside the running server, clean at the end\n"+
		"  delivery journal: %d kills left acknowledged deliveries unapplied; %d replayed\n"+
		"  time: %v starting servers, %v under load, %v in checks after kills",
		n, startupKills, aimedKills[aimData], aimedKills[aimQuit], time.Since(begin).Round(time.Millisecond), sd,
		fin.summary(lg),
		ak.checks, ak.orphans, ak.staleTemp, ak.hotJournal, ak.liveChecks,
		ak.replayRounds, ak.replayed,
		spent.start.Round(time.Millisecond), spent.load.Round(time.Millisecond), spent.check.Round(time.Millisecond))
	summary += "\n" + fwdSummary
	t.Log(summary)
	fmt.Println(summary)
	if len(lg.acked) == 0 || len(lg.deleted) == 0 {
		t.Errorf("the test did too little to mean anything: %d acknowledged, %d deleted", len(lg.acked), len(lg.deleted))
	}
	if t.Failed() {
		t.Logf("server log (end):\n%s", in.LogTail())
	}
}

// afterKill counts what `jodmai check` found in the stores left by kills
// (and power cuts).
type afterKill struct {
	checks, orphans, staleTemp, hotJournal, liveChecks, replayRounds, replayed int
	// bodyFiles and inlineBodies are the most each kind of body that one
	// check counted: the kills must have found both kinds stored.
	bodyFiles, inlineBodies int
}

var bodyCounts = regexp.MustCompile(`(\d+) body files and (\d+) inline bodies`)

// sawBodies records the body counts of one check's output.
func (ak *afterKill) sawBodies(out string) {
	if m := bodyCounts.FindStringSubmatch(out); m != nil {
		f, _ := strconv.Atoi(m[1])
		i, _ := strconv.Atoi(m[2])
		ak.bodyFiles, ak.inlineBodies = max(ak.bodyFiles, f), max(ak.inlineBodies, i)
	}
}

// check runs `jodmai check` on the stopped server's data directory: the
// only inconsistencies a crash may leave are unreferenced files (and a hot
// journal of an index being created); anything else fails the test.
// Deliveries the crash caught between the delivery journal and the
// accounts are applied by check's open, then verified like every other
// message. what names the crash ("SIGKILL", "power cut") for messages.
func (ak *afterKill) check(t *testing.T, in *proc.Instance, round int, what string) {
	t.Helper()
	code, out := in.Run("", "check")
	ak.checks++
	ak.sawBodies(out)
	for _, line := range strings.Split(out, "\n") {
		kind, _, _ := strings.Cut(line, " ")
		kind = strings.TrimSuffix(kind, ":")
		if kind == "journal-replayed" {
			var n int
			fmt.Sscanf(line, "journal-replayed: %d", &n)
			ak.replayRounds++
			ak.replayed += n
			continue
		}
		switch store.ProblemKind(kind) {
		case store.ProblemOrphanBody:
			if strings.Contains(line, "inline body") {
				// Written in the transaction of its rows: never
				// left alone by a crash.
				t.Errorf("round %d: after %s, jodmai check: %s", round, what, line)
			}
			ak.orphans++
		case store.ProblemStaleTemp:
			ak.staleTemp++
		case store.ProblemHotJournal:
			// A kill while an account's index was being created
			// (its switch to WAL); the next start rolls it back.
			ak.hotJournal++
		case store.ProblemIndexUnreadable, store.ProblemIndexMissing, store.ProblemIndexVersion, store.ProblemIntegrity,
			store.ProblemForeignKey, store.ProblemMissingBody, store.ProblemSizeMismatch, store.ProblemUIDNext,
			store.ProblemHighestModSeq, store.ProblemCounter, store.ProblemUnknownAccount, store.ProblemDatabase:
			t.Errorf("round %d: after %s, jodmai check: %s", round, what, line)
		}
	}
	if code != 0 && code != 1 {
		t.Errorf("round %d: jodmai check after %s: exit %d\n%s", round, what, code, out)
	}
}

// checkFinalStore runs `jodmai check` on the final, cleanly stopped store:
// it must be consistent; and the stores the kills left (ak's checks) or the
// final one must have held both body files and inline bodies, so that the
// kills hit both. (The final store alone may hold no body file: the POP3
// workers delete most messages, and few are large.)
func checkFinalStore(t *testing.T, in *proc.Instance, ak *afterKill) {
	t.Helper()
	code, out := in.Run("", "check")
	if code != 0 || !strings.Contains(out, "store consistent") {
		t.Errorf("jodmai check on the final store: exit %d\n%s", code, out)
	}
	ak.sawBodies(out)
	if ak.bodyFiles == 0 || ak.inlineBodies == 0 {
		t.Errorf("no check saw both body files and inline bodies (at most %d and %d)\n%s", ak.bodyFiles, ak.inlineBodies, out)
	} else {
		t.Logf("body files and inline bodies seen by the checks: up to %d and %d", ak.bodyFiles, ak.inlineBodies)
	}
}

// load is one round's client load: the workers and their stop.
type load struct {
	rc *roundCtl
	wg sync.WaitGroup
}

// startLoad starts the round's workers: SMTP deliveries to rc.accounts,
// and a POP3 download-and-delete worker for each of them; extra, if not
// nil, starts more workers (it must call wg.Done for each wg.Add).
func startLoad(in *proc.Instance, rc *roundCtl, rng *rand.Rand, lg *ledger, extra func(wg *sync.WaitGroup)) *load {
	l := &load{rc: rc}
	for w := range smtpWorkers {
		l.wg.Add(1)
		wrng := rand.New(rand.NewPCG(rng.Uint64(), uint64(w)))
		go func() {
			defer l.wg.Done()
			smtpWorker(in.Addr("smtp"), rc, w, wrng, lg)
		}()
	}
	for _, a := range rc.accounts {
		if rc.quiet[a] {
			continue
		}
		l.wg.Add(1)
		wrng := rand.New(rand.NewPCG(rng.Uint64(), uint64(100+a)))
		go func() {
			defer l.wg.Done()
			pop3Worker(in.Addr("pop3"), a, rc, wrng, lg)
		}()
	}
	if extra != nil {
		extra(&l.wg)
	}
	return l
}

// stop ends the round's workers (after the kill) and waits for them.
func (l *load) stop() {
	close(l.rc.stop)
	l.wg.Wait()
}

// finalCounts are the final state's numbers against the ledger.
type finalCounts struct {
	presentTotal, ackedKept, lostAcked, ackedMaybe, maybeKept, unackedPresent, resurrected, dup, deletedAcked int
	// lostByRound counts the lost acknowledged messages by the round
	// they were sent in.
	lostByRound map[int]int
}

// finalCheck reads every account's inbox over POP3 (the server running)
// and checks the ledger's promises: every acknowledged message not
// deleted is present exactly once, nothing deleted by a completed QUIT is
// back, nothing is present that was not sent. It reports the errors the
// workers recorded too.
func finalCheck(t *testing.T, in *proc.Instance, lg *ledger, accounts []int) finalCounts {
	t.Helper()
	present := map[int]map[string]int{}
	for _, a := range accounts {
		present[a] = finalInbox(t, in.Addr("pop3"), a, lg)
	}
	lg.mu.Lock()
	defer lg.mu.Unlock()
	for i, e := range lg.errs {
		if i == 50 {
			t.Errorf("... and %d more errors", len(lg.errs)-i)
			break
		}
		t.Error(e)
	}
	fc := finalCounts{lostByRound: map[int]int{}}
	reported := 0
	report := func(format string, a ...any) {
		if reported++; reported <= 50 {
			t.Errorf(format, a...)
		} else if reported == 51 {
			t.Errorf("... and more")
		} else {
			t.Fail()
		}
	}
	for _, a := range accounts {
		for m, c := range present[a] {
			fc.presentTotal += c
			k := key{a, m}
			if c > 1 {
				fc.dup++
				report("account %d: message %s present %d times", a, m, c)
			}
			if !lg.sent[k] {
				report("account %d: message %s present but never sent to it", a, m)
			}
			if !lg.acked[k] {
				fc.unackedPresent++
			}
		}
	}
	var keys []key
	for k := range lg.sent {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y key) int { return strings.Compare(fmt.Sprint(x), fmt.Sprint(y)) })
	for _, k := range keys {
		c := present[k.acct][k.marker]
		switch {
		case lg.deleted[k]:
			if c != 0 {
				fc.resurrected++
				report("account %d: message %s deleted by a completed POP3 QUIT is back", k.acct, k.marker)
			}
		case lg.acked[k] && lg.maybe[k]:
			fc.ackedMaybe++ // present or not: its QUIT's reply was never seen
			if c > 1 {
				report("account %d: message %s present %d times", k.acct, k.marker, c)
			} else if c == 1 {
				fc.maybeKept++
			}
		case lg.acked[k]:
			fc.ackedKept++
			if c != 1 {
				fc.lostAcked++
				fc.lostByRound[markerRound(k.marker)]++
				report("account %d: acknowledged message %s present %d times, want 1", k.acct, k.marker, c)
			}
		}
	}
	for k := range lg.deleted {
		if lg.acked[k] {
			fc.deletedAcked++
		}
	}
	return fc
}

// summary describes the load and the final counts; the caller holds no
// lock.
func (fc finalCounts) summary(lg *ledger) string {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	return fmt.Sprintf("  smtp: %d transactions, %d acknowledged (250 read), %d failed or cut by a kill; %d message copies sent, %d acknowledged\n"+
		"  pop3: %d sessions, %d QUIT +OK, %d QUIT -ERR, %d QUIT unanswered (kill), %d dropped without QUIT; %d RETRs checked\n"+
		"  deleted by a confirmed QUIT: %d (%d of them acknowledged); maybe deleted: %d\n"+
		"  final: %d messages present; %d acknowledged and not deleted, all present exactly once: %v; %d acknowledged with an unanswered QUIT (%d of them kept); %d present without a 250\n"+
		"  lost acknowledged: %d, deleted but back: %d (%d seen by POP3 sessions), duplicated: %d, UIDLs reused: %d",
		lg.smtpTx, lg.smtpAcked, lg.smtpFailed, len(lg.sent), len(lg.acked),
		lg.popSessions, lg.popQuitOK, lg.popQuitErr, lg.popQuitLost, lg.popDrops, lg.retrieved,
		len(lg.deleted), fc.deletedAcked, len(lg.maybe),
		fc.presentTotal, fc.ackedKept, fc.lostAcked == 0, fc.ackedMaybe, fc.maybeKept, fc.unackedPresent,
		fc.lostAcked, fc.resurrected, lg.deletedBack, fc.dup, lg.uidlReused)
}

// markerRound returns the round a marker was sent in ("r007-..." -> 7).
func markerRound(marker string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(strings.SplitN(marker, "-", 2)[0], "r"))
	if err != nil {
		return 1 << 30
	}
	return n
}

// aim says which moment a round's kill aims at.
type aim int

const (
	aimNone   aim = iota // a random moment
	aimData              // an SMTP end of DATA: body fsync, link, index commit
	aimQuit              // a POP3 QUIT with deletions: the expunge
	aimRetire            // a delivery journal segment just removed (TestPowerLoss)
)

func (a aim) String() string {
	return [...]string{"random", "end of DATA", "POP3 QUIT", "journal retirement"}[a]
}

// roundCtl is what the workers of one round share.
type roundCtl struct {
	round    int
	accounts []int // the accounts SMTP delivers to and POP3 empties
	// quiet accounts get no POP3 worker: nothing but deliveries
	// commits to them.
	quiet   map[int]bool
	stop    chan struct{}
	aim     aim
	armed   atomic.Bool
	trigger chan struct{}
}

// newRoundCtl prepares round: some rounds aim the kill at a commit (a
// worker about to send the end of DATA, or a QUIT that expunges, pulls
// the trigger, and the kill follows 0-4 ms later).
func newRoundCtl(round int, accounts []int) *roundCtl {
	rc := &roundCtl{round: round, accounts: accounts, stop: make(chan struct{}), trigger: make(chan struct{}, 1)}
	switch round % 4 {
	case 1:
		rc.aim = aimData
	case 2:
		rc.aim = aimQuit
	}
	return rc
}

// waitAndKill lets the load run for about delay and kills the server: at
// a random moment, or for an aimed round at the next aimed-at moment
// after the load built up (giving up after delay). It returns the aim
// that was hit, or aimNone.
func (rc *roundCtl) waitAndKill(in *proc.Instance, rng *rand.Rand, delay time.Duration) aim {
	hit := aimNone
	if rc.aim == aimNone {
		time.Sleep(delay)
	} else {
		time.Sleep(delay / 4)
		rc.armed.Store(true)
		select {
		case <-rc.trigger:
			time.Sleep(time.Duration(rng.IntN(4000)) * time.Microsecond)
			hit = rc.aim
		case <-time.After(delay):
		}
	}
	in.Kill()
	return hit
}

// fire tells the main goroutine that the aimed-at moment is now.
func (rc *roundCtl) fire(a aim) {
	if rc.aim != a || !rc.armed.Load() {
		return
	}
	select {
	case rc.trigger <- struct{}{}:
	default:
	}
}

func stopped(stop chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

func pause(stop chan struct{}, d time.Duration) {
	select {
	case <-stop:
	case <-time.After(d):
	}
}

// smtpWorker delivers messages over reused connections until stop.
func smtpWorker(addr string, rc *roundCtl, w int, rng *rand.Rand, lg *ledger) {
	round, stop := rc.round, rc.stop
	seq := 0
	for !stopped(stop) {
		c, conn, err := dialSMTP(addr)
		if err != nil {
			pause(stop, 20*time.Millisecond)
			continue
		}
		for i := 0; i < maxPerConn && !stopped(stop); i++ {
			marker := fmt.Sprintf("r%03d-w%d-%05d", round, w, seq)
			seq++
			// One transaction to two or three accounts now and
			// then: one body file (hard links) or one journal group,
			// several index rows; one 250 covers them all.
			n := 1
			if rng.IntN(4) == 0 {
				n = 2 + rng.IntN(2)
			}
			accts := pickAccounts(rng, rc.accounts, n)
			var rcpts []string
			var keys []key
			for _, a := range accts {
				rcpts = append(rcpts, accountAddr(a))
				keys = append(keys, key{a, marker})
			}
			msg := newMessage(rng, marker, rcpts)
			lg.mark(lg.sent, keys)
			err := sendMail(c, conn, "crash@sender.example", rcpts, msg, func() { rc.fire(aimData) })
			lg.mu.Lock()
			lg.smtpTx++
			if err == nil {
				lg.smtpAcked++
			} else {
				lg.smtpFailed++
			}
			lg.mu.Unlock()
			if err != nil {
				break
			}
			lg.mark(lg.acked, keys)
		}
		conn.Close()
	}
}

// pickAccounts picks n distinct accounts (fewer if there are fewer).
func pickAccounts(rng *rand.Rand, accounts []int, n int) []int {
	perm := rng.Perm(len(accounts))
	out := make([]int, 0, n)
	for _, i := range perm[:min(n, len(perm))] {
		out = append(out, accounts[i])
	}
	return out
}

// pop3Worker downloads and deletes some messages of one account per
// session until stop.
func pop3Worker(addr string, acct int, rc *roundCtl, rng *rand.Rand, lg *ledger) {
	stop := rc.stop
	for !stopped(stop) {
		p, err := dialPOP3(addr, accountAddr(acct), accountPass(acct))
		if err != nil {
			var neg errNegative
			if errors.As(err, &neg) && !strings.Contains(neg.line, "IN-USE") && !stopped(stop) {
				lg.fail("account %d: POP3 login refused: %s", acct, neg.line)
			}
			pause(stop, 20*time.Millisecond)
			continue
		}
		lg.mu.Lock()
		lg.popSessions++
		lg.mu.Unlock()
		popSession(p, acct, rc, rng, lg)
		p.close()
		pause(stop, time.Duration(rng.IntN(30))*time.Millisecond)
	}
}

// popSession retrieves some messages and deletes those of earlier rounds:
// a message is only deleted after it survived a kill, so an acknowledged
// message the kill of its round lost is never mistaken for a deleted one.
func popSession(p *pop3, acct int, rc *roundCtl, rng *rand.Rand, lg *ledger) {
	round := rc.round
	ids, err := p.uidl()
	if err != nil {
		return
	}
	sizes, err := p.list()
	if err != nil {
		return
	}
	nums := make([]int, 0, len(ids))
	for n := range ids {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	rng.Shuffle(len(nums), func(i, j int) { nums[i], nums[j] = nums[j], nums[i] })
	k := min(len(nums), 1+rng.IntN(10))
	if rng.IntN(5) == 0 {
		k = len(nums) // empty the maildrop now and then
	}
	var dele []key
	for _, n := range nums[:k] {
		body, err := p.retr(n)
		if err != nil {
			var neg errNegative
			if errors.As(err, &neg) {
				lg.fail("account %d: RETR %d (UIDL %s): %s", acct, n, ids[n], neg.line)
			}
			return
		}
		if int64(len(body)) != sizes[n] {
			lg.fail("account %d: message %d: LIST said %d octets, RETR sent %d", acct, n, sizes[n], len(body))
		}
		marker, err := parseStored(body)
		if err != nil {
			lg.fail("account %d: message %d (UIDL %s): %v", acct, n, ids[n], err)
			return
		}
		lg.seen(acct, ids[n], marker)
		if markerRound(marker) >= round {
			continue
		}
		if _, err := p.cmd(fmt.Sprintf("DELE %d", n)); err != nil {
			return
		}
		dele = append(dele, key{acct, marker})
	}
	if rng.IntN(10) == 0 {
		// RFC 1939 §6: a session that ends without QUIT deletes nothing.
		lg.mu.Lock()
		lg.popDrops++
		lg.mu.Unlock()
		return
	}
	if len(dele) > 0 {
		rc.fire(aimQuit)
	}
	reply, err := p.cmd("QUIT")
	var neg errNegative
	switch {
	case err == nil:
		_ = reply
		lg.mark(lg.deleted, dele)
		lg.mu.Lock()
		lg.popQuitOK++
		lg.mu.Unlock()
	case errors.As(err, &neg):
		// The store failed: every message is kept (RFC 1939 §6 allows
		// this -ERR).
		lg.mu.Lock()
		lg.popQuitErr++
		lg.mu.Unlock()
	default:
		lg.mark(lg.maybe, dele)
		lg.mu.Lock()
		lg.popQuitLost++
		lg.mu.Unlock()
	}
}

// finalInbox reads every message of an account over POP3 (deleting
// nothing) and counts the markers.
func finalInbox(t *testing.T, addr string, acct int, lg *ledger) map[string]int {
	t.Helper()
	p, err := dialPOP3(addr, accountAddr(acct), accountPass(acct))
	if err != nil {
		t.Fatalf("account %d: final POP3 login: %v", acct, err)
	}
	defer p.close()
	ids, err := p.uidl()
	if err != nil {
		t.Fatalf("account %d: UIDL: %v", acct, err)
	}
	sizes, err := p.list()
	if err != nil {
		t.Fatalf("account %d: LIST: %v", acct, err)
	}
	present := map[string]int{}
	for n := 1; n <= len(ids); n++ {
		body, err := p.retr(n)
		if err != nil {
			t.Fatalf("account %d: RETR %d: %v", acct, n, err)
		}
		if int64(len(body)) != sizes[n] {
			t.Errorf("account %d: message %d: LIST said %d octets, RETR sent %d", acct, n, sizes[n], len(body))
		}
		marker, err := parseStored(body)
		if err != nil {
			t.Errorf("account %d: message %d: %v", acct, n, err)
			continue
		}
		lg.seen(acct, ids[n], marker)
		present[marker]++
	}
	if _, err := p.cmd("QUIT"); err != nil {
		t.Errorf("account %d: QUIT: %v", acct, err)
	}
	return present
}
