package crash

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildJodmai builds cmd/jodmai once, without the race detector even when
// the tests run with it (the server is a separate process; a
// race-instrumented one would only be slower).
func buildJodmai(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goTool); err != nil {
			t.Skip("no go command to build jodmai with")
		}
	}
	out, err := exec.Command(goTool, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(t.TempDir(), "jodmai")
	cmd := exec.Command(goTool, "build", "-o", bin, "./cmd/jodmai")
	cmd.Dir = root
	var env []string
	for _, kv := range os.Environ() {
		if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			var keep []string
			for _, f := range strings.Fields(v) {
				if f != "-race" {
					keep = append(keep, f)
				}
			}
			kv = "GOFLAGS=" + strings.Join(keep, " ")
		}
		env = append(env, kv)
	}
	cmd.Env = env
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/jodmai: %v\n%s", err, out)
	}
	t.Logf("built jodmai in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// instance is a jodmai data directory with its config, and the server
// process running on it (if any).
type instance struct {
	t       *testing.T
	bin     string
	dir     string
	data    string
	config  string
	logPath string

	smtpAddr, pop3Addr string

	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{}    // closed when cmd has exited
	lastState *os.ProcessState // of the last server that exited
}

func newInstance(t *testing.T, bin string) *instance {
	dir := t.TempDir()
	in := &instance{t: t, bin: bin, dir: dir, data: filepath.Join(dir, "data"), config: filepath.Join(dir, "jodmai.toml"), logPath: filepath.Join(dir, "server.log")}
	in.pickPorts()
	t.Cleanup(in.kill)
	return in
}

// pickPorts chooses listening ports and writes the config: SMTP (MX) and
// POP3 on 127.0.0.1, everything else off.
func (in *instance) pickPorts() {
	in.smtpAddr, in.pop3Addr = freePort(in.t), freePort(in.t)
	cfg := fmt.Sprintf(`hostname = "mail.example.org"
data = %q
log_level = "info"

[listen]
smtp = %q
submission = ""
submissions = ""
pop3 = %q
pop3s = ""
imap = ""
imaps = ""
`, in.data, in.smtpAddr, in.pop3Addr)
	if err := os.WriteFile(in.config, []byte(cfg), 0o600); err != nil {
		in.t.Fatal(err)
	}
}

// run runs an admin command and returns its exit code and output.
func (in *instance) run(stdin string, args ...string) (int, string) {
	in.t.Helper()
	// Flags go right after the command words, before its arguments.
	words := 1
	if len(args) > 1 && (args[0] == "user" || args[0] == "domain" || args[0] == "alias") {
		words = 2
	}
	full := append(append(append([]string{}, args[:words]...), "--config", in.config), args[words:]...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, in.bin, full...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	default:
		in.t.Fatalf("jodmai %s: %v", strings.Join(full, " "), err)
		return -1, ""
	}
}

// mustRun runs an admin command that must succeed.
func (in *instance) mustRun(stdin string, args ...string) string {
	in.t.Helper()
	code, out := in.run(stdin, args...)
	if code != 0 {
		in.t.Fatalf("jodmai %s: exit %d: %s", strings.Join(args, " "), code, out)
	}
	return out
}

// start starts `jodmai serve`. With wait, it returns once the server says
// it is serving (every listener open, start-up sweep done); a server that
// exits first (a port taken meanwhile) is retried on new ports.
func (in *instance) start(wait bool) {
	in.t.Helper()
	for attempt := 1; ; attempt++ {
		err := in.startOnce(wait)
		if err == nil {
			return
		}
		if attempt == 3 {
			in.t.Fatalf("jodmai serve: %v\n%s", err, in.logTail())
		}
		in.t.Logf("jodmai serve did not start (%v); retrying on new ports", err)
		in.pickPorts()
	}
}

func (in *instance) startOnce(wait bool) error {
	logf, err := os.OpenFile(in.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(in.bin, "serve", "--config", in.config)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.Contains(sc.Text(), " serving ") {
				close(ready)
				signalled = true
			}
		}
	}()
	go func() {
		cmd.Wait()
		close(done)
	}()
	in.mu.Lock()
	in.cmd, in.done = cmd, done
	in.mu.Unlock()
	if !wait {
		return nil
	}
	select {
	case <-ready:
		return nil
	case <-done:
		return fmt.Errorf("exited: %v", cmd.ProcessState)
	case <-time.After(60 * time.Second):
		in.kill()
		return errors.New("not serving after 60s")
	}
}

// kill SIGKILLs the server and waits until it is gone.
func (in *instance) kill() {
	in.signal(syscall.SIGKILL)
}

// stop asks the server to shut down (SIGTERM) and waits; it fails the
// test if the server does not exit in time or exits with an error.
func (in *instance) stop() {
	in.t.Helper()
	if !in.signal(syscall.SIGTERM) {
		in.t.Errorf("jodmai serve did not stop on SIGTERM within a minute; killed")
		return
	}
	in.mu.Lock()
	st := in.lastState
	in.mu.Unlock()
	if st != nil && !st.Success() {
		in.t.Errorf("jodmai serve exited with %v after SIGTERM\n%s", st, in.logTail())
	}
}

// signal sends sig to the running server and waits for it to exit (a
// minute at most, then SIGKILL). It reports whether the process exited
// within the minute.
func (in *instance) signal(sig syscall.Signal) bool {
	in.mu.Lock()
	cmd, done := in.cmd, in.done
	in.mu.Unlock()
	if cmd == nil {
		return true
	}
	cmd.Process.Signal(sig)
	ok := true
	select {
	case <-done:
	case <-time.After(time.Minute):
		ok = false
		cmd.Process.Kill()
		<-done
	}
	in.mu.Lock()
	if in.cmd == cmd {
		in.cmd, in.done = nil, nil
	}
	in.lastState = cmd.ProcessState
	in.mu.Unlock()
	return ok
}

// logTail returns the end of the server's log, for failure messages.
func (in *instance) logTail() string {
	b, _ := os.ReadFile(in.logPath)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}
