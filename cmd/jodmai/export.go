package main

import (
	"context"
	"fmt"

	"github.com/jodmai/jodmai/internal/mailfile/transfer"
)

// runExport writes an account's mailboxes to a Maildir (INBOX the root,
// the others Maildir++ folders) or to mbox files (DIR/NAME.mbox, one per
// mailbox). It only reads the store, so it is safe beside a running server;
// messages expunged while it runs are skipped.
func runExport(ctx context.Context, env *cmdEnv, args []string) error {
	format := env.flags.String("format", "maildir", "output `FORMAT`: maildir (flags in file names; folders must be empty) or mbox (mboxrd, one new NAME.mbox file per mailbox, flags in Status fields)")
	only := env.flags.String("mailbox", "", "export only the mailbox `NAME` (default: all)")
	rest, err := env.parse(args, 2, 2)
	if err != nil {
		return err
	}
	if *format != "mbox" && *format != "maildir" {
		return usagef("--format must be maildir or mbox, not %q", *format)
	}
	as, closeStore, err := env.openAccountStore(ctx, rest[0])
	if err != nil {
		return err
	}
	defer closeStore()
	prog := newProgress(env, "export")
	ex := transfer.NewExporter(as.acct, prog.set)
	err = ex.Export(ctx, rest[1], transfer.Format(*format), *only)
	prog.set(ex.Counts())
	prog.finish()
	if err != nil {
		return fmt.Errorf("%w (%d messages exported before the failure)", err, prog.msgs)
	}
	fmt.Fprintf(env.stdout, "exported %s", prog.summary())
	if n := ex.Skipped(); n > 0 {
		fmt.Fprintf(env.stdout, " (%d messages expunged meanwhile skipped)", n)
	}
	fmt.Fprintln(env.stdout)
	return nil
}
