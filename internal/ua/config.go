// Package ua is jodmai's user agent side: the accounts file, composing and
// submitting mail over SMTP, fetching it over POP3 or IMAP into a local
// Maildir, and reading that Maildir.
//
// Durability invariant: a fetched message is written to the Maildir's tmp/,
// fsynced, recorded as pending in the fetch ledger, renamed into new/ with a
// directory fsync, and marked done in the ledger, all before the server is
// told to delete it. An interrupted fetch therefore loses nothing, and the
// ledger lets the next run skip what is already stored. The Maildir itself
// is package mailfile's (mailfile.Maildir); the ledger (ledger.go) is ours.
//
// The accounts file is ~/.config/jodmai/accounts.toml, or the file named by
// --accounts or $JODMAI_ACCOUNTS. (--config is the server's config file in
// every jodmai command, hence the separate flag.) Example:
//
//	default = "home"
//
//	[accounts.home]
//	from = "Ann Example <ann@example.org>"
//	username = "ann@example.org"
//	password_command = "pass show mail/ann"   # or password_env = "MAIL_PW"; neither: prompt
//	maildir = "~/Mail/home"                   # default ~/Mail/<account>
//	apop = false
//	tls_ca_file = ""                          # PEM file to trust a self-signed server
//	smtp = { server = "mail.example.org:587", tls = "starttls" }
//	pop3 = { server = "mail.example.org:995", tls = "implicit" }
//	imap = { server = "mail.example.org:993", tls = "implicit" }
//	imap_sent = "Sent"                        # optional: also APPEND sent mail there
//
// tls is "implicit", "starttls" or "none"; "none" is accepted only for
// loopback hosts. The password is never stored in the file.
package ua

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// TLS modes of a Server.
const (
	TLSImplicit = "implicit"
	TLSStartTLS = "starttls"
	TLSNone     = "none"
)

// Server is one protocol endpoint of an account.
type Server struct {
	Server string `toml:"server"` // host:port
	TLS    string `toml:"tls"`
}

// Account is one mail account of the accounts file.
type Account struct {
	Name            string  `toml:"-"`
	From            string  `toml:"from"`
	Username        string  `toml:"username"`
	PasswordCommand string  `toml:"password_command"`
	PasswordEnv     string  `toml:"password_env"`
	Maildir         string  `toml:"maildir"`
	APOP            bool    `toml:"apop"`
	TLSCAFile       string  `toml:"tls_ca_file"`
	SMTP            *Server `toml:"smtp"`
	POP3            *Server `toml:"pop3"`
	IMAP            *Server `toml:"imap"`
	// IMAPSent, when set, is the server mailbox (e.g. "Sent") that send
	// also APPENDs its copy to, over the imap server.
	IMAPSent string `toml:"imap_sent"`
}

// Accounts is the parsed accounts file.
type Accounts struct {
	Default  string              `toml:"default"`
	Accounts map[string]*Account `toml:"accounts"`
}

// DefaultAccountsPath returns $JODMAI_ACCOUNTS or
// ~/.config/jodmai/accounts.toml (under $XDG_CONFIG_HOME when set).
func DefaultAccountsPath() (string, error) {
	if p := os.Getenv("JODMAI_ACCOUNTS"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "jodmai", "accounts.toml"), nil
}

// LoadAccounts reads and validates an accounts file. Unknown keys are errors.
func LoadAccounts(path string) (*Accounts, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	return ParseAccounts(data, path)
}

// ParseAccounts parses accounts file contents; name is used in errors.
func ParseAccounts(data []byte, name string) (*Accounts, error) {
	var a Accounts
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&a)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("%s: unknown keys: %s", name, strings.Join(keys, ", "))
	}
	if len(a.Accounts) == 0 {
		return nil, fmt.Errorf("%s: no [accounts.NAME] defined", name)
	}
	home, _ := os.UserHomeDir()
	for n, acc := range a.Accounts {
		if acc == nil {
			return nil, fmt.Errorf("%s: account %q is empty", name, n)
		}
		acc.Name = n
		if err := acc.validate(home); err != nil {
			return nil, fmt.Errorf("%s: account %q: %w", name, n, err)
		}
	}
	if a.Default != "" && a.Accounts[a.Default] == nil {
		return nil, fmt.Errorf("%s: default account %q is not defined", name, a.Default)
	}
	return &a, nil
}

func (acc *Account) validate(home string) error {
	if acc.Username == "" {
		return errors.New("username is required")
	}
	if acc.PasswordCommand != "" && acc.PasswordEnv != "" {
		return errors.New("password_command and password_env are exclusive")
	}
	if acc.SMTP == nil && acc.POP3 == nil && acc.IMAP == nil {
		return errors.New("no smtp, pop3 or imap server")
	}
	for _, s := range []struct {
		name string
		srv  *Server
	}{{"smtp", acc.SMTP}, {"pop3", acc.POP3}, {"imap", acc.IMAP}} {
		if s.srv == nil {
			continue
		}
		if err := s.srv.validate(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if acc.IMAPSent != "" && acc.IMAP == nil {
		return errors.New("imap_sent needs an imap server")
	}
	if acc.Maildir == "" {
		if home == "" {
			return errors.New("maildir not set and no home directory")
		}
		acc.Maildir = filepath.Join(home, "Mail", acc.Name)
	} else if strings.HasPrefix(acc.Maildir, "~/") {
		acc.Maildir = filepath.Join(home, acc.Maildir[2:])
	}
	if strings.HasPrefix(acc.TLSCAFile, "~/") {
		acc.TLSCAFile = filepath.Join(home, acc.TLSCAFile[2:])
	}
	return nil
}

func (s *Server) validate() error {
	host, port, err := net.SplitHostPort(s.Server)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("server %q: want host:port", s.Server)
	}
	switch s.TLS {
	case TLSImplicit, TLSStartTLS:
	case TLSNone:
		if !isLoopback(host) {
			return fmt.Errorf("tls = \"none\" is allowed only for loopback hosts, not %q", host)
		}
	case "":
		return errors.New(`tls must be set: "implicit", "starttls" or "none"`)
	default:
		return fmt.Errorf("tls %q: want \"implicit\", \"starttls\" or \"none\"", s.TLS)
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Account returns the named account, or the default one when name is "":
// the file's default, or the only account.
func (a *Accounts) Account(name string) (*Account, error) {
	if name == "" {
		name = a.Default
	}
	if name == "" {
		if len(a.Accounts) == 1 {
			for _, acc := range a.Accounts {
				return acc, nil
			}
		}
		names := make([]string, 0, len(a.Accounts))
		for n := range a.Accounts {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("several accounts (%s) and no default: use --account", strings.Join(names, ", "))
	}
	acc := a.Accounts[name]
	if acc == nil {
		return nil, fmt.Errorf("no account %q", name)
	}
	return acc, nil
}

// Prompter asks the user for a password on a terminal; nil when there is
// none.
type Prompter func(prompt string) (string, error)

// Password gets the account's password: from password_command (its first
// output line), password_env, or prompt.
func (acc *Account) Password(ctx context.Context, prompt Prompter) (string, error) {
	switch {
	case acc.PasswordCommand != "":
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", acc.PasswordCommand)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("password_command: %w", err)
		}
		line, _, _ := strings.Cut(string(out), "\n")
		return strings.TrimRight(line, "\r"), nil
	case acc.PasswordEnv != "":
		pw, ok := os.LookupEnv(acc.PasswordEnv)
		if !ok {
			return "", fmt.Errorf("password_env: $%s is not set", acc.PasswordEnv)
		}
		return pw, nil
	case prompt != nil:
		return prompt(fmt.Sprintf("password for %s (%s): ", acc.Name, acc.Username))
	}
	return "", errors.New("no password source: set password_command or password_env, or run on a terminal")
}

// TLSConfig returns the client TLS config for host: system roots, plus the
// account's tls_ca_file when set.
func (acc *Account) TLSConfig(host string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if acc.TLSCAFile != "" {
		pem, err := os.ReadFile(acc.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca_file %s: no PEM certificates", acc.TLSCAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func (acc *Account) serverTLS(s *Server) (*tls.Config, error) {
	host, _, _ := net.SplitHostPort(s.Server)
	return acc.TLSConfig(host)
}
