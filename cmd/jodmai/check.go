package main

import (
	"context"
	"fmt"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/datacheck"
	"github.com/jodmai/jodmai/internal/store"
)

// runCheck verifies the data directory (package datacheck). Without
// --repair it only reads and is safe beside a running server; --repair
// takes the server's data-dir lock, so the two never run together. Exit
// status: 0 when the store is consistent (or was made so), 1 when problems
// remain.
func runCheck(ctx context.Context, env *cmdEnv, args []string) error {
	repair := env.flags.Bool("repair", false, "fix what can be fixed safely; needs the server stopped")
	_, cfg, err := env.parseConfig(args, 0, 0)
	if err != nil {
		return err
	}
	res, err := datacheck.Run(ctx, cfg.Data, *repair)
	if err != nil {
		return err
	}
	printReport(env, cfg, res.Store, res.Directory, *repair)
	if n := res.Remaining(); n > 0 {
		return fmt.Errorf("%d problems found", n)
	}
	return nil
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
