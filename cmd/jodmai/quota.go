package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/jodmai/jodmai/internal/config"
)

// runUserQuota sets an account's storage quota: the limit IMAP QUOTA
// reports (RFC 9208 STORAGE) and APPEND and COPY enforce. It applies at
// once, also to open sessions.
func runUserQuota(ctx context.Context, env *cmdEnv, args []string) error {
	rest, err := env.parse(args, 2, 2)
	if err != nil {
		return err
	}
	var size config.Size
	if s := strings.ToLower(rest[1]); s != "none" && s != "unlimited" {
		if size, err = config.ParseSize(rest[1]); err != nil {
			return usagef("%v", err)
		}
	}
	db, _, err := env.openUsers(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.SetQuota(ctx, rest[0], int64(size)); err != nil {
		return err
	}
	if size == 0 {
		fmt.Fprintf(env.stdout, "quota of %s removed\n", rest[0])
	} else {
		fmt.Fprintf(env.stdout, "quota of %s set to %s\n", rest[0], size)
	}
	return nil
}
