package server

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/eventlog"
)

// ReloadResult says what a Reload did with each changed key.
type ReloadResult struct {
	// Applied are the changed keys now in effect ("limits.max_connections").
	Applied []string
	// Restart are the changed keys that take effect at the next start
	// (listen addresses, the data directory...).
	Restart []string
}

// reloadable are the keys Reload applies to the running server; a change
// of any other key needs a restart (listeners are bound once, for
// example). The protocol limits and timeouts apply to sessions that start
// after the reload; open sessions keep theirs.
var reloadable = []string{
	"log_level",
	"tls.cert", "tls.key", // when both were and stay set (files, not ACME or self-signed)
	"tls.acme_hosts",
	"limits.max_connections", "limits.max_connections_per_ip", "limits.exempt_networks",
	"limits.max_message_size", "limits.max_recipients", "limits.max_line_length",
	"limits.smtp_timeout", "limits.pop3_timeout", "limits.imap_timeout", "limits.imap_preauth_timeout", "limits.write_timeout",
	"store.max_open_accounts", "store.account_idle",
	"events.max_size", "events.keep",
}

// protocolLimits are the reloadable keys the protocol servers take
// (setProtocolLimits).
var protocolLimits = []string{
	"limits.max_message_size", "limits.max_recipients", "limits.max_line_length",
	"limits.smtp_timeout", "limits.pop3_timeout", "limits.imap_timeout", "limits.imap_preauth_timeout", "limits.write_timeout",
}

// Reload applies what it safely can of cfg, a freshly loaded
// configuration, to the running server, and reads the certificate files
// again (as SIGHUP always did). It logs what it applied and what needs a
// restart. On error (a certificate that does not load, a bad network)
// nothing is applied.
func (s *Server) Reload(ctx context.Context, cfg *config.Config) (ReloadResult, error) {
	var res ReloadResult
	old := s.cfg.Load()
	running := *old
	changed := changedKeys(old, cfg)
	apply := map[string]bool{}
	for _, k := range changed {
		if slices.Contains(reloadable, k) {
			apply[k] = true
		} else {
			res.Restart = append(res.Restart, k)
		}
	}
	if (apply["tls.cert"] || apply["tls.key"]) && (old.TLS.Cert == "" || cfg.TLS.Cert == "") {
		// Switching between files and self-signed or ACME changes where
		// certificates come from: at the next start.
		delete(apply, "tls.cert")
		delete(apply, "tls.key")
		for _, k := range []string{"tls.cert", "tls.key"} {
			if slices.Contains(changed, k) {
				res.Restart = append(res.Restart, k)
			}
		}
	}
	if apply["log_level"] && s.level == nil {
		delete(apply, "log_level")
		res.Restart = append(res.Restart, "log_level")
	}
	// Everything that can fail first, so a failure applies nothing.
	exempt, err := parsePrefixes("limits.exempt_networks", cfg.Limits.ExemptNetworks)
	if err != nil {
		return ReloadResult{}, err
	}
	if apply["tls.cert"] || apply["tls.key"] {
		if err := s.TLS.SetFiles(cfg.TLS.Cert, cfg.TLS.Key); err != nil {
			return ReloadResult{}, fmt.Errorf("reload: %w", err)
		}
		running.TLS.Cert, running.TLS.Key = cfg.TLS.Cert, cfg.TLS.Key
	} else {
		if err := s.TLS.Reload(); err != nil {
			return ReloadResult{}, fmt.Errorf("reload: %w", err)
		}
	}
	if apply["log_level"] {
		s.level.Set(cfg.LogLevel)
		running.LogLevel = cfg.LogLevel
	}
	if apply["tls.acme_hosts"] {
		running.TLS.ACMEHosts = cfg.TLS.ACMEHosts
	}
	if apply["limits.max_connections"] || apply["limits.max_connections_per_ip"] {
		s.limiter.SetCaps(cfg.Limits.MaxConnections, cfg.Limits.MaxConnectionsPerIP)
		running.Limits.MaxConnections, running.Limits.MaxConnectionsPerIP = cfg.Limits.MaxConnections, cfg.Limits.MaxConnectionsPerIP
	}
	if apply["limits.exempt_networks"] {
		s.limiter.Exempt(exempt)
		running.Limits.ExemptNetworks = cfg.Limits.ExemptNetworks
	}
	sessionLimits := false
	for _, k := range protocolLimits {
		if apply[k] {
			sessionLimits = true
		}
	}
	if sessionLimits {
		running.Limits.MaxMessageSize, running.Limits.MaxRecipients, running.Limits.MaxLineLength = cfg.Limits.MaxMessageSize, cfg.Limits.MaxRecipients, cfg.Limits.MaxLineLength
		running.Limits.SMTPTimeout, running.Limits.POP3Timeout = cfg.Limits.SMTPTimeout, cfg.Limits.POP3Timeout
		running.Limits.IMAPTimeout, running.Limits.IMAPPreauthTimeout = cfg.Limits.IMAPTimeout, cfg.Limits.IMAPPreauthTimeout
		running.Limits.WriteTimeout = cfg.Limits.WriteTimeout
		s.setProtocolLimits(running.Limits)
	}
	if apply["store.max_open_accounts"] || apply["store.account_idle"] || apply["limits.max_connections"] {
		running.Store = cfg.Store
		s.Store.SetOpenLimits(fitOpenAccounts(running.Store.MaxOpenAccounts, running.Limits.MaxConnections, s.log), running.Store.AccountIdle)
	}
	if apply["events.max_size"] || apply["events.keep"] {
		running.Events = cfg.Events
		s.Events.SetOptions(eventlog.Options{MaxSize: int64(cfg.Events.MaxSize), Keep: cfg.Events.Keep})
	}
	s.cfg.Store(&running)
	for _, k := range changed {
		if apply[k] {
			res.Applied = append(res.Applied, k)
		}
	}
	slices.Sort(res.Restart)
	if sessionLimits {
		s.log.Info("configuration reloaded", "applied", res.Applied, "needs_restart", res.Restart,
			"note", "protocol limits and timeouts apply to new sessions; open sessions keep theirs")
	} else {
		s.log.Info("configuration reloaded", "applied", res.Applied, "needs_restart", res.Restart)
	}
	if len(res.Restart) > 0 {
		s.log.Warn("configuration changes need a restart to take effect", "keys", strings.Join(res.Restart, ","))
	}
	return res, nil
}

// changedKeys returns the TOML keys ("section.key") whose values differ
// between a and b, in declaration order.
func changedKeys(a, b *config.Config) []string {
	var out []string
	var walk func(prefix string, x, y reflect.Value)
	walk = func(prefix string, x, y reflect.Value) {
		t := x.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			fx, fy := x.Field(i), y.Field(i)
			if f.Type.Kind() == reflect.Struct && prefix == "" {
				walk(name+".", fx, fy)
				continue
			}
			if !reflect.DeepEqual(fx.Interface(), fy.Interface()) {
				out = append(out, prefix+name)
			}
		}
	}
	walk("", reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem())
	return out
}
