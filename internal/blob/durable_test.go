package blob

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// recordSyncs replaces syncDir for the test: it records every fsynced
// directory and runs hook (if set) before the real fsync.
func recordSyncs(t *testing.T, hook func(path string)) func() []string {
	t.Helper()
	var mu sync.Mutex
	var synced []string
	orig := syncDir
	syncDir = func(path string) error {
		if hook != nil {
			hook(path)
		}
		mu.Lock()
		synced = append(synced, path)
		mu.Unlock()
		return orig(path)
	}
	t.Cleanup(func() { syncDir = orig })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), synced...)
	}
}

// TestLinkWaitsForShardEntry: a body linked into a shard that another
// goroutine has just created must not be reported durable before the
// shard's own name is: Link returns only after the Dir was fsynced.
func TestLinkWaitsForShardEntry(t *testing.T) {
	root := t.TempDir()
	tmp := filepath.Join(root, "tmp")
	os.Mkdir(tmp, 0o700)
	d, err := NewDir(filepath.Join(root, "msg"))
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	recordSyncs(t, func(path string) {
		if path == d.path {
			once.Do(func() {
				close(entered)
				<-release // the first fsync of msg/ is slow
			})
		}
	})
	first := make(chan error, 1)
	go func() { first <- d.Link(finish(t, tmp, []byte("one")), "aaaaaaaaaaaaaaaaaaaa") }()
	<-entered // the shard exists now; its name is being fsynced
	second := make(chan error, 1)
	go func() { second <- d.Link(finish(t, tmp, []byte("two")), "aabbbbbbbbbbbbbbbbbb") }()
	select {
	case err := <-second:
		t.Fatalf("Link into a shard whose name was not yet durable returned (%v) before the fsync of %s", err, d.path)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	for _, c := range []chan error{first, second} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
}

// TestShardOfDeadProcessSynced: a shard that exists when this process
// first uses it (made by a process that may have died before fsyncing
// its name) is fsynced into the Dir before a body is linked into it, and
// only once.
func TestShardOfDeadProcessSynced(t *testing.T) {
	root := t.TempDir()
	tmp := filepath.Join(root, "tmp")
	os.Mkdir(tmp, 0o700)
	msg := filepath.Join(root, "msg")
	if err := os.MkdirAll(filepath.Join(msg, "cc"), 0o700); err != nil {
		t.Fatal(err)
	}
	d, err := NewDir(msg)
	if err != nil {
		t.Fatal(err)
	}
	synced := recordSyncs(t, nil)
	for i, id := range []string{"cccccccccccccccccccc", "ccdddddddddddddddddd"} {
		if err := d.Link(finish(t, tmp, []byte{byte(i)}), id); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, p := range synced() {
		if p == msg {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the Dir was fsynced %d times for an existing shard, want once: %q", n, synced())
	}
}
