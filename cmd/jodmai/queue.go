package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/queue"
)

// openQueue opens the outbound queue of the configured data dir. It works
// beside a running server: the server's scheduler notices the changes
// within a second.
func (env *cmdEnv) openQueue() (*queue.Queue, error) {
	cfg, err := env.loadConfig()
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(cfg.Data); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("data dir %s: not found (run jodmai serve once, or pass --data)", cfg.Data)
	}
	return queue.Open(filepath.Join(cfg.Data, "queue"), queue.Options{Policy: cfg.Queue, Hostname: cfg.Hostname})
}

// withQueue parses the flags and minArgs to maxArgs arguments, opens the
// queue, and runs fn with it and the arguments.
func (env *cmdEnv) withQueue(args []string, minArgs, maxArgs int, fn func(q *queue.Queue, rest []string) error) error {
	rest, err := env.parse(args, minArgs, maxArgs)
	if err != nil {
		return err
	}
	q, err := env.openQueue()
	if err != nil {
		return err
	}
	defer q.Close()
	return fn(q, rest)
}

func runQueueList(ctx context.Context, env *cmdEnv, args []string) error {
	return env.withQueue(args, 0, 0, func(q *queue.Queue, _ []string) error {
		ms, err := q.List(ctx)
		if err != nil {
			return err
		}
		if len(ms) == 0 {
			fmt.Fprintln(env.stdout, "The queue is empty.")
			return nil
		}
		writeQueueList(env.stdout, ms, time.Now())
		return nil
	})
}

// writeQueueList prints one line per recipient; the message's columns only
// on its first line.
func writeQueueList(w io.Writer, ms []queue.MessageInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAGE\tSIZE\tFROM\tRECIPIENT\tSTATE\tTRIES\tNEXT\tLAST RESULT")
	pending := 0
	for _, m := range ms {
		for i, r := range m.Recipients {
			id, age, size, from := "", "", "", ""
			if i == 0 {
				id, age, size, from = m.ID, shortDuration(now.Sub(m.Created)), config.Size(m.Size).String(), sender(m.From)
			}
			state, next := string(r.State), "-"
			if r.State == queue.Pending {
				pending++
				if m.Held {
					state = "held"
				} else if d := r.NextAttempt.Sub(now); d > 0 {
					next = "in " + shortDuration(d)
				} else {
					next = "now"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", id, age, size, from, r.Addr, state, r.Attempts, next, lastResult(r))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "%d message(s), %d recipient(s) pending\n", len(ms), pending)
}

func runQueueShow(ctx context.Context, env *cmdEnv, args []string) error {
	return env.withQueue(args, 1, 1, func(q *queue.Queue, rest []string) error {
		m, err := q.Show(ctx, rest[0])
		if err != nil {
			return queueErr(rest[0], err)
		}
		writeQueueShow(env.stdout, m, time.Now())
		return nil
	})
}

func writeQueueShow(w io.Writer, m queue.MessageInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	line("ID", m.ID)
	line("From", sender(m.From))
	if m.Account != "" {
		line("Account", m.Account)
	}
	line("Queued", fmt.Sprintf("%s (%s ago)", m.Created.UTC().Format(time.RFC3339), shortDuration(now.Sub(m.Created))))
	line("Size", config.Size(m.Size).String())
	var flags []string
	for _, f := range []struct {
		on   bool
		name string
	}{{m.Held, "held"}, {m.Signed, "dkim-signed"}, {m.RequireTLS, "requiretls"}, {m.SMTPUTF8, "smtputf8"}} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	if len(flags) > 0 {
		line("Flags", strings.Join(flags, " "))
	}
	if m.EnvID != "" || m.Ret != "" {
		line("DSN", fmt.Sprintf("envid=%q ret=%s", m.EnvID, orDash(m.Ret)))
	}
	tw.Flush()
	for _, r := range m.Recipients {
		fmt.Fprintf(w, "\n")
		tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
		line := func(k, v string) { fmt.Fprintf(tw, "  %s:\t%s\n", k, v) }
		line("Recipient", r.Addr)
		state := string(r.State)
		if m.Held && r.State == queue.Pending {
			state = "pending (held)"
		}
		line("State", state)
		line("Attempts", fmt.Sprint(r.Attempts))
		if !r.LastAttempt.IsZero() {
			line("Last attempt", r.LastAttempt.UTC().Format(time.RFC3339))
			line("Last result", lastResult(r))
		}
		if r.State == queue.Pending {
			line("Next attempt", r.NextAttempt.UTC().Format(time.RFC3339))
		}
		if r.Notify != "" || r.ORcpt != "" {
			line("DSN", fmt.Sprintf("notify=%s orcpt=%s", orDash(r.Notify), orDash(r.ORcpt)))
		}
		if r.Notice != "" {
			line("DSN owed", r.Notice)
		}
		tw.Flush()
	}
}

// The commands that change one message.
var (
	runQueueRetry   = runQueueOp("retrying", (*queue.Queue).Retry)
	runQueueHold    = runQueueOp("held", (*queue.Queue).Hold)
	runQueueRelease = runQueueOp("released", (*queue.Queue).Release)
	runQueueDelete  = runQueueOp("deleted", (*queue.Queue).Delete)
)

// runQueueOp makes a command that applies op to one message.
func runQueueOp(verb string, op func(*queue.Queue, context.Context, string) error) func(context.Context, *cmdEnv, []string) error {
	return func(ctx context.Context, env *cmdEnv, args []string) error {
		return env.withQueue(args, 1, 1, func(q *queue.Queue, rest []string) error {
			if err := op(q, ctx, rest[0]); err != nil {
				return queueErr(rest[0], err)
			}
			fmt.Fprintf(env.stdout, "%s %s\n", verb, rest[0])
			return nil
		})
	}
}

func runQueueFlush(ctx context.Context, env *cmdEnv, args []string) error {
	return env.withQueue(args, 0, 0, func(q *queue.Queue, _ []string) error {
		n, err := q.Flush(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%d recipient(s) due now\n", n)
		return nil
	})
}

func queueErr(id string, err error) error {
	if errors.Is(err, queue.ErrNotFound) {
		return fmt.Errorf("no queued message %s", id)
	}
	return err
}

func sender(from string) string {
	if from == "" {
		return "<>"
	}
	return from
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// lastResult is a recipient's last reply, on one line.
func lastResult(r queue.RecipientInfo) string {
	if r.LastAttempt.IsZero() {
		return "-"
	}
	s := r.Text
	if r.Code > 0 {
		s = strings.Join(strings.Fields(fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text)), " ")
	}
	if r.Host != "" {
		s += " (" + r.Host + ")"
	}
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// shortDuration prints d coarsely: 45s, 12m, 3h05m, 2d04h.
func shortDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}
