package queue

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jodmai/jodmai/internal/eventlog"
	"github.com/jodmai/jodmai/internal/remote"
)

// pollInterval is the longest the scheduler sleeps: changes made by the
// operator commands in another process are seen within it.
const pollInterval = time.Second

// noticeSweepInterval is how often owed DSNs that could not be sent right
// after their attempt (a store error, a crash) are tried again.
const noticeSweepInterval = time.Minute

// attemptTimeout bounds one delivery attempt (every MX host of a domain).
const attemptTimeout = 30 * time.Minute

// maxDue bounds the recipients one scheduling pass reads.
const maxDue = 1000

// maxWorkerJobs bounds the (message, domain) attempts one worker makes in
// a row before the scheduler looks again. Each pass reads up to maxDue
// rows; with a backlog, that is a pass per maxWorkerJobs messages.
const maxWorkerJobs = 100

// jobKey names one delivery attempt: a message's recipients at a domain.
type jobKey struct{ msg, domain string }

type job struct {
	key   jobKey
	rcpts []rcptRow
}

type rcptRow struct {
	id       int64
	addr     string
	notify   string
	orcpt    string
	attempts int
}

// msgRow is the part of a msg row an attempt and a DSN need.
type msgRow struct {
	id, sender, account, envid, ret string
	smtputf8, has8bit, requiretls   bool
	dkim                            []byte
	body                            []byte // the body when in the row, else nil
	offset, size                    int64
	created                         time.Time
	msgid                           string // for the event log, read at the attempt
}

// Run schedules deliveries until ctx ends, then waits for the attempts in
// progress (their context ends too) and returns.
func (q *Queue) Run(ctx context.Context) error {
	if q.opts.Remote == nil {
		return fmt.Errorf("queue: Run without a remote.Deliverer")
	}
	q.sendOwedNotices(ctx)
	lastNotices := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if err := q.startDue(ctx); err != nil && ctx.Err() == nil {
			q.log.Error("queue: scheduling", "err", err)
		}
		if time.Since(lastNotices) >= noticeSweepInterval {
			q.sendOwedNotices(ctx)
			lastNotices = time.Now()
		}
		wait := pollInterval
		if next, ok, err := q.nextDue(ctx); err == nil && ok {
			if d := next.Sub(q.now()); d > 0 && d < wait {
				wait = d
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			q.jobs.Wait()
			// Connections kept for reuse (remote.Client) go with us.
			if c, ok := q.opts.Remote.(interface{ CloseIdle() }); ok {
				c.CloseIdle()
			}
			return nil
		case <-q.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// nextDue returns the earliest next attempt of a pending recipient (from
// the index alone: a held message's may be earlier than any other's, which
// costs a pass that finds nothing, at most every pollInterval).
func (q *Queue) nextDue(ctx context.Context) (time.Time, bool, error) {
	var ms sql.NullInt64
	err := q.st.nextDue.QueryRowContext(ctx).Scan(&ms)
	if err != nil || !ms.Valid {
		return time.Time{}, false, err
	}
	return time.UnixMilli(ms.Int64), true, nil
}

// startDue starts an attempt for each due (message, domain) not already in
// progress, within the concurrency limits.
func (q *Queue) startDue(ctx context.Context) error {
	// Domains at their cap are left out of the query, so a backlog for
	// one domain cannot hide due mail for others behind maxDue.
	skip := []string{}
	q.mu.Lock()
	if q.running >= q.policy.MaxConcurrency {
		q.mu.Unlock()
		return nil
	}
	for d, n := range q.perDomain {
		if n >= q.policy.MaxPerDomain {
			skip = append(skip, d)
		}
	}
	q.mu.Unlock()
	skipJSON, err := json.Marshal(skip)
	if err != nil {
		return fmt.Errorf("due recipients: %w", err)
	}
	// Due mail this pass leaves (capped domains, more than maxDue rows,
	// more jobs than free workers) needs another pass when a worker is
	// done.
	left := len(skip) > 0
	rows, err := q.st.due.QueryContext(ctx, q.now().UnixMilli(), string(skipJSON), q.maxDue)
	if err != nil {
		return fmt.Errorf("due recipients: %w", err)
	}
	var order []jobKey
	jobs := map[jobKey]*job{}
	n := 0
	for rows.Next() {
		n++
		var r rcptRow
		var k jobKey
		if err := rows.Scan(&r.id, &k.msg, &k.domain, &r.addr, &r.notify, &r.orcpt, &r.attempts); err != nil {
			rows.Close()
			return fmt.Errorf("due recipients: %w", err)
		}
		j := jobs[k]
		if j == nil {
			j = &job{key: k}
			jobs[k] = j
			order = append(order, k)
		}
		j.rcpts = append(j.rcpts, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("due recipients: %w", err)
	}
	left = left || n >= q.maxDue
	// Group the jobs by domain, in due order, and hand each domain's to
	// as many workers as its free slots allow: a worker delivers its
	// jobs one after the other (remote.Client reuses the connection), so
	// a busy domain costs one scheduling pass per chunk of jobs, not one
	// per message.
	var domains []string
	byDomain := map[string][]*job{}
	for _, k := range order {
		if byDomain[k.domain] == nil {
			domains = append(domains, k.domain)
		}
		byDomain[k.domain] = append(byDomain[k.domain], jobs[k])
	}
	for _, d := range domains {
		q.mu.Lock()
		var todo []*job
		for _, j := range byDomain[d] {
			if !q.inflight[j.key] {
				todo = append(todo, j)
			}
		}
		free := min(q.policy.MaxPerDomain-q.perDomain[d], q.policy.MaxConcurrency-q.running)
		if free <= 0 || len(todo) == 0 {
			left = left || len(todo) > 0
			q.mu.Unlock()
			continue
		}
		workers := min(free, len(todo))
		per := min((len(todo)+workers-1)/workers, maxWorkerJobs)
		for w := 0; w < workers && len(todo) > 0; w++ {
			n := min(per, len(todo))
			chunk := todo[:n:n]
			todo = todo[n:]
			for _, j := range chunk {
				q.inflight[j.key] = true
			}
			q.perDomain[d]++
			q.running++
			q.jobs.Add(1)
			go q.runWorker(ctx, d, chunk)
		}
		left = left || len(todo) > 0
		q.mu.Unlock()
	}
	if left {
		q.mu.Lock()
		q.missed = true
		q.mu.Unlock()
	}
	return nil
}

// runWorker makes the attempts of jobs, all at domain, one after the
// other. The results of each are recorded while the next is under way (so
// they share commits); a job stays in flight until its results are
// committed, so no other worker can take it again before.
func (q *Queue) runWorker(ctx context.Context, domain string, jobs []*job) {
	var failed atomic.Bool // a local error (the database): stop
	release := func(js ...*job) {
		q.mu.Lock()
		for _, j := range js {
			delete(q.inflight, j.key)
		}
		q.mu.Unlock()
	}
	for i, j := range jobs {
		if ctx.Err() != nil || failed.Load() {
			// Left to the next poll, rather than failed now.
			release(jobs[i:]...)
			break
		}
		finish, err := q.attempt(ctx, j)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, ErrNotFound) {
				q.log.Error("queue: delivery attempt", "id", j.key.msg, "domain", j.key.domain, "err", err)
				failed.Store(true)
			}
			release(j)
			continue
		}
		q.jobs.Add(1)
		go func() {
			defer q.jobs.Done()
			if err := finish(); err != nil {
				q.log.Error("queue: recording delivery attempt", "id", j.key.msg, "domain", j.key.domain, "err", err)
				failed.Store(true)
			}
			release(j)
		}()
	}
	q.mu.Lock()
	q.perDomain[domain]--
	if q.perDomain[domain] <= 0 {
		delete(q.perDomain, domain)
	}
	q.running--
	// Capacity is free: look for more at once if a pass or an Add left
	// some. After an error, the next poll retries, so a persistent error
	// cannot spin.
	wake := q.missed && !failed.Load()
	if wake {
		q.missed = false
	}
	q.mu.Unlock()
	q.jobs.Done()
	if wake {
		q.Wake()
	}
}

// busy reports whether every domain of rcpts has a worker, or the queue
// all its slots busy: then Add need not wake the scheduler (with a
// backlog, a pass per Add would cost more than the deliveries), as the
// next worker done wakes it (busy notes that it must), and the pass then
// sees the new mail.
func (q *Queue) busy(rcpts []remote.Recipient) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.running < q.policy.MaxConcurrency {
		for _, r := range rcpts {
			if q.perDomain[domainOf(r.Addr)] == 0 {
				return false
			}
		}
	}
	q.missed = true
	return true
}

// attempt makes one delivery attempt; finish records its results (and
// sends the DSNs they call for).
func (q *Queue) attempt(ctx context.Context, j *job) (finish func() error, _ error) {
	m, err := q.loadMsg(ctx, j.key.msg)
	if err != nil {
		return nil, err // deleted meanwhile: ErrNotFound
	}
	f, closeBody, err := q.openBody(m)
	if err != nil {
		// Lost body (damage outside our control): count it as a failed
		// attempt, so it backs off and finally bounces.
		q.log.Error("queue: message body missing", "id", m.id, "err", err)
		fail := make([]remote.Result, len(j.rcpts))
		for i, r := range j.rcpts {
			fail[i] = remote.Result{Addr: r.addr, Code: 451, Enhanced: "4.3.0", Text: "message body unreadable at the sending server"}
		}
		return func() error { return q.recordAndNotify(ctx, m, j, fail, false) }, nil
	}
	defer closeBody()
	m.msgid = eventlog.MessageID(io.NewSectionReader(f, m.offset, m.size-m.offset), m.size-m.offset)
	rm := &remote.Message{
		From: m.sender, Domain: j.key.domain, Header: m.dkim,
		Body: io.NewSectionReader(f, m.offset, m.size-m.offset), Size: m.size - m.offset,
		SMTPUTF8: m.smtputf8, Has8bit: m.has8bit, RequireTLS: m.requiretls, EnvID: m.envid, Ret: m.ret,
	}
	for _, r := range j.rcpts {
		rm.Recipients = append(rm.Recipients, remote.Recipient{Addr: r.addr, Notify: r.notify, ORcpt: r.orcpt})
	}
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	results := q.opts.Remote.Deliver(actx, rm)
	cancel()
	shutdown := ctx.Err() != nil
	return func() error { return q.recordAndNotify(ctx, m, j, results, shutdown) }, nil
}

// recordAndNotify records results, and then sends the DSNs the message
// owes, if any.
func (q *Queue) recordAndNotify(ctx context.Context, m msgRow, j *job, results []remote.Result, shutdown bool) error {
	ctx = context.WithoutCancel(ctx)
	removed, owed, err := q.record(ctx, m, j, results, shutdown)
	if err != nil {
		return err
	}
	if removed {
		q.removeBody(m)
		q.log.Debug("queue: message done", "id", m.id)
		return nil
	}
	if owed {
		return q.notices(ctx, m.id)
	}
	return nil
}

// resultFor finds the result for recipient i: by position, as the
// Deliverer contract says, else by address.
func resultFor(results []remote.Result, i int, addr string) (remote.Result, bool) {
	if i < len(results) && results[i].Addr == addr {
		return results[i], true
	}
	for _, r := range results {
		if r.Addr == addr {
			return r, true
		}
	}
	return remote.Result{}, false
}

// record stores the results of an attempt in one transaction (shared with
// concurrent writes: a group commit). When the attempt was cut by
// shutdown, only deliveries are recorded: the others are tried again as
// they were, without counting an attempt. In the same transaction, a
// message with no recipient pending and no DSN owed is removed (removed);
// owed reports a DSN owed for it (then notices sends it).
func (q *Queue) record(ctx context.Context, m msgRow, j *job, results []remote.Result, shutdown bool) (removed, owed bool, _ error) {
	now := q.now()
	age := now.Sub(m.created)
	type logLine struct {
		r       rcptRow
		res     remote.Result
		outcome string
		next    time.Time
	}
	var lines []logLine
	err := q.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		lines = lines[:0]
		removed, owed = false, false
		recordRcpt := tx.StmtContext(ctx, q.st.recordRcpt)
		for i, r := range j.rcpts {
			res, ok := resultFor(results, i, r.addr)
			if !ok {
				res = remote.Result{Addr: r.addr, Code: 451, Enhanced: "4.3.0", Text: "no result from the delivery attempt"}
			}
			if shutdown && !res.Delivered {
				continue
			}
			attempts := r.attempts + 1
			var (
				state   = statePending
				notice  string
				next    = now
				warned  bool
				expired bool
				outcome string
			)
			switch {
			case res.Delivered:
				state, outcome = stateDelivered, "delivered"
				if m.sender != "" && wants(r.notify, "SUCCESS") {
					notice = "relayed"
				}
			case res.Permanent:
				state, outcome = stateFailed, "bounced"
				if m.sender != "" && wants(r.notify, "FAILURE") {
					notice = "failed"
				}
			case age >= q.policy.MaxAge:
				state, outcome, expired = stateFailed, "expired", true
				if m.sender != "" && wants(r.notify, "FAILURE") {
					notice = "failed"
				}
			default:
				outcome = "deferred"
				next = now.Add(q.backoff(attempts))
				if limit := m.created.Add(q.policy.MaxAge); next.After(limit) {
					next = limit
				}
				if q.policy.DelayWarning > 0 && age >= q.policy.DelayWarning && m.sender != "" && wants(r.notify, "DELAY") {
					warned = true
				}
			}
			er, err := recordRcpt.ExecContext(ctx,
				state, attempts, next.UnixMilli(), now.UnixMilli(), res.Code, res.Enhanced, oneLine(res.Text), res.Host,
				notice, notice, warned, warned, expired, r.id)
			if err != nil {
				return fmt.Errorf("record result: %w", err)
			}
			if n, _ := er.RowsAffected(); n == 1 {
				lines = append(lines, logLine{r: r, res: res, outcome: outcome, next: next})
				owed = owed || notice != "" || warned
			}
		}
		// The message goes (its rcpt rows by cascade) when no recipient
		// is pending and no DSN owed. noticeMu is not needed: with no
		// notice owed, nothing is being sent for it. A notice owed from
		// before (its DSN failed) is sent by sendOwedNotices.
		r, err := tx.StmtContext(ctx, q.st.removeDone).ExecContext(ctx, m.id, m.id)
		if err != nil {
			return fmt.Errorf("remove finished message: %w", err)
		}
		k, _ := r.RowsAffected()
		removed = k == 1
		return nil
	})
	if err != nil {
		return false, false, err
	}
	for _, l := range lines {
		kind := eventlog.Deferred
		switch l.outcome {
		case "delivered":
			kind = eventlog.Sent
		case "bounced":
			kind = eventlog.Bounced
		}
		args := []any{"event", kind, "qid", m.id, "msgid", m.msgid, "from", m.sender, "rcpt", l.r.addr, "domain", j.key.domain, "host", l.res.Host,
			"code", l.res.Code, "enhanced", l.res.Enhanced, "attempt", l.r.attempts + 1, "delay", age.Round(time.Second).String(),
			"result", l.outcome}
		if l.outcome == "deferred" {
			args = append(args, "next", l.next.UTC().Format(time.RFC3339))
		}
		if l.outcome != "delivered" {
			args = append(args, "text", oneLine(l.res.Text))
		}
		q.log.Info("delivery", args...)
		if q.opts.Observer != nil {
			q.opts.Observer.Attempted(l.outcome, age)
		}
	}
	return removed, owed, nil
}

// backoff is the wait after the n-th failed attempt: RetryMin doubling up
// to RetryMax, plus up to 10% jitter so retries of many messages spread.
func (q *Queue) backoff(n int) time.Duration {
	d := q.policy.RetryMin
	for i := 1; i < n && d < q.policy.RetryMax; i++ {
		d *= 2
	}
	d = min(d, q.policy.RetryMax)
	j := rand.Float64()
	if q.opts.Jitter != nil {
		j = q.opts.Jitter()
	}
	d += time.Duration(float64(d) * 0.1 * j)
	return min(d, q.policy.RetryMax+q.policy.RetryMax/10)
}

// wants reports whether a NOTIFY value asks for kind (SUCCESS, FAILURE,
// DELAY). RFC 3461 §4.1: without NOTIFY, FAILURE and DELAY (we do send
// delay warnings then, as most MTAs do).
func wants(notify, kind string) bool {
	if notify == "" {
		return kind == "FAILURE" || kind == "DELAY"
	}
	for _, v := range strings.Split(notify, ",") {
		if strings.EqualFold(strings.TrimSpace(v), kind) {
			return true
		}
	}
	return false
}

// oneLine makes text safe for a log field or a DSN header field.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == '\t' {
			return ' '
		}
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 900 {
		s = s[:900]
	}
	return strings.TrimSpace(s)
}

func (q *Queue) loadMsg(ctx context.Context, id string) (msgRow, error) {
	var m msgRow
	var created int64
	err := q.st.loadMsg.QueryRowContext(ctx, id).Scan(&m.id, &m.sender, &m.account, &m.envid, &m.ret, &m.smtputf8, &m.has8bit, &m.requiretls, &m.dkim, &m.offset, &m.size, &created, &m.body)
	if err == sql.ErrNoRows {
		return m, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("load message %s: %w", id, err)
	}
	m.created = time.UnixMilli(created)
	return m, nil
}

// openBody returns the body of m, from its row or its file; close closes
// the file, if any.
func (q *Queue) openBody(m msgRow) (body io.ReaderAt, close func(), err error) {
	if m.body != nil {
		return bytes.NewReader(m.body), func() {}, nil
	}
	f, err := q.bodies.Open(m.id)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// removeBody removes the body file of a removed message m, if it has one.
func (q *Queue) removeBody(m msgRow) {
	if m.body == nil {
		q.bodies.Remove(m.id)
	}
}
