package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/loadgen"
)

// defaultBenchAddr is each profile's target when --addr is not given.
var defaultBenchAddr = map[string]string{
	"smtp":  "127.0.0.1:25",
	"relay": "127.0.0.1:587",
	"sink":  "127.0.0.1:2526",
	"pop3":  "127.0.0.1:110",
	"imap":  "127.0.0.1:143",
	"idle":  "127.0.0.1:143",
}

func runBench(ctx context.Context, env *cmdEnv, args []string) error {
	fs := env.flags
	addr := fs.String("addr", "", "target `HOST:PORT`, loopback only (default 127.0.0.1 and the profile's standard port)")
	conns := fs.Int("c", 8, "concurrent connections")
	count := fs.Int("n", 0, "smtp: messages (default 1000); pop3, imap: sessions (default: pop3 one per connection, imap until --duration)")
	size := fs.Int("size", 4096, "smtp: message size in bytes")
	duration := fs.Duration("duration", 60*time.Second, "cap on the run's length; idle: how long to hold the connections")
	users := fs.String("users", "", "comma-separated accounts (smtp: recipients; others: logins)")
	pattern := fs.String("user-pattern", "", "accounts from a pattern with one %d, e.g. 'user%d@example.org' (numbered from 1)")
	usersCount := fs.Int("users-count", 8, "how many accounts --user-pattern makes")
	pass := fs.String("pass", "", "every account's password (also the smtp --user's)")
	user := fs.String("user", "", "smtp: authenticate as this account (AUTH PLAIN), for submission ports")
	from := fs.String("from", "", "smtp: envelope sender (default --user, else bench@localhost)")
	verify := fs.String("verify-pop3", "", "smtp: count every recipient's messages over POP3 STAT at `HOST:PORT` before and after, and check them")
	verifyWait := fs.Duration("verify-wait", 0, "smtp: how long --verify-pop3 waits for messages still queued (a queueing MTA such as Postfix delivers after accepting)")
	dele := fs.Bool("dele", false, "pop3: delete what was retrieved")
	sample := fs.Int("sample", 10, "imap: bodies fetched per session")
	rounds := fs.Int("rounds", 1, "imap: body samples and flag changes per LOGIN")
	pid := fs.Int("pid", 0, "idle: the server's process id, to read its RSS")
	pidfile := fs.String("pidfile", "", "idle: file holding the server's process id")
	sinkAddr := fs.String("sink", "127.0.0.1:2526", "relay: where the sink listens, `HOST:PORT` (the MTA must deliver the --users there)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	rest, err := env.parse(args, 1, 1)
	if err != nil {
		return err
	}
	profile := rest[0]
	if _, ok := defaultBenchAddr[profile]; !ok {
		return usagef("unknown profile %q (smtp, relay, sink, pop3, imap, idle)", profile)
	}
	if profile == "sink" {
		listen := *addr
		if listen == "" {
			listen = defaultBenchAddr["sink"]
		}
		return runSink(ctx, env, listen, *duration)
	}
	cfg := loadgen.Config{
		Addr: *addr, Pass: *pass, Conns: *conns, Count: *count, Size: *size, Duration: *duration,
		From: *from, Sink: *sinkAddr, VerifyPOP3: *verify, VerifyWait: *verifyWait, Dele: *dele, Sample: *sample, Rounds: *rounds, PID: *pid,
	}
	if cfg.Addr == "" {
		cfg.Addr = defaultBenchAddr[profile]
	}
	if *user != "" {
		cfg.AuthUser, cfg.AuthPass = *user, *pass
	}
	switch {
	case *users != "" && *pattern != "":
		return usagef("--users and --user-pattern exclude each other")
	case *users != "":
		for _, u := range strings.Split(*users, ",") {
			if u = strings.TrimSpace(u); u != "" {
				cfg.Users = append(cfg.Users, u)
			}
		}
	case *pattern != "":
		if strings.Count(*pattern, "%d") != 1 || *usersCount < 1 {
			return usagef("--user-pattern needs exactly one %%d and --users-count >= 1")
		}
		cfg.Users = loadgen.ExpandUsers(*pattern, *usersCount)
	default:
		return usagef("no accounts: give --users or --user-pattern")
	}
	if *pidfile != "" {
		b, err := os.ReadFile(*pidfile)
		if err != nil {
			return err
		}
		if cfg.PID, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return fmt.Errorf("pidfile %s: %w", *pidfile, err)
		}
	}
	r, err := loadgen.Run(ctx, profile, cfg)
	if err != nil {
		if errors.Is(err, loadgen.ErrNotLoopback) {
			return usagef("%v", err)
		}
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(env.stdout, r.Summary())
	}
	if !r.OK() {
		if r.Verified != nil && !*r.Verified {
			return fmt.Errorf("%d errors; verification failed: %s", r.Errors, r.VerifyDetail)
		}
		return fmt.Errorf("%d errors (first: %s)", r.Errors, r.FirstError)
	}
	return nil
}

// runSink serves a no-disk SMTP sink on listen until the duration ends or
// the command is interrupted, then prints what it received.
func runSink(ctx context.Context, env *cmdEnv, listen string, d time.Duration) error {
	sink, err := loadgen.StartSink(listen)
	if err != nil {
		if errors.Is(err, loadgen.ErrNotLoopback) {
			return usagef("%v", err)
		}
		return err
	}
	fmt.Fprintf(env.stdout, "sink listening on %s for %v\n", sink.Addr(), d)
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	sink.Close()
	st := sink.Stats()
	fmt.Fprintf(env.stdout, "sink: %d messages, %d bytes, %d duplicates, %d errors\n", st.Messages, st.Bytes, st.Duplicates, st.Errors)
	return nil
}
