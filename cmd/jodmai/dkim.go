package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/mjl-/mox/dns"

	"github.com/jodmai/jodmai/internal/dnsrecords"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/userdb"
)

// runDKIMKeygen makes a new ed25519 and rsa key pair for a domain and
// prints the TXT records to publish.
func runDKIMKeygen(ctx context.Context, env *cmdEnv, args []string) error {
	rest, cfg, err := env.parseConfig(args, 1, 1)
	if err != nil {
		return err
	}
	keys, err := remote.Keygen(cfg.Data, rest[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "; DKIM keys for %s, used to sign its outbound mail from now on:\n", keys[0].Domain)
	if local, err := isLocalDomain(ctx, cfg.Data, keys[0].Domain); err == nil && !local {
		fmt.Fprintf(env.stdout, "; warning: %s is not a local domain here, so no mail from it is sent\n;   through this server until \"jodmai domain add %s\".\n", keys[0].Domain, keys[0].Domain)
	}
	for _, k := range keys {
		fmt.Fprintf(env.stdout, ";   %s (%s)\n", k.Path, k.Alg)
	}
	fmt.Fprintln(env.stdout, "; Publish these TXT records (zone-file syntax):")
	for _, k := range keys {
		fmt.Fprintln(env.stdout, k.ZoneRecord())
	}
	return nil
}

// runDKIMRetire stops a DKIM key from signing: its file moves to the
// domain's retired/ directory.
func runDKIMRetire(ctx context.Context, env *cmdEnv, args []string) error {
	rest, cfg, err := env.parseConfig(args, 2, 2)
	if err != nil {
		return err
	}
	if err := remote.RetireKey(cfg.Data, rest[0], rest[1]); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "DKIM selector %s of %s retired: a running server stops signing with it within a minute.\nKeep its DNS record published a few days more, for mail already signed with it.\n", rest[1], strings.ToLower(rest[0]))
	return nil
}

// runDNSRecords prints every DNS record a domain served by this server
// needs, in zone-file syntax.
func runDNSRecords(ctx context.Context, env *cmdEnv, args []string) error {
	rest, cfg, err := env.parseConfig(args, 1, 1)
	if err != nil {
		return err
	}
	d, err := dns.ParseDomain(strings.TrimSuffix(rest[0], "."))
	if err != nil {
		return usagef("bad domain %q: %v", rest[0], err)
	}
	keys, err := remote.LoadKeys(cfg.Data, d.ASCII)
	if err != nil {
		return err
	}
	var dkim []string
	for _, k := range keys {
		dkim = append(dkim, k.ZoneRecord())
	}
	dnsrecords.Write(env.stdout, cfg, d.ASCII, dkim)
	return nil
}

// isLocalDomain reports whether the directory in dataDir has domain.
func isLocalDomain(ctx context.Context, dataDir, domain string) (bool, error) {
	db, err := userdb.Open(ctx, dataDir)
	if err != nil {
		return false, err
	}
	defer db.Close()
	return db.IsLocalDomain(ctx, domain)
}
