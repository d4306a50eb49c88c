package main

import (
	"context"
	"fmt"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/userdb"
)

// runUserAdmin sets (or with --off clears) an account's admin flag: admins
// may use the web console's admin pages. It applies at the account's next
// request; the console reads the flag on every one.
func runUserAdmin(ctx context.Context, env *cmdEnv, args []string) error {
	off := env.flags.Bool("off", false, "clear the admin flag instead of setting it")
	return env.withUsers(ctx, args, 1, 1, func(db *userdb.DB, _ *config.Config, rest []string) error {
		if err := db.SetAdmin(ctx, rest[0], !*off); err != nil {
			return err
		}
		if *off {
			fmt.Fprintf(env.stdout, "%s is no longer an admin\n", rest[0])
		} else {
			fmt.Fprintf(env.stdout, "%s is now an admin\n", rest[0])
		}
		return nil
	})
}
