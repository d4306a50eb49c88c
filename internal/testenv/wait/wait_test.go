package wait

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestForHolds(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			time.Sleep(5 * time.Millisecond)
			n.Add(1)
		}
	}()
	For(t, 10*time.Second, "three increments", func() bool { return n.Load() == 3 })
}

func TestForAtOnce(t *testing.T) {
	calls := 0
	For(t, 0, "nothing", func() bool { calls++; return true })
	if calls != 1 {
		t.Errorf("cond called %d times, want 1", calls)
	}
}

// fakeT records a Fatalf and ends the goroutine, as testing.T does.
type fakeT struct {
	testing.TB
	msg string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

func TestForTimesOut(t *testing.T) {
	f := &fakeT{}
	func() {
		defer func() {
			if v := recover(); v != f {
				t.Fatalf("recovered %v, want the Fatalf", v)
			}
		}()
		For(f, 30*time.Millisecond, "a condition that never holds", func() bool { return false })
	}()
	if want := "timed out after 30ms waiting for a condition that never holds"; !strings.Contains(f.msg, want) {
		t.Errorf("message %q, want %q", f.msg, want)
	}
}
