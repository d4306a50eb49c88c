package crash

import (
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
}

func newLedger() *ledger {
	l := &ledger{sent: map[key]bool{}, acked: map[key]bool{}, deleted: map[key]bool{}, maybe: map[key]bool{}}
	for range numAccounts {
		l.uidls = append(l.uidls, map[string]string{})
		l.markers = append(l.markers, map[string]string{})
	}
	return l
}

func (l *ledger) fail(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 100 {
		l.errs = append(l.errs, fmt.Sprintf(format, a...))
	}
}

// seen records that UIDL id of account acct holds marker.
func (l *ledger) seen(acct int, id, marker string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.retrieved++
	if m, ok := l.uidls[acct][id]; ok && m != marker {
		l.errs = append(l.errs, fmt.Sprintf("account %d: UIDL %s named %s and later %s: UIDL reused", acct, id, m, marker))
	}
	l.uidls[acct][id] = marker
	if u, ok := l.markers[acct][marker]; ok && u != id {
		l.errs = append(l.errs, fmt.Sprintf("account %d: message %s stored twice (UIDL %s and %s)", acct, marker, u, id))
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
	in := proc.New(t, bin, proc.Options{})
	sd := seed()
	rng := rand.New(rand.NewPCG(sd, 1))
	n := rounds()
	t.Logf("seed %d (JODMAI_CRASH_SEED), %d rounds", sd, n)

	in.MustRun("", "domain", "add", "example.org")
	for i := range numAccounts {
		in.MustRun(accountPass(i)+"\n", "user", "add", "--password-stdin", accountAddr(i))
	}

	lg := newLedger()
	var afterKill struct{ checks, orphans, staleTemp, hotJournal, liveChecks, replayRounds, replayed int }
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
			stop := make(chan struct{})
			// Some rounds aim the kill at a commit: a worker about
			// to send the end of DATA, or a QUIT that expunges,
			// pulls the trigger, and the kill follows 0-4 ms later.
			rc := &roundCtl{round: round, stop: stop, trigger: make(chan struct{}, 1)}
			switch round % 4 {
			case 1:
				rc.aim = aimData
			case 2:
				rc.aim = aimQuit
			}
			var wg sync.WaitGroup
			for w := range smtpWorkers {
				wg.Add(1)
				wrng := rand.New(rand.NewPCG(rng.Uint64(), uint64(w)))
				go func() {
					defer wg.Done()
					smtpWorker(in.Addr("smtp"), rc, w, wrng, lg)
				}()
			}
			for a := range numAccounts {
				wg.Add(1)
				wrng := rand.New(rand.NewPCG(rng.Uint64(), uint64(100+a)))
				go func() {
					defer wg.Done()
					pop3Worker(in.Addr("pop3"), a, rc, wrng, lg)
				}()
			}
			delay := time.Duration(100+rng.IntN(1400)) * time.Millisecond
			if round%5 == 0 {
				// `jodmai check` beside the running, busy server: it
				// must find nothing wrong and change nothing.
				code, out := in.Run("", "check")
				afterKill.liveChecks++
				if code != 0 || !strings.Contains(out, "server running") {
					t.Errorf("round %d: jodmai check beside the running server: exit %d\n%s", round, code, out)
				}
			}
			if rc.aim == aimNone {
				time.Sleep(delay)
			} else {
				// Let the load build up, then fire at the next
				// aimed moment (or give up waiting after a while).
				time.Sleep(delay / 4)
				rc.armed.Store(true)
				select {
				case <-rc.trigger:
					time.Sleep(time.Duration(rng.IntN(4000)) * time.Microsecond)
					aimedKills[rc.aim]++
				case <-time.After(delay):
				}
			}
			in.Kill()
			close(stop)
			wg.Wait()
			spent.load += time.Since(t0)
		}

		// With the server dead, before the restart's sweep: the only
		// inconsistencies a crash may leave are unreferenced files.
		t0 := time.Now()
		code, out := in.Run("", "check")
		spent.check += time.Since(t0)
		afterKill.checks++
		for _, line := range strings.Split(out, "\n") {
			kind, _, _ := strings.Cut(line, " ")
			kind = strings.TrimSuffix(kind, ":")
			if kind == "journal-replayed" {
				// Acknowledged deliveries the kill caught between the
				// delivery journal and the accounts: applied by check's
				// open, then verified like every other message.
				var n int
				fmt.Sscanf(line, "journal-replayed: %d", &n)
				afterKill.replayRounds++
				afterKill.replayed += n
				continue
			}
			switch store.ProblemKind(kind) {
			case store.ProblemOrphanBody:
				if strings.Contains(line, "inline body") {
					// Written in the transaction of its rows: never
					// left alone by a crash.
					t.Errorf("round %d: after SIGKILL, jodmai check: %s", round, line)
				}
				afterKill.orphans++
			case store.ProblemStaleTemp:
				afterKill.staleTemp++
			case store.ProblemHotJournal:
				// A kill while an account's index was being created
				// (its switch to WAL); the next start rolls it back.
				afterKill.hotJournal++
			case store.ProblemIndexUnreadable, store.ProblemIndexMissing, store.ProblemIndexVersion, store.ProblemIntegrity,
				store.ProblemForeignKey, store.ProblemMissingBody, store.ProblemSizeMismatch, store.ProblemUIDNext,
				store.ProblemHighestModSeq, store.ProblemCounter, store.ProblemUnknownAccount, store.ProblemDatabase:
				t.Errorf("round %d: after SIGKILL, jodmai check: %s", round, line)
			}
		}
		if code != 0 && code != 1 {
			t.Errorf("round %d: jodmai check after SIGKILL: exit %d\n%s", round, code, out)
		}
		if t.Failed() {
			break
		}
	}

	// The final state, with a clean start and stop.
	in.Start(true)
	present := make([]map[string]int, numAccounts)
	for a := range numAccounts {
		present[a] = finalInbox(t, in.Addr("pop3"), a, lg)
	}
	in.Stop()
	code, out := in.Run("", "check")
	if code != 0 || !strings.Contains(out, "store consistent") {
		t.Errorf("jodmai check on the final store: exit %d\n%s", code, out)
	}
	// Most messages are small, kept inline in the index; some are body
	// files: the kills hit both.
	if m := regexp.MustCompile(`(\d+) body files and (\d+) inline bodies`).FindStringSubmatch(out); m == nil || m[1] == "0" || m[2] == "0" {
		t.Errorf("jodmai check on the final store: want both body files and inline bodies\n%s", out)
	} else {
		t.Logf("final store: %s body files, %s inline bodies", m[1], m[2])
	}

	// The promises.
	lg.mu.Lock()
	defer lg.mu.Unlock()
	for _, e := range lg.errs {
		t.Error(e)
	}
	var maybeKept int
	var ackedKept, ackedMaybe, lostAcked, resurrected, dup, unackedPresent, presentTotal int
	for a := range numAccounts {
		for m, c := range present[a] {
			presentTotal += c
			k := key{a, m}
			if c > 1 {
				dup++
				t.Errorf("account %d: message %s present %d times", a, m, c)
			}
			if !lg.sent[k] {
				t.Errorf("account %d: message %s present but never sent to it", a, m)
			}
			if !lg.acked[k] {
				unackedPresent++
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
				resurrected++
				t.Errorf("account %d: message %s deleted by a completed POP3 QUIT is back", k.acct, k.marker)
			}
		case lg.acked[k] && lg.maybe[k]:
			ackedMaybe++ // present or not: its QUIT's reply was never seen
			if c > 1 {
				t.Errorf("account %d: message %s present %d times", k.acct, k.marker, c)
			} else if c == 1 {
				maybeKept++
			}
		case lg.acked[k]:
			ackedKept++
			if c != 1 {
				lostAcked++
				t.Errorf("account %d: acknowledged message %s present %d times, want 1", k.acct, k.marker, c)
			}
		}
	}
	deletedAcked := 0
	for k := range lg.deleted {
		if lg.acked[k] {
			deletedAcked++
		}
	}
	summary := fmt.Sprintf("crash test: %d rounds (%d killed during start-up, %d aimed at an end of DATA, %d at a POP3 QUIT) in %v, seed %d\n"+
		"  smtp: %d transactions, %d acknowledged (250 read), %d failed or cut by a kill; %d message copies sent, %d acknowledged\n"+
		"  pop3: %d sessions, %d QUIT +OK, %d QUIT -ERR, %d QUIT unanswered (kill), %d dropped without QUIT; %d RETRs checked\n"+
		"  deleted by a confirmed QUIT: %d (%d of them acknowledged); maybe deleted: %d\n"+
		"  final: %d messages present; %d acknowledged and not deleted, all present exactly once: %v; %d acknowledged with an unanswered QUIT (%d of them kept); %d present without a 250\n"+
		"  lost acknowledged: %d, deleted but back: %d, duplicated: %d\n"+
		"  jodmai check: %d runs after SIGKILL (%d orphan bodies, %d tmp/ leftovers, %d indexes with a hot journal seen, nothing else), %d beside the running server, clean at the end\n"+
		"  delivery journal: %d kills left acknowledged deliveries unapplied; %d replayed\n"+
		"  time: %v starting servers, %v under load, %v in checks after kills",
		n, startupKills, aimedKills[aimData], aimedKills[aimQuit], time.Since(begin).Round(time.Millisecond), sd,
		lg.smtpTx, lg.smtpAcked, lg.smtpFailed, len(lg.sent), len(lg.acked),
		lg.popSessions, lg.popQuitOK, lg.popQuitErr, lg.popQuitLost, lg.popDrops, lg.retrieved,
		len(lg.deleted), deletedAcked, len(lg.maybe),
		presentTotal, ackedKept, lostAcked == 0, ackedMaybe, maybeKept, unackedPresent,
		lostAcked, resurrected, dup,
		afterKill.checks, afterKill.orphans, afterKill.staleTemp, afterKill.hotJournal, afterKill.liveChecks,
		afterKill.replayRounds, afterKill.replayed,
		spent.start.Round(time.Millisecond), spent.load.Round(time.Millisecond), spent.check.Round(time.Millisecond))
	t.Log(summary)
	fmt.Println(summary)
	if len(lg.acked) == 0 || len(lg.deleted) == 0 {
		t.Errorf("the test did too little to mean anything: %d acknowledged, %d deleted", len(lg.acked), len(lg.deleted))
	}
	if t.Failed() {
		t.Logf("server log (end):\n%s", in.LogTail())
	}
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
	aimNone aim = iota // a random moment
	aimData            // an SMTP end of DATA: body fsync, link, index commit
	aimQuit            // a POP3 QUIT with deletions: the expunge
)

func (a aim) String() string { return [...]string{"random", "end of DATA", "POP3 QUIT"}[a] }

// roundCtl is what the workers of one round share.
type roundCtl struct {
	round   int
	stop    chan struct{}
	aim     aim
	armed   atomic.Bool
	trigger chan struct{}
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
			accts := []int{rng.IntN(numAccounts)}
			if rng.IntN(4) == 0 {
				// One transaction to two accounts: one body file, two
				// index rows; one 250 covers both.
				accts = append(accts, (accts[0]+1+rng.IntN(numAccounts-1))%numAccounts)
			}
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
