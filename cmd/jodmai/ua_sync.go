package main

import (
	"context"
	"fmt"
)

// runSync fetches new mail over IMAP and syncs flags both ways, for INBOX,
// the mailboxes named, or every mailbox of the server.
func runSync(ctx context.Context, env *cmdEnv, args []string) error {
	uf := env.uaFlags()
	var mailboxes stringsFlag
	env.flags.Var(&mailboxes, "mailbox", "sync the mailbox `NAME` (repeatable; default INBOX); other than INBOX it goes to a Maildir++ folder (Foo/Bar in .Foo.Bar)")
	all := env.flags.Bool("all", false, "sync every selectable mailbox of the server")
	if _, err := env.parse(args, 0, 0); err != nil {
		return err
	}
	if *all && len(mailboxes) > 0 {
		return usagef("--all and --mailbox are exclusive")
	}
	acc, err := uf.load()
	if err != nil {
		return err
	}
	pw, err := env.password(ctx, acc)
	if err != nil {
		return err
	}
	if *all {
		if mailboxes, err = acc.IMAPMailboxes(ctx, pw); err != nil {
			return err
		}
	}
	res, err := acc.SyncIMAP(ctx, pw, mailboxes...)
	fmt.Fprintln(env.stdout, res)
	return err
}
