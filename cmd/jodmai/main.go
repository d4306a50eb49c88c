// Command jodmai is a complete mail system in one binary: SMTP (MX and
// submission), POP3 and IMAP over one mail store, and the admin commands that
// manage its domains, accounts and aliases.
//
// Usage: jodmai COMMAND [flags] [arguments]. Run "jodmai help" for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// command is one subcommand.
type command struct {
	name    string
	args    string
	summary string
	// run executes the command. It gets its own FlagSet (with --config and
	// --data already defined, unless local) and the arguments after its
	// name.
	run func(ctx context.Context, env *cmdEnv, args []string) error
	// local: the command does not use the server's configuration or data
	// directory (the user agent, the load tool), so it has no --config or
	// --data.
	local bool
}

// cmdEnv is what every command run gets: where to write, and the common
// flags.
type cmdEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	flags          *flag.FlagSet
	configPath     *string
	dataDir        *string
	name           string
}

// usageError is an error caused by how the command was called; main prints
// the command's usage with it.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// flagError is a flag parsing error that the flag package has already
// reported, with the command's usage.
type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() }
func (e flagError) Unwrap() error { return e.err }

func commands() []command {
	return []command{
		{"serve", "", "run every configured listener until SIGINT/SIGTERM", runServe, false},
		{"quickstart", "[--hostname NAME] DOMAIN [ADMIN-ADDRESS]", "set up a new server: write a config file (--config, default ./jodmai.toml; never overwritten), create the domain, an admin account (password printed once) and DKIM keys, turn on ACME, print the DNS records and next steps", runQuickstart, false},
		{"reload", "", "make the running server re-read its configuration (SIGHUP): certificates, log level, connection caps, protocol limits and timeouts (for new sessions), ACME hosts, store limits; it logs what needs a restart", runReload, false},
		{"domain add", "DOMAIN", "add a local domain", runDomainAdd, false},
		{"domain del", "DOMAIN", "delete a local domain (it must have no accounts or aliases)", runDomainDel, false},
		{"domain list", "", "list the local domains", runDomainList, false},
		{"user add", "[--password-stdin] ADDRESS", "create an account (password prompted on a terminal, read from stdin, or generated and printed)", runUserAdd, false},
		{"user passwd", "[--password-stdin] ADDRESS", "set an account's password", runUserPasswd, false},
		{"user apop", "[--password-stdin] [--clear] ADDRESS", "set the account's APOP shared secret (POP3 APOP login)", runUserAPOP, false},
		{"user del", "ADDRESS", "delete an account and all its mail", runUserDel, false},
		{"user quota", "ADDRESS SIZE", "set an account's storage quota (e.g. 2GiB; 0 or none: unlimited)", runUserQuota, false},
		{"user list", "", "list accounts", runUserList, false},
		{"user admin", "[--off] ADDRESS", "make an account an admin of the web console (--off: no longer)", runUserAdmin, false},
		{"user import", "[--format csv|json|dovecot] [--create-domains] [--domain D] FILE|-", "create and update accounts in bulk from CSV, JSON or a Dovecot passwd-file, with existing password hashes; idempotent, reports per line", runUserImport, false},
		{"alias add", "ALIAS TARGET...", "add an alias (ALIAS may be @domain for a catch-all)", runAliasAdd, false},
		{"alias del", "ALIAS", "delete an alias", runAliasDel, false},
		{"alias list", "", "list aliases", runAliasList, false},
		{"dkim keygen", "DOMAIN", "make DKIM keys (ed25519 and rsa) for a domain and print the DNS TXT records to publish", runDKIMKeygen, false},
		{"dkim retire", "DOMAIN SELECTOR", "stop signing with a DKIM key (rotation: keygen first, retire the old selectors once the new records are published; keep the old record in DNS a few days more)", runDKIMRetire, false},
		{"dns-records", "DOMAIN", "print every DNS record a domain needs (MX, SPF, DKIM, DMARC, MTA-STS, TLSRPT, SRV, autoconfig)", runDNSRecords, false},
		{"dns-check", "[--resolver HOST:PORT] [DOMAIN]", "look up the live DNS records of a domain (default: every local domain) and say, record by record, what is right, missing or wrong, with the record to publish", runDNSCheck, false},
		{"queue list", "", "list the outbound queue: each recipient's state, next attempt and last result (the server may run)", runQueueList, false},
		{"queue show", "ID", "show one queued message in detail", runQueueShow, false},
		{"queue retry", "ID", "attempt delivery of a queued message now", runQueueRetry, false},
		{"queue hold", "ID", "stop delivery attempts of a queued message until released", runQueueHold, false},
		{"queue release", "ID", "release a held message and attempt it now", runQueueRelease, false},
		{"queue delete", "ID", "remove a message from the queue, without a bounce", runQueueDelete, false},
		{"queue flush", "", "attempt every queued message not held now", runQueueFlush, false},
		{"log search", "[--from ADDR] [--to ADDR] [--msgid ID] [--qid ID] [--event KIND] [--since DUR] [--limit N] [--json]", "search the mail event log (received, delivered, queued, sent, deferred, bounced, rejected), newest first (the server may run)", runLogSearch, false},
		{"check", "[--repair]", "verify the mail store (safe while the server runs); --repair fixes what it safely can, with the server stopped", runCheck, false},
		{"backup", "[--name NAME] DIR", "take a consistent online backup into DIR/NAME (the server may run)", runBackup, false},
		{"restore", "[--force] BACKUPDIR", "restore a backup into the data dir (the server must be stopped)", runRestore, false},
		{"import", "[--mailbox NAME] [--format mbox|maildir] ACCOUNT FILE|DIR", "import an mbox file, a directory of .mbox files or a Maildir into an account (the server may run)", runImport, false},
		{"export", "[--format maildir|mbox] [--mailbox NAME] ACCOUNT DIR", "export an account's mailboxes to a Maildir or to mbox files (the server may run)", runExport, false},
		{"send", "--to ADDRESS... [flags]", "compose a message (body from stdin or $EDITOR) and submit it over SMTP", runSend, true},
		{"fetch", "[--pop3|--imap] [--keep] [--expunge]", "download mail into the local Maildir over POP3 or IMAP", runFetch, true},
		{"sync", "[--mailbox NAME]... [--all]", "fetch new mail over IMAP and sync flags both ways with the local Maildir (INBOX, the mailboxes named, or all)", runSync, true},
		{"mail list", "[--folder F]", "list the messages in the local Maildir", runMailList, true},
		{"mail read", "[--folder F] N", "show message N of the local Maildir", runMailRead, true},
		{"mail search", "[--folder F] WORD...", "list the local messages whose headers or text contain every word", runMailSearch, true},
		{"bench", "[flags] smtp|relay|sink|pop3|imap|idle", "load-test an SMTP, POP3 or IMAP server on loopback and verify what it measures (sink: a no-disk SMTP server)", runBench, true},
		{"version", "", "print the version", runVersion, true},
	}
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func runVersion(ctx context.Context, env *cmdEnv, args []string) error {
	if _, err := env.parse(args, 0, 0); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, "jodmai", version)
	return nil
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches a command line and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			if c, rest := find(args[1:]); c != nil && len(rest) == 0 {
				// Let the command print its own usage, so that the flags
				// it defines itself are listed too. Every command parses
				// its flags before doing anything, so --help does nothing
				// else (cmd/jodmai tests check this).
				env := newEnv(c, stdin, stdout, stdout)
				if err := c.run(ctx, env, []string{"--help"}); !errors.Is(err, flag.ErrHelp) {
					printCommandHelp(stdout, c, env.flags)
				}
				return 0
			}
		}
		printHelp(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, rest := find(args)
	if c == nil {
		fmt.Fprintf(stderr, "jodmai: unknown command %q\n\n", strings.Join(args[:min(2, len(args))], " "))
		printHelp(stderr)
		return 2
	}
	env := newEnv(c, stdin, stdout, stderr)
	err := c.run(ctx, env, rest)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var fe flagError
	if errors.As(err, &fe) {
		// The flag package has already said what was wrong, with the usage.
		return 2
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "jodmai %s: %s\n", c.name, ue.msg)
		fmt.Fprintf(stderr, "usage: %s\n", usageLine(c))
		return 2
	}
	fmt.Fprintf(stderr, "jodmai %s: %v\n", c.name, err)
	return 1
}

func newEnv(c *command, stdin io.Reader, stdout, stderr io.Writer) *cmdEnv {
	fs := flag.NewFlagSet("jodmai "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := &cmdEnv{stdin: stdin, stdout: stdout, stderr: stderr, flags: fs, name: c.name}
	if c.local {
		env.configPath, env.dataDir = new(string), new(string)
	} else {
		env.configPath = fs.String("config", "", "configuration `FILE` (TOML); default: none, built-in defaults")
		env.dataDir = fs.String("data", "", "data `DIR`; overrides the config's data setting (default ./jodmai-data)")
	}
	fs.Usage = func() { printCommandHelp(stderr, c, fs) }
	return env
}

// find returns the command named by the first one or two words of args.
func find(args []string) (*command, []string) {
	cmds := commands()
	if len(args) >= 2 {
		for i := range cmds {
			if cmds[i].name == args[0]+" "+args[1] {
				return &cmds[i], args[2:]
			}
		}
	}
	for i := range cmds {
		if cmds[i].name == args[0] {
			return &cmds[i], args[1:]
		}
	}
	return nil, nil
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "jodmai: a complete mail system (SMTP, POP3, IMAP) in one binary.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "usage: jodmai COMMAND [flags] [arguments]")
	fmt.Fprintln(w, "       (the server and admin commands take --config FILE and --data DIR)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	cmds := commands()
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-14s %-36s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'jodmai help COMMAND' or 'jodmai COMMAND --help' for a command's flags.")
}

// usageLine is "jodmai NAME [common flags] ARGS".
func usageLine(c *command) string {
	if c.local {
		return strings.TrimSpace("jodmai " + c.name + " " + c.args)
	}
	return strings.TrimSpace("jodmai " + c.name + " [--config FILE] [--data DIR] " + c.args)
}

func printCommandHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s\n\n%s.\n\n", usageLine(c), c.summary)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintln(w, "flags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
}
