package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/userdb"
)

// runCheck verifies the store (store.Check) and global.db. Without --repair
// it only reads and is safe beside a running server; --repair takes the
// server's data-dir lock, so the two never run together. Exit status: 0
// when the store is consistent (or was made so), 1 when problems remain.
func runCheck(ctx context.Context, env *cmdEnv, args []string) error {
	repair := env.flags.Bool("repair", false, "fix what can be fixed safely; needs the server stopped")
	_, cfg, err := env.parseConfig(args, 0, 0)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(cfg.Data); err != nil || !fi.IsDir() {
		return fmt.Errorf("no data directory at %s", cfg.Data)
	}
	_, errAccounts := os.Stat(filepath.Join(cfg.Data, "accounts"))
	_, errGlobal := os.Stat(filepath.Join(cfg.Data, "global.db"))
	if errAccounts != nil && errGlobal != nil {
		return fmt.Errorf("%s is not a jodmai data directory (no global.db, no accounts/)", cfg.Data)
	}

	// The server holds <data>/jodmai.lock (flock) while it runs.
	lock, err := os.OpenFile(filepath.Join(cfg.Data, "jodmai.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open data dir lock: %w", err)
	}
	defer lock.Close()
	live := false
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
		live = true
	} else if err != nil {
		return fmt.Errorf("lock data dir: %w", err)
	}
	if live && *repair {
		return fmt.Errorf("a jodmai server is running on %s (it holds %s): stop it before 'jodmai check --repair'; 'jodmai check' without --repair only reads and is safe while it runs",
			cfg.Data, filepath.Join(cfg.Data, "jodmai.lock"))
	}
	if !*repair {
		// A read-only check does not keep the lock: a server may start
		// meanwhile, and the check then errs on the side of calling
		// things in flight problems, without touching anything.
		syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	}

	rep, globalProblems, err := checkData(ctx, cfg, *repair, live)
	if err != nil {
		return err
	}
	printReport(env, cfg, rep, globalProblems, *repair)
	if n := rep.Remaining() + len(globalProblems); n > 0 {
		return fmt.Errorf("%d problems found", n)
	}
	return nil
}

// checkData runs the checks: global.db first, then the store against the
// accounts global.db knows.
func checkData(ctx context.Context, cfg *config.Config, repair, live bool) (*store.Report, []string, error) {
	opts := store.CheckOptions{Repair: repair, Live: live}
	globalPath := filepath.Join(cfg.Data, "global.db")
	problems, err := store.CheckDatabase(ctx, globalPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		problems = []string{"global.db is missing: accounts cannot be compared with the directory"}
	case err != nil:
		return nil, nil, err
	case len(problems) == 0:
		users, err := userdb.Open(ctx, cfg.Data)
		if err != nil {
			problems = append(problems, fmt.Sprintf("global.db: %v", err))
			break
		}
		accs, err := users.Accounts(ctx)
		if err == nil {
			opts.KnownAccounts = []int64{}
			for _, a := range accs {
				opts.KnownAccounts = append(opts.KnownAccounts, a.ID)
				opts.IssuedAccounts = max(opts.IssuedAccounts, a.ID)
			}
			// Account ids are AUTOINCREMENT: sqlite_sequence remembers
			// the highest ever issued, deleted accounts included.
			if seq, err := users.HighestAccountID(ctx); err == nil {
				opts.IssuedAccounts = max(opts.IssuedAccounts, seq)
			}
		} else {
			problems = append(problems, fmt.Sprintf("global.db: list accounts: %v", err))
		}
		users.Close()
	}
	for i, p := range problems {
		problems[i] = string(store.ProblemDatabase) + ": " + p
	}
	// Without a trustworthy directory (problems above), KnownAccounts
	// stays nil and no account directory is called deleted.

	st, err := store.Open(ctx, cfg.Data, nil)
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	rep, err := st.Check(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	rep.JournalReplayed = st.Replayed()
	return rep, problems, nil
}

func printReport(env *cmdEnv, cfg *config.Config, rep *store.Report, global []string, repair bool) {
	w := env.stdout
	mode := "server stopped"
	if rep.Live {
		mode = "server running: read-only, writes in flight are not called problems"
	}
	if repair {
		mode = "server stopped, repairing"
	}
	fmt.Fprintf(w, "checking %s (%s)\n", cfg.Data, mode)
	if rep.JournalReplayed > 0 {
		fmt.Fprintf(w, "journal-replayed: %d acknowledged deliveries an unclean stop left in the delivery journal were applied first\n", rep.JournalReplayed)
	}
	for _, p := range global {
		fmt.Fprintln(w, p)
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(w, p)
	}
	fmt.Fprintf(w, "checked %d account stores, %d mailboxes, %d messages, %d body files and %d inline bodies (%d bytes)",
		rep.Accounts, rep.Mailboxes, rep.Messages, rep.Bodies-rep.InlineBodies, rep.InlineBodies, rep.BodyBytes)
	if rep.SkippedRecent > 0 {
		fmt.Fprintf(w, "; %d unreferenced body files younger than %v skipped (deliveries in flight)", rep.SkippedRecent, store.InFlightGrace)
	}
	if rep.SkippedBusy > 0 {
		fmt.Fprintf(w, "; %d account indexes skipped (being created)", rep.SkippedBusy)
	}
	fmt.Fprintln(w)
	total := len(rep.Problems) + len(global)
	switch {
	case total == 0:
		fmt.Fprintln(w, "store consistent: no problems")
	case repair:
		fmt.Fprintf(w, "%d problems: %d repaired, %d remain\n", total, total-rep.Remaining()-len(global), rep.Remaining()+len(global))
	default:
		fmt.Fprintf(w, "%d problems (run 'jodmai check --repair' with the server stopped to fix what can be fixed)\n", total)
	}
	if n := rep.Lost(); n > 0 {
		msg := fmt.Sprintf("LOST: %d messages whose body files were gone; their index rows were deleted (listed above)", n)
		fmt.Fprintln(w, msg)
		if env.stderr != env.stdout {
			fmt.Fprintln(env.stderr, "jodmai check: "+msg)
		}
	}
}
