// Package dist holds the files for installing jodmai (the systemd unit);
// its test checks them.
package dist

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit: systemd-analyze verify accepts jodmai.service without a
// warning (it only warns about unknown keys), and the unit keeps its
// hardening.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile("jodmai.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"User=jodmai", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/jodmai", "PrivateTmp=yes",
		"ExecReload=/bin/kill -HUP $MAINPID", "ExecStart=/usr/local/bin/jodmai serve --config /etc/jodmai/jodmai.toml --data /var/lib/jodmai",
	} {
		if !bytes.Contains(unit, []byte("\n"+want)) {
			t.Errorf("unit lacks %q", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit is not verified")
	}
	// verify checks that ExecStart's program exists: point it at one
	// that does.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "jodmai.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/jodmai"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "jodmai.service") {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
