package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/jodmai/jodmai/internal/server"
)

// shutdownGrace is how long in-flight sessions get to finish after
// SIGINT/SIGTERM before they are cut.
const shutdownGrace = 30 * time.Second

func runServe(ctx context.Context, env *cmdEnv, args []string) error {
	pprofAddr := env.flags.String("pprof", "", "serve Go's profiling endpoints (/debug/pprof/) on `HOST:PORT`, loopback only; for debugging")
	if _, err := env.parse(args, 0, 0); err != nil {
		return err
	}
	if *pprofAddr != "" {
		stop, err := servePprof(*pprofAddr)
		if err != nil {
			return err
		}
		defer stop()
	}
	cfg, err := env.loadConfig()
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	log := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level}))
	srv, err := server.New(ctx, cfg, log, server.Options{LogLevel: level})
	if err != nil {
		return err
	}
	addr, pw, err := srv.Bootstrap(ctx)
	if err != nil {
		srv.Shutdown(ctx)
		return err
	}
	if pw != "" {
		fmt.Fprintf(env.stdout, "first start: created domain %s and account %s\n", cfg.Hostname, addr)
		fmt.Fprintf(env.stdout, "password for %s: %s   (shown once; change it with 'jodmai user passwd %s')\n", addr, pw, addr)
	}
	// Signals are ours before the server says it serves: a supervisor
	// may send SIGTERM the moment it reads "serving", and that must be a
	// graceful shutdown, not the default death.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := srv.Start(); err != nil {
		srv.Shutdown(ctx)
		return err
	}
	srv.PrefetchCertificates()
	addrs := srv.Addrs()
	keys := make([]string, 0, len(addrs))
	for k := range addrs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return order(keys[i]) < order(keys[j]) })
	fmt.Fprintf(env.stdout, "jodmai %s serving %s, data in %s\n", version, cfg.Hostname, cfg.Data)
	for _, k := range keys {
		fmt.Fprintf(env.stdout, "  %-12s %s\n", k, addrs[k])
	}

	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				// jodmai reload, systemctl reload: the whole config
				// again; the server logs what it applied.
				newCfg, err := env.loadConfig()
				if err != nil {
					log.Error("reload: configuration not loaded; nothing changed", "err", err)
					continue
				}
				if _, err := srv.Reload(ctx, newCfg); err != nil {
					log.Error("reload failed; nothing changed", "err", err)
				}
				continue
			}
			log.Info("shutting down", "signal", sig.String())
			sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			go func() {
				// A second signal cuts the grace period short.
				<-sigs
				cancel()
			}()
			err := srv.Shutdown(sctx)
			cancel()
			if err != nil {
				log.Warn("shutdown", "err", err)
			}
			log.Info("stopped")
			return nil
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			defer cancel()
			return srv.Shutdown(sctx)
		}
	}
}

func order(key string) int {
	for i, k := range []string{"smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps", "http", "https", "metrics"} {
		if k == key {
			return i
		}
	}
	return 99
}

// servePprof serves net/http/pprof's handlers on addr, which must be a
// loopback address: profiles show message contents in stacks and heaps,
// so they are never exposed beyond the machine.
func servePprof(addr string) (stop func(), err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--pprof %q: only a loopback address is allowed", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	return func() { hs.Close() }, nil
}
