package main

import (
	"context"
	"fmt"

	"github.com/jodmai/jodmai/internal/ua"
)

func runFetch(ctx context.Context, env *cmdEnv, args []string) error {
	uf := env.uaFlags()
	usePOP3 := env.flags.Bool("pop3", false, "fetch over POP3 (default when the account has a pop3 server)")
	useIMAP := env.flags.Bool("imap", false, "fetch over IMAP")
	keep := env.flags.Bool("keep", false, "leave the messages on the server (remember what was fetched)")
	expunge := env.flags.Bool("expunge", false, "IMAP: delete and expunge the fetched messages on the server")
	if _, err := env.parse(args, 0, 0); err != nil {
		return err
	}
	if *usePOP3 && *useIMAP {
		return usagef("--pop3 and --imap are exclusive")
	}
	acc, err := uf.load()
	if err != nil {
		return err
	}
	if !*usePOP3 && !*useIMAP {
		if acc.POP3 != nil {
			*usePOP3 = true
		} else {
			*useIMAP = true
		}
	}
	pw, err := env.password(ctx, acc)
	if err != nil {
		return err
	}
	opts := ua.FetchOptions{Keep: *keep, Expunge: *expunge, Progress: progress(env.stderr)}
	var res ua.FetchResult
	if *usePOP3 {
		res, err = acc.FetchPOP3(ctx, pw, opts)
	} else {
		res, err = acc.FetchIMAP(ctx, pw, opts)
	}
	if opts.Progress != nil {
		fmt.Fprintln(env.stderr)
	}
	fmt.Fprintln(env.stdout, res)
	return err
}
