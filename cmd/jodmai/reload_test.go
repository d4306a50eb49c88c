package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until buf contains want.
func waitFor(t *testing.T, buf *syncBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(buf.String(), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", want, buf.String())
		}
	}
}

// TestReloadCommand: jodmai reload makes a running jodmai serve (here in
// this process) re-read its config file, apply the log level and say that
// a listen address needs a restart.
func TestReloadCommand(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "jodmai.toml")
	write := func(level, imap string) {
		text := "hostname = \"mail.example.org\"\nlog_level = \"" + level + "\"\n[listen]\nsmtp = \"\"\nsubmission = \"\"\nsubmissions = \"\"\npop3 = \"\"\npop3s = \"\"\nimaps = \"\"\nhttp = \"\"\nhttps = \"\"\nmetrics = \"\"\nimap = \"" + imap + "\"\n[dns]\nresolver = \"127.0.0.1:1\"\n"
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("warn", "127.0.0.1:0")
	data := filepath.Join(dir, "data")

	// No server yet.
	jodmai(t, data, "", "reload", "--config", conf).fails(t, 1, "no jodmai server")

	sctx, stop := context.WithCancel(ctx)
	var out, logs syncBuffer
	done := make(chan int)
	go func() {
		done <- run(sctx, []string{"serve", "--config", conf, "--data", data}, strings.NewReader(""), &out, &logs)
	}()
	defer func() {
		stop()
		<-done
	}()
	waitFor(t, &out, "serving")
	if strings.Contains(logs.String(), "level=INFO") {
		t.Fatalf("info lines at log level warn:\n%s", logs.String())
	}

	// A config that does not load is not sent.
	os.WriteFile(conf, []byte("nosuchkey = 1\n"), 0o600)
	jodmai(t, data, "", "reload", "--config", conf).fails(t, 1, "nosuchkey")

	write("info", "127.0.0.1:1")
	r := jodmai(t, data, "", "reload", "--config", conf).ok(t)
	if !strings.Contains(r.stdout, "pid") {
		t.Fatalf("reload said %q", r.stdout)
	}
	waitFor(t, &logs, "configuration reloaded")
	l := logs.String()
	if !strings.Contains(l, "applied=[log_level]") || !strings.Contains(l, "needs_restart=[listen.imap]") || !strings.Contains(l, "keys=listen.imap") {
		t.Fatalf("reload log:\n%s", l)
	}
}
