package main

// The user agent commands (send, fetch, mail list, mail read) read the
// accounts file ~/.config/jodmai/accounts.toml, or the one named by
// --accounts FILE or $JODMAI_ACCOUNTS. --config stays the server's config
// file, as in every jodmai command; the user agent does not read it.
// See package internal/ua for the accounts file format.

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/jodmai/jodmai/internal/ua"
)

// uaFlags are the flags every user agent command has.
type uaFlags struct {
	accounts *string
	account  *string
}

func (env *cmdEnv) uaFlags() uaFlags {
	return uaFlags{
		accounts: env.flags.String("accounts", "", "accounts `FILE` (default $JODMAI_ACCOUNTS or ~/.config/jodmai/accounts.toml)"),
		account:  env.flags.String("account", "", "account `NAME` (default: the file's default, or its only account)"),
	}
}

func (f uaFlags) load() (*ua.Account, error) {
	path := *f.accounts
	if path == "" {
		var err error
		if path, err = ua.DefaultAccountsPath(); err != nil {
			return nil, err
		}
	}
	accs, err := ua.LoadAccounts(path)
	if err != nil {
		return nil, err
	}
	return accs.Account(*f.account)
}

// isTerminal reports whether r is a terminal.
func isTerminal(r any) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// prompter returns a password prompter on the controlling terminal, or nil.
func (env *cmdEnv) prompter() ua.Prompter {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	tty.Close()
	return func(prompt string) (string, error) {
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return "", err
		}
		defer tty.Close()
		fmt.Fprint(tty, prompt)
		pw, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(pw), "\r\n"), nil
	}
}

func (env *cmdEnv) password(ctx context.Context, acc *ua.Account) (string, error) {
	return acc.Password(ctx, env.prompter())
}

// progress returns a progress callback that redraws one line on a
// terminal, or nil.
func progress(w io.Writer) func(done, total int, bytes int64) {
	if !isTerminal(w) {
		return nil
	}
	return func(done, total int, bytes int64) {
		fmt.Fprintf(w, "\r%d/%d messages, %d bytes", done, total, bytes)
	}
}
