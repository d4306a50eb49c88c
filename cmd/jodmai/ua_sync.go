package main

import (
	"context"
	"fmt"
)

func runSync(ctx context.Context, env *cmdEnv, args []string) error {
	uf := env.uaFlags()
	if _, err := env.parse(args, 0, 0); err != nil {
		return err
	}
	acc, err := uf.load()
	if err != nil {
		return err
	}
	pw, err := env.password(ctx, acc)
	if err != nil {
		return err
	}
	res, err := acc.SyncIMAP(ctx, pw)
	fmt.Fprintln(env.stdout, res)
	return err
}
