package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/jodmai/jodmai/internal/mailfile"
	"github.com/jodmai/jodmai/internal/ua"
)

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ", ") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func runSend(ctx context.Context, env *cmdEnv, args []string) error {
	uf := env.uaFlags()
	var to, cc, bcc, attach stringsFlag
	env.flags.Var(&to, "to", "recipient `ADDRESS` (repeatable; a comma-separated list is fine)")
	env.flags.Var(&cc, "cc", "carbon-copy `ADDRESS` (repeatable)")
	env.flags.Var(&bcc, "bcc", "blind-copy `ADDRESS` (repeatable; in the envelope only, not the header)")
	env.flags.Var(&attach, "attach", "attach `FILE` (repeatable)")
	subject := env.flags.String("subject", "", "the `SUBJECT`")
	dryRun := env.flags.Bool("dry-run", false, "print the message instead of sending it")
	if _, err := env.parse(args, 0, 0); err != nil {
		return err
	}
	if len(to) == 0 {
		return usagef("--to is required")
	}
	acc, err := uf.load()
	if err != nil {
		return err
	}
	if acc.From == "" {
		return fmt.Errorf("account %q has no from address", acc.Name)
	}
	from, err := ua.ParseAddresses([]string{acc.From})
	if err != nil || len(from) != 1 {
		return fmt.Errorf("account %q: bad from address %q", acc.Name, acc.From)
	}
	toA, err := ua.ParseAddresses(to)
	if err != nil {
		return usagef("%v", err)
	}
	ccA, err := ua.ParseAddresses(cc)
	if err != nil {
		return usagef("%v", err)
	}
	bccA, err := ua.ParseAddresses(bcc)
	if err != nil {
		return usagef("%v", err)
	}
	body, err := env.readBody(ctx)
	if err != nil {
		return err
	}
	msg, err := ua.Compose(ua.Draft{From: from[0], To: toA, Cc: ccA, Subject: *subject, Body: body, Attach: attach})
	if err != nil {
		return err
	}
	if *dryRun {
		_, err := env.stdout.Write(msg)
		return err
	}
	var rcpts []string
	for _, a := range append(append(toA, ccA...), bccA...) {
		rcpts = append(rcpts, a.Address)
	}
	pw, err := env.password(ctx, acc)
	if err != nil {
		return err
	}
	if err := acc.Send(ctx, pw, from[0].Address, rcpts, msg); err != nil {
		return err
	}
	md, err := mailfile.OpenMaildir(acc.Maildir)
	if err == nil {
		if md, err = md.Folder("Sent"); err == nil {
			var t *mailfile.MaildirTmp
			if t, err = md.WriteTmp(bytes.NewReader(msg)); err == nil {
				if err = t.CommitCur("S"); err != nil {
					t.Abort()
				}
			}
		}
	}
	if err != nil {
		return fmt.Errorf("sent, but storing the copy in Sent failed: %w", err)
	}
	if acc.IMAPSent != "" {
		if err := acc.AppendSent(ctx, pw, msg); err != nil {
			return fmt.Errorf("sent, but storing the copy on the server failed: %w", err)
		}
	}
	fmt.Fprintf(env.stderr, "sent to %d recipients\n", len(rcpts))
	return nil
}

// readBody reads the body from stdin, or from $EDITOR when stdin is a
// terminal.
func (env *cmdEnv) readBody(ctx context.Context) (string, error) {
	if !isTerminal(env.stdin) {
		b, err := io.ReadAll(io.LimitReader(env.stdin, 64<<20))
		return string(b), err
	}
	editor := os.Getenv("VISUAL")
	if editor == "" {
		editor = os.Getenv("EDITOR")
	}
	if editor == "" {
		return "", errors.New("stdin is a terminal and neither $VISUAL nor $EDITOR is set: pipe the body in")
	}
	f, err := os.CreateTemp("", "jodmai-*.txt")
	if err != nil {
		return "", err
	}
	f.Close()
	defer os.Remove(f.Name())
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", editor+` "$1"`, "editor", f.Name())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("editor: %w", err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", errors.New("empty body: not sent")
	}
	return string(b), nil
}
