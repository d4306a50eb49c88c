package main

import (
	"context"
	"path/filepath"
	"time"

	"github.com/jodmai/jodmai/internal/backup"
)

// runBackup takes an online backup of the data dir into DIR/NAME while the
// server may be running.
func runBackup(ctx context.Context, env *cmdEnv, args []string) error {
	name := env.flags.String("name", "", "backup `NAME` below DIR (default: the UTC time, e.g. 20260102T150405Z)")
	rest, cfg, err := env.parseConfig(args, 1, 1)
	if err != nil {
		return err
	}
	n := *name
	if n == "" {
		n = time.Now().UTC().Format("20060102T150405Z")
	}
	if filepath.Base(n) != n || n == "." || n == ".." {
		return usagef("--name must be a plain directory name: %q", n)
	}
	_, err = backup.Backup(ctx, cfg.Data, filepath.Join(rest[0], n), backup.Options{ConfigFile: *env.configPath, Progress: env.stdout})
	return err
}

// runRestore restores a backup into the (stopped, empty) data dir.
func runRestore(ctx context.Context, env *cmdEnv, args []string) error {
	force := env.flags.Bool("force", false, "replace the contents of a non-empty data dir")
	rest, cfg, err := env.parseConfig(args, 1, 1)
	if err != nil {
		return err
	}
	_, err = backup.Restore(ctx, rest[0], cfg.Data, backup.RestoreOptions{Force: *force, Progress: env.stdout})
	return err
}
