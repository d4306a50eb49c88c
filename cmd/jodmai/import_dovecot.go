package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/jodmai/jodmai/internal/mailfile/transfer"
	"github.com/jodmai/jodmai/internal/store"
)

// The Dovecot flags of jodmai import; package transfer does the moving in
// (see its dovecot.go).

// dovecotOptions are the Dovecot flags of jodmai import.
type dovecotOptions struct {
	root, layout, uidlFormat string
}

func dovecotFlags(env *cmdEnv) *dovecotOptions {
	o := &dovecotOptions{}
	env.flags.StringVar(&o.root, "dovecot-root", "", "import every account's Maildir below this Dovecot mail root `DIR` (see --dovecot-layout); no ACCOUNT or FILE then")
	env.flags.StringVar(&o.layout, "dovecot-layout", "%d/%n", "`PATH` of an account's mail below --dovecot-root: %d domain, %n local part, %u address; a Maildir there or in its Maildir/ subdirectory")
	env.flags.StringVar(&o.uidlFormat, "pop3-uidl-format", "%08Xu%08Xv", "Dovecot's pop3_uidl_format `FORMAT` (%u UID, %v UIDVALIDITY, %f file name, %g GUID), for INBOX messages whose dovecot-uidlist keeps no UIDL")
	return o
}

// runImportDovecotRoot imports the Maildir of every account found below
// a Dovecot mail root, one report line per account.
func runImportDovecotRoot(ctx context.Context, env *cmdEnv, dov *dovecotOptions) error {
	users, cfg, err := env.openUsers(ctx)
	if err != nil {
		return err
	}
	accs, err := users.Accounts(ctx)
	users.Close()
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.Data, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	runCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := transfer.DovecotRoot{Dir: dov.root, Layout: dov.layout}
	failed := 0
	addresses := make([]string, len(accs))
	for i, acc := range accs {
		addresses[i] = acc.Address
		maildir := root.AccountMaildir(acc.Address)
		if maildir == "" {
			continue
		}
		a, err := st.Account(runCtx, acc.ID)
		if err == nil {
			prog := newProgress(env, acc.Address)
			imp := transfer.NewImporter(st, a, prog.set)
			imp.SetDovecotUIDLFormat(dov.uidlFormat)
			err = imp.Import(runCtx, maildir, transfer.Maildir, "")
			if ferr := imp.Finish(context.WithoutCancel(runCtx)); err == nil {
				err = ferr
			}
			a.Release()
			prog.set(imp.Counts())
			prog.finish()
			if err == nil {
				fmt.Fprintf(env.stdout, "%s: imported %s", acc.Address, prog.summary())
				if kept := imp.Kept(); kept.Mailboxes > 0 {
					fmt.Fprintf(env.stdout, "; %s", kept)
				}
				fmt.Fprintln(env.stdout)
				continue
			}
		}
		failed++
		fmt.Fprintf(env.stdout, "%s: error: %v\n", acc.Address, err)
		if runCtx.Err() != nil {
			return runCtx.Err()
		}
	}
	// Directories where the layout expects accounts but none matched:
	// mail that stays behind unless its account is created.
	for _, path := range root.Unclaimed(addresses) {
		fmt.Fprintf(env.stdout, "%s: skipped: no account for this directory\n", path)
	}
	if failed > 0 {
		return fmt.Errorf("%d accounts failed", failed)
	}
	return nil
}
