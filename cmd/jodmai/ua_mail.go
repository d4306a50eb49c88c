package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jodmai/jodmai/internal/mailfile"
	"github.com/jodmai/jodmai/internal/ua"
)

func (env *cmdEnv) uaMaildir(uf uaFlags, folder string) (*mailfile.Maildir, error) {
	acc, err := uf.load()
	if err != nil {
		return nil, err
	}
	md, err := mailfile.OpenMaildir(acc.Maildir)
	if err != nil || folder == "" || folder == "INBOX" {
		return md, err
	}
	return md.Folder(folder)
}

func runMailList(ctx context.Context, env *cmdEnv, args []string) error {
	uf := env.uaFlags()
	folder := env.flags.String("folder", "", "Maildir++ `FOLDER` (e.g. Sent; default the inbox)")
	if _, err := env.parse(args, 0, 0); err != nil {
		return err
	}
	md, err := env.uaMaildir(uf, *folder)
	if err != nil {
		return err
	}
	return listSummaries(env, md, nil)
}

// listSummaries prints the listing; keep, when set, selects messages by
// their index.
func listSummaries(env *cmdEnv, md *mailfile.Maildir, keep func(i int, s ua.Summary) bool) error {
	sums, err := ua.Summaries(md)
	if err != nil {
		return err
	}
	for i, s := range sums {
		if keep != nil && !keep(i, s) {
			continue
		}
		date := "-"
		if !s.Date.IsZero() {
			date = s.Date.Local().Format("2006-01-02 15:04")
		}
		mark := " "
		if !containsRune(s.Letters, 'S') {
			mark = "N"
		}
		fmt.Fprintf(env.stdout, "%4d %s %s  %-30.30s  %s\n", i+1, mark, date, s.From, s.Subject)
	}
	return nil
}

func containsRune(s string, r rune) bool {
	for _, c := range s {
		if c == r {
			return true
		}
	}
	return false
}

func runMailRead(ctx context.Context, env *cmdEnv, args []string) error {
	uf := env.uaFlags()
	folder := env.flags.String("folder", "", "Maildir++ `FOLDER` (e.g. Sent; default the inbox)")
	rest, err := env.parse(args, 1, 1)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(rest[0])
	if err != nil || n < 1 {
		return usagef("N must be a message number from 'jodmai mail list'")
	}
	md, err := env.uaMaildir(uf, *folder)
	if err != nil {
		return err
	}
	ents, err := md.List()
	if err != nil {
		return err
	}
	if n > len(ents) {
		return fmt.Errorf("no message %d (there are %d)", n, len(ents))
	}
	if err := ua.Read(env.stdout, ents[n-1].Path); err != nil {
		return err
	}
	_, err = md.MarkSeen(ents[n-1])
	return err
}

func runMailSearch(ctx context.Context, env *cmdEnv, args []string) error {
	uf := env.uaFlags()
	folder := env.flags.String("folder", "", "Maildir++ `FOLDER` (e.g. Sent; default the inbox)")
	words, err := env.parse(args, 1, -1)
	if err != nil {
		return err
	}
	md, err := env.uaMaildir(uf, *folder)
	if err != nil {
		return err
	}
	var ferr error
	err = listSummaries(env, md, func(i int, s ua.Summary) bool {
		ok, err := ua.Matches(s.Path, words)
		if err != nil && ferr == nil {
			ferr = err
		}
		return ok
	})
	if err != nil {
		return err
	}
	return ferr
}
