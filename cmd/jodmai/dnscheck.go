package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/jodmai/jodmai/internal/dnscheck"
	"github.com/jodmai/jodmai/internal/resolver"
	"github.com/jodmai/jodmai/internal/userdb"
)

// runDNSCheck looks up the live DNS records of one or every local domain
// and prints, record by record, what is right, missing or wrong, with
// the record to publish. It exits 1 when anything is not right.
func runDNSCheck(ctx context.Context, env *cmdEnv, args []string) error {
	resolverAddr := env.flags.String("resolver", "", "ask the DNS server at `HOST:PORT` (default: [dns] resolver, else the system's)")
	rest, cfg, err := env.parseConfig(args, 0, 1)
	if err != nil {
		return err
	}
	var domains []string
	if len(rest) == 1 {
		domains = []string{strings.ToLower(strings.TrimSuffix(rest[0], "."))}
	} else {
		db, err := userdb.Open(ctx, cfg.Data)
		if err != nil {
			return err
		}
		domains, err = db.Domains(ctx)
		db.Close()
		if err != nil {
			return err
		}
		if len(domains) == 0 {
			return fmt.Errorf("no local domains (add one with jodmai domain add, or name one)")
		}
	}
	addr := cfg.DNS.Resolver
	if *resolverAddr != "" {
		addr = *resolverAddr
	}
	c := &dnscheck.Checker{Config: cfg, Resolver: resolver.New(addr, nil)}
	var all []dnscheck.Result
	for _, d := range domains {
		all = append(all, c.Check(ctx, d)...)
	}
	writeDNSCheck(env, all)
	if n := dnscheck.Problems(all); n > 0 {
		return fmt.Errorf("%d record(s) to fix", n)
	}
	fmt.Fprintln(env.stdout, "\nAll records are right.")
	return nil
}

// writeDNSCheck prints the table, then each record to publish.
func writeDNSCheck(env *cmdEnv, rs []dnscheck.Result) {
	tw := tabwriter.NewWriter(env.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tCHECK\tNAME\tSTATUS\tDETAIL")
	for _, r := range rs {
		detail := r.Detail
		if detail == "" && r.Status == dnscheck.OK && len(r.Found) > 0 {
			detail = strings.Join(r.Found, ", ")
			if len(detail) > 60 {
				detail = detail[:57] + "..."
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Domain, r.Check, r.Name, strings.ToUpper(string(r.Status)), strings.ReplaceAll(detail, "\n", " "))
	}
	tw.Flush()
	first := true
	for _, r := range rs {
		if r.Status == dnscheck.OK {
			continue
		}
		if first {
			fmt.Fprintln(env.stdout, "\nTo publish:")
			first = false
		}
		fmt.Fprintf(env.stdout, "; %s %s: %s\n%s\n", r.Check, r.Name, r.Status, r.Want)
	}
}
