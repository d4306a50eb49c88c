package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// runReload checks the configuration and asks the server running on the
// data directory to re-read it (SIGHUP). The server's log says what it
// applied and what needs a restart.
func runReload(ctx context.Context, env *cmdEnv, args []string) error {
	_, cfg, err := env.parseConfig(args, 0, 0)
	if err != nil {
		// A configuration that does not load would be refused by the
		// server too: say so here, where someone reads it.
		return err
	}
	pid, err := serverPID(cfg.Data)
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("signal the server (pid %d): %w", pid, err)
	}
	fmt.Fprintf(env.stdout, "sent SIGHUP to the jodmai server (pid %d); its log says what it applied and what needs a restart\n", pid)
	return nil
}

// serverPID returns the pid of the server holding <data>/jodmai.lock.
func serverPID(data string) (int, error) {
	path := filepath.Join(data, "jodmai.lock")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("no jodmai server has run on %s", data)
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	// A shared lock we can take means no server holds the exclusive one.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return 0, fmt.Errorf("no jodmai server is running on %s", data)
	}
	b := make([]byte, 32)
	n, _ := f.Read(b)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s names no process (a server older than jodmai reload?): restart it, or send it SIGHUP", path)
	}
	return pid, nil
}
