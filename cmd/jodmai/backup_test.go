package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/testenv"
)

func TestBackupRestoreCommands(t *testing.T) {
	ctx := context.Background()
	env := testenv.Start(t)
	env.AddUser(t, "alice@example.org", "alice-secret-pw-1")
	env.Deliver(t, "alice@example.org", []byte("Subject: hi\r\n\r\nhello\r\n"))

	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"backup", "--data", env.DataDir, "--name", "nightly", dir}, nil, &out, &errOut); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "backup complete") {
		t.Errorf("backup output lacks the summary: %q", out.String())
	}
	bdir := filepath.Join(dir, "nightly")
	if _, err := os.Stat(filepath.Join(bdir, "manifest.json")); err != nil {
		t.Fatal(err)
	}

	// The running server's dir is refused, even with --force.
	errOut.Reset()
	if code := run(ctx, []string{"restore", "--data", env.DataDir, "--force", bdir}, nil, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "in use") {
		t.Fatalf("restore into a running server's dir: exit %d: %s", code, errOut.String())
	}
	restored := filepath.Join(t.TempDir(), "data")
	out.Reset()
	if code := run(ctx, []string{"restore", "--data", restored, bdir}, nil, &out, &errOut); code != 0 {
		t.Fatalf("restore: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "integrity checks passed") {
		t.Errorf("restore output: %q", out.String())
	}
	env2 := testenv.StartWith(t, testenv.Options{DataDir: restored})
	if got := env2.Inbox(t, "alice@example.org"); len(got) != 1 || !bytes.Contains(got[0].Body, []byte("hello")) {
		t.Fatalf("restored inbox: %d messages", len(got))
	}
}
