package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/userdb"
)

// loadConfig reads --config and applies --data.
func (env *cmdEnv) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(*env.configPath)
	if err != nil {
		return nil, err
	}
	if *env.dataDir != "" {
		cfg.Data = *env.dataDir
	}
	return cfg, nil
}

// openUsers opens the directory of the configured data dir.
func (env *cmdEnv) openUsers(ctx context.Context) (*userdb.DB, *config.Config, error) {
	cfg, err := env.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	db, err := userdb.Open(ctx, cfg.Data)
	if err != nil {
		return nil, nil, err
	}
	return db, cfg, nil
}

// parseConfig parses the flags and minArgs to maxArgs arguments, then
// loads the configuration.
func (env *cmdEnv) parseConfig(args []string, minArgs, maxArgs int) ([]string, *config.Config, error) {
	rest, err := env.parse(args, minArgs, maxArgs)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := env.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	return rest, cfg, nil
}

// withUsers parses the flags and minArgs to maxArgs (-1: any number)
// arguments, opens the directory, and runs fn with it, the configuration
// and the arguments.
func (env *cmdEnv) withUsers(ctx context.Context, args []string, minArgs, maxArgs int,
	fn func(db *userdb.DB, cfg *config.Config, rest []string) error) error {
	rest, err := env.parse(args, minArgs, maxArgs)
	if err != nil {
		return err
	}
	db, cfg, err := env.openUsers(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(db, cfg, rest)
}

// parse parses the flags and checks the number of arguments.
func (env *cmdEnv) parse(args []string, minArgs, maxArgs int) ([]string, error) {
	if err := env.flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, flagError{err}
	}
	rest := env.flags.Args()
	for _, a := range rest {
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			return nil, usagef("flags must come before arguments: %q", a)
		}
	}
	if len(rest) < minArgs {
		return nil, usagef("missing arguments")
	}
	if maxArgs >= 0 && len(rest) > maxArgs {
		return nil, usagef("too many arguments: %q", strings.Join(rest[maxArgs:], " "))
	}
	return rest, nil
}

func runDomainAdd(ctx context.Context, env *cmdEnv, args []string) error {
	return env.withUsers(ctx, args, 1, 1, func(db *userdb.DB, _ *config.Config, rest []string) error {
		if err := db.AddDomain(ctx, rest[0]); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "domain %s added\n", strings.ToLower(rest[0]))
		return nil
	})
}

func runDomainDel(ctx context.Context, env *cmdEnv, args []string) error {
	return env.withUsers(ctx, args, 1, 1, func(db *userdb.DB, _ *config.Config, rest []string) error {
		if err := db.DelDomain(ctx, rest[0]); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "domain %s deleted\n", strings.ToLower(rest[0]))
		return nil
	})
}

func runDomainList(ctx context.Context, env *cmdEnv, args []string) error {
	return env.withUsers(ctx, args, 0, 0, func(db *userdb.DB, _ *config.Config, _ []string) error {
		ds, err := db.Domains(ctx)
		if err != nil {
			return err
		}
		for _, d := range ds {
			fmt.Fprintln(env.stdout, d)
		}
		return nil
	})
}

// readSecret gets a password: from stdin with --password-stdin (first line),
// prompted twice on a terminal, or generated (and then printed).
func (env *cmdEnv) readSecret(fromStdin bool, what string) (secret string, generated bool, err error) {
	if fromStdin {
		line, err := bufio.NewReader(io.LimitReader(env.stdin, 4096)).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", false, fmt.Errorf("read %s from stdin: %w", what, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return "", false, fmt.Errorf("empty %s on stdin", what)
		}
		return line, false, nil
	}
	if f, ok := env.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(env.stderr, "New %s: ", what)
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(env.stderr)
		if err != nil {
			return "", false, fmt.Errorf("read %s: %w", what, err)
		}
		fmt.Fprintf(env.stderr, "Repeat %s: ", what)
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(env.stderr)
		if err != nil {
			return "", false, fmt.Errorf("read %s: %w", what, err)
		}
		if string(p1) != string(p2) {
			return "", false, fmt.Errorf("the two %ss differ", what)
		}
		return string(p1), false, nil
	}
	return userdb.GeneratePassword(), true, nil
}

func runUserAdd(ctx context.Context, env *cmdEnv, args []string) error {
	fromStdin := env.flags.Bool("password-stdin", false, "read the password from the first line of standard input")
	return env.withUsers(ctx, args, 1, 1, func(db *userdb.DB, _ *config.Config, rest []string) error {
		if _, _, err := userdb.SplitAddress(rest[0]); err != nil {
			return err
		}
		pw, generated, err := env.readSecret(*fromStdin, "password")
		if err != nil {
			return err
		}
		acc, err := db.AddAccount(ctx, rest[0], pw)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "account %s added\n", acc.Address)
		if generated {
			fmt.Fprintf(env.stdout, "password: %s\n", pw)
		}
		return nil
	})
}

func runUserPasswd(ctx context.Context, env *cmdEnv, args []string) error {
	fromStdin := env.flags.Bool("password-stdin", false, "read the password from the first line of standard input")
	return env.withUsers(ctx, args, 1, 1, func(db *userdb.DB, _ *config.Config, rest []string) error {
		if _, err := db.Account(ctx, rest[0]); err != nil {
			return err
		}
		pw, generated, err := env.readSecret(*fromStdin, "password")
		if err != nil {
			return err
		}
		if err := db.SetPassword(ctx, rest[0], pw); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "password of %s changed\n", rest[0])
		if generated {
			fmt.Fprintf(env.stdout, "password: %s\n", pw)
		}
		return nil
	})
}

func runUserAPOP(ctx context.Context, env *cmdEnv, args []string) error {
	fromStdin := env.flags.Bool("password-stdin", false, "read the secret from the first line of standard input")
	clear := env.flags.Bool("clear", false, "remove the APOP secret (APOP logins then fail)")
	return env.withUsers(ctx, args, 1, 1, func(db *userdb.DB, _ *config.Config, rest []string) error {
		if _, err := db.Account(ctx, rest[0]); err != nil {
			return err
		}
		if *clear {
			if err := db.SetAPOPSecret(ctx, rest[0], ""); err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "APOP secret of %s removed\n", rest[0])
			return nil
		}
		secret, generated, err := env.readSecret(*fromStdin, "APOP secret")
		if err != nil {
			return err
		}
		if err := db.SetAPOPSecret(ctx, rest[0], secret); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "APOP secret of %s set\n", rest[0])
		if generated {
			fmt.Fprintf(env.stdout, "APOP secret: %s\n", secret)
		}
		return nil
	})
}

func runUserDel(ctx context.Context, env *cmdEnv, args []string) error {
	return env.withUsers(ctx, args, 1, 1, func(db *userdb.DB, cfg *config.Config, rest []string) error {
		acc, err := db.DelAccount(ctx, rest[0])
		if err != nil {
			return err
		}
		st, err := store.Open(ctx, cfg.Data, nil)
		if err != nil {
			return fmt.Errorf("account deleted, but its mail was not removed: %w", err)
		}
		defer st.Close()
		if err := st.RemoveAccount(ctx, acc.ID); err != nil {
			return fmt.Errorf("account deleted, but its mail was not removed: %w", err)
		}
		fmt.Fprintf(env.stdout, "account %s and its mail deleted\n", acc.Address)
		return nil
	})
}

func runUserList(ctx context.Context, env *cmdEnv, args []string) error {
	return env.withUsers(ctx, args, 0, 0, func(db *userdb.DB, _ *config.Config, _ []string) error {
		accs, err := db.Accounts(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ADDRESS\tAPOP\tQUOTA\tCREATED\tADMIN")
		for _, a := range accs {
			apop, quota, admin := "no", "none", ""
			if a.HasAPOP {
				apop = "yes"
			}
			if a.Admin {
				admin = "admin"
			}
			if a.QuotaBytes > 0 {
				quota = config.Size(a.QuotaBytes).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Address, apop, quota, a.Created.UTC().Format("2006-01-02 15:04"), admin)
		}
		return tw.Flush()
	})
}

func runAliasAdd(ctx context.Context, env *cmdEnv, args []string) error {
	return env.withUsers(ctx, args, 2, -1, func(db *userdb.DB, _ *config.Config, rest []string) error {
		if err := db.AddAlias(ctx, rest[0], rest[1:]); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "alias %s -> %s added\n", rest[0], strings.Join(rest[1:], ", "))
		return nil
	})
}

func runAliasDel(ctx context.Context, env *cmdEnv, args []string) error {
	return env.withUsers(ctx, args, 1, 1, func(db *userdb.DB, _ *config.Config, rest []string) error {
		if err := db.DelAlias(ctx, rest[0]); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "alias %s deleted\n", rest[0])
		return nil
	})
}

func runAliasList(ctx context.Context, env *cmdEnv, args []string) error {
	return env.withUsers(ctx, args, 0, 0, func(db *userdb.DB, _ *config.Config, _ []string) error {
		as, err := db.Aliases(ctx)
		if err != nil {
			return err
		}
		for _, a := range as {
			fmt.Fprintf(env.stdout, "%s\t%s\n", a.Address, strings.Join(a.Targets, ", "))
		}
		return nil
	})
}
