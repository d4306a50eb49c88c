// Package proc runs jodmai as a separate process for tests that must kill
// it (crash tests) or run several servers side by side (the relay test):
// it builds cmd/jodmai once per test, writes a config, runs admin commands
// and starts, stops and SIGKILLs `jodmai serve`.
//
// Everything listens on loopback addresses only.
package proc

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

// Build builds cmd/jodmai into a temporary directory and returns its path.
// It builds without the race detector even when the tests run with it:
// the server is a separate process, and a race-instrumented one would only
// be slower. It skips the test when there is no go command.
func Build(t testing.TB) string {
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

// FreePort returns a TCP port on ip (a loopback address) that was free a
// moment ago, as "ip:port".
func FreePort(t testing.TB, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Options describe an instance.
type Options struct {
	// Hostname is the server's hostname; default "mail.example.org".
	Hostname string
	// IP is the loopback address every listener uses; default 127.0.0.1.
	IP string
	// Services to listen on, among smtp, submission, submissions, pop3,
	// pop3s, imap, imaps; default smtp and pop3. Each gets a free port,
	// except those in Ports.
	Services []string
	// Ports fixes the port of some services (the relay test runs two
	// servers' SMTP on one port number at two addresses).
	Ports map[string]int
	// Extra is TOML appended to the config after [listen]: whole
	// sections such as [dns] or [queue].
	Extra string
}

// Instance is a jodmai data directory with its config, and the server
// process running on it (if any).
type Instance struct {
	t    testing.TB
	bin  string
	opts Options

	// Dir holds the config, the data directory and the log.
	Dir string
	// Data is the data directory.
	Data string
	// Config is the config file's path.
	Config string
	// LogPath is where the server's stderr goes.
	LogPath string

	mu        sync.Mutex
	addrs     map[string]string
	cmd       *exec.Cmd
	done      chan struct{}    // closed when cmd has exited
	lastState *os.ProcessState // of the last server that exited
}

// New creates an instance running bin; the server is not started. A
// cleanup kills it.
func New(t testing.TB, bin string, opts Options) *Instance {
	if opts.Hostname == "" {
		opts.Hostname = "mail.example.org"
	}
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if len(opts.Services) == 0 {
		opts.Services = []string{"smtp", "pop3"}
	}
	dir := t.TempDir()
	in := &Instance{t: t, bin: bin, opts: opts, Dir: dir, Data: filepath.Join(dir, "data"),
		Config: filepath.Join(dir, "jodmai.toml"), LogPath: filepath.Join(dir, "server.log")}
	in.pickPorts()
	t.Cleanup(in.Kill)
	return in
}

// Addr returns the "ip:port" of a service, or "" when it is not enabled.
func (in *Instance) Addr(service string) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.addrs[service]
}

var allServices = []string{"smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps", "http", "https", "metrics"}

// pickPorts chooses listening ports and writes the config.
func (in *Instance) pickPorts() {
	addrs := map[string]string{}
	for _, s := range in.opts.Services {
		if p, ok := in.opts.Ports[s]; ok {
			addrs[s] = net.JoinHostPort(in.opts.IP, fmt.Sprint(p))
		} else {
			addrs[s] = FreePort(in.t, in.opts.IP)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "hostname = %q\ndata = %q\nlog_level = \"info\"\n\n[listen]\n", in.opts.Hostname, in.Data)
	for _, s := range allServices {
		fmt.Fprintf(&b, "%s = %q\n", s, addrs[s])
	}
	b.WriteString("\n" + in.opts.Extra + "\n")
	if !strings.Contains(in.opts.Extra, "[dns]") {
		// Loopback only: no DNS question leaves the machine (a
		// closed loopback port answers at once).
		b.WriteString("[dns]\nresolver = \"127.0.0.1:1\"\n")
	}
	if err := os.WriteFile(in.Config, []byte(b.String()), 0o600); err != nil {
		in.t.Fatal(err)
	}
	in.mu.Lock()
	in.addrs = addrs
	in.mu.Unlock()
}

// twoWordCommands are the commands whose second word is a subcommand:
// flags go after both words.
var twoWordCommands = map[string]bool{"user": true, "domain": true, "alias": true, "queue": true, "dkim": true}

// Run runs an admin command with --config added and returns its exit code
// and output (stdout and stderr).
func (in *Instance) Run(stdin string, args ...string) (int, string) {
	in.t.Helper()
	// Flags go right after the command words, before its arguments.
	words := 1
	if len(args) > 1 && twoWordCommands[args[0]] {
		words = 2
	}
	if words > len(args) {
		words = len(args)
	}
	full := append(append(append([]string{}, args[:words]...), "--config", in.Config), args[words:]...)
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

// MustRun runs an admin command that must succeed and returns its output.
func (in *Instance) MustRun(stdin string, args ...string) string {
	in.t.Helper()
	code, out := in.Run(stdin, args...)
	if code != 0 {
		in.t.Fatalf("jodmai %s: exit %d: %s", strings.Join(args, " "), code, out)
	}
	return out
}

// Start starts `jodmai serve`. With wait, it returns once the server says
// it is serving (every listener open, start-up sweep done); a server that
// exits first (a port taken meanwhile) is retried on new ports, unless
// its ports are fixed by Options.Ports.
func (in *Instance) Start(wait bool) {
	in.t.Helper()
	for attempt := 1; ; attempt++ {
		err := in.startOnce(wait)
		if err == nil {
			return
		}
		if attempt == 3 || len(in.opts.Ports) > 0 {
			in.t.Fatalf("jodmai serve: %v\n%s", err, in.LogTail())
		}
		in.t.Logf("jodmai serve did not start (%v); retrying on new ports", err)
		in.pickPorts()
	}
}

func (in *Instance) startOnce(wait bool) error {
	logf, err := os.OpenFile(in.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(in.bin, "serve", "--config", in.Config)
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
		in.Kill()
		return errors.New("not serving after 60s")
	}
}

// Kill SIGKILLs the server and waits until it is gone.
func (in *Instance) Kill() {
	in.Signal(syscall.SIGKILL)
}

// Stop asks the server to shut down (SIGTERM) and waits; it fails the
// test if the server does not exit in time or exits with an error.
func (in *Instance) Stop() {
	in.t.Helper()
	if !in.Signal(syscall.SIGTERM) {
		in.t.Errorf("jodmai serve did not stop on SIGTERM within a minute; killed")
		return
	}
	in.mu.Lock()
	st := in.lastState
	in.mu.Unlock()
	if st != nil && !st.Success() {
		in.t.Errorf("jodmai serve exited with %v after SIGTERM\n%s", st, in.LogTail())
	}
}

// Signal sends sig to the running server and waits for it to exit (a
// minute at most, then SIGKILL). It reports whether the process exited
// within the minute.
func (in *Instance) Signal(sig syscall.Signal) bool {
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

// LogTail returns the end of the server's log, for failure messages.
func (in *Instance) LogTail() string {
	b, _ := os.ReadFile(in.LogPath)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}
