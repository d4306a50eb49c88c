package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mjl-/mox/dns"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/dnsrecords"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/userdb"
)

// quickstartConfig is the configuration quickstart writes: what differs
// from the defaults for a server on the internet.
const quickstartConfig = `# jodmai configuration, written by "jodmai quickstart %[1]s" on %[2]s.
# Every key and its default: the README's "Configuration" section.
hostname = %[3]q
data = %[4]q

# The standard ports, also when not running as root: give the binary
# CAP_NET_BIND_SERVICE (dist/jodmai.service does) instead.
[listen]
smtp = ":25"
submission = ":587"
submissions = ":465"
pop3 = ":110"
pop3s = ":995"
imap = ":143"
imaps = ":993"
http = ":80"
https = ":443"

# Certificates from Let's Encrypt for the host name and the mta-sts.,
# autoconfig. and autodiscover. names of each local domain.
[tls]
acme = true
acme_email = %[5]q
`

// runQuickstart sets up a new server for one domain: a config file, the
// domain, an administrator, DKIM keys, ACME; it prints the DNS records
// and what to do next.
func runQuickstart(ctx context.Context, env *cmdEnv, args []string) error {
	hostname := env.flags.String("hostname", "", "the server's DNS `NAME` (default: mail.DOMAIN)")
	rest, err := env.parse(args, 1, 2)
	if err != nil {
		return err
	}
	d, err := dns.ParseDomain(strings.TrimSuffix(rest[0], "."))
	if err != nil {
		return usagef("bad domain %q: %v", rest[0], err)
	}
	domain := d.ASCII
	admin := "postmaster@" + domain
	if len(rest) == 2 {
		admin = strings.ToLower(rest[1])
		if _, dom, ok := strings.Cut(admin, "@"); !ok || dom != domain {
			return usagef("the admin address %q must be in %s", rest[1], domain)
		}
	}
	host := *hostname
	if host == "" {
		host = "mail." + domain
	}
	confPath := *env.configPath
	if confPath == "" {
		confPath = "jodmai.toml"
	}
	data := *env.dataDir
	if data == "" {
		data = "jodmai-data"
	}
	if data, err = filepath.Abs(data); err != nil {
		return err
	}
	// The config file first, exclusively: quickstart never overwrites.
	f, err := os.OpenFile(confPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists; quickstart does not overwrite a configuration (remove it or pass --config NEW)", confPath)
	}
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(confPath)
		}
	}()
	text := fmt.Sprintf(quickstartConfig, domain, time.Now().UTC().Format(time.RFC3339), host, data, admin)
	// The file must load as written: the same strict decoder as serve.
	cfg, err := config.Options{}.Parse([]byte(text))
	if err != nil {
		return fmt.Errorf("quickstart: the configuration does not load: %w", err)
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	db, err := userdb.Open(ctx, cfg.Data)
	if err != nil {
		return err
	}
	defer db.Close()
	if local, err := db.IsLocalDomain(ctx, domain); err != nil {
		return err
	} else if local {
		return fmt.Errorf("%s is already a domain of %s: quickstart sets up a new one", domain, cfg.Data)
	}
	password := userdb.GeneratePassword()
	yes := true
	rec := userdb.ImportRecord{Address: admin, Password: password, Admin: &yes}
	if admin != "postmaster@"+domain {
		// RFC 5321 §4.5.1: every domain has a postmaster.
		rec.Aliases = []string{"postmaster@" + domain}
	}
	res, err := db.ImportBatch(ctx, []userdb.ImportRecord{rec}, userdb.ImportOptions{CreateDomains: true, Workers: 1})
	if err != nil {
		return err
	}
	if len(res) != 1 || res[0].Err != nil {
		return fmt.Errorf("create %s: %v", admin, res[0].Err)
	}
	keys, err := remote.Keygen(cfg.Data, domain)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	ok = true

	p := func(format string, a ...any) { fmt.Fprintf(env.stdout, format+"\n", a...) }
	p("Wrote %s (hostname %s, data in %s, ACME on).", confPath, host, cfg.Data)
	p("Created domain %s, DKIM keys, and the administrator %s.", domain, admin)
	p("")
	p("password for %s: %s   (shown once; change it with 'jodmai user passwd --config %s %s')", admin, password, confPath, admin)
	p("")
	var dkim []string
	for _, k := range keys {
		dkim = append(dkim, k.ZoneRecord())
	}
	dnsrecords.Write(env.stdout, cfg, domain, dkim)
	p("")
	p("Next steps:")
	p("  1. Publish the DNS records above, and the A/AAAA records of %s; ask whoever", host)
	p("     gives you the IP address to set its reverse DNS (PTR) to %s.", host)
	p("  2. Let ports 25, 465, 587, 993, 995, 143, 110, 80 and 443 reach this machine.")
	p("  3. Start the server: jodmai serve --config %s", confPath)
	p("     (as a service: dist/jodmai.service, non-root with CAP_NET_BIND_SERVICE).")
	p("  4. Check the DNS: jodmai dns-check --config %s", confPath)
	p("  5. Set up a mail client with %s and the password above: it finds the", admin)
	p("     servers through the SRV and autoconfig records.")
	return nil
}
