package mailfile

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseInfo(t *testing.T) {
	tests := []struct {
		name  string
		flags Flags
		ok    bool
	}{
		{"1700000000.M1P2.host:2,", 0, true},
		{"1700000000.M1P2.host:2,S", Seen, true},
		{"1700000000.M1P2.host:2,DFPRST", Draft | Flagged | Passed | Answered | Seen | Deleted, true},
		{"1700000000.M1P2.host:2,Sab", Seen, true},
		{"1700000000.M1P2.host!2,RS", Answered | Seen, true},
		{"1700000000.M1P2.host,S=123:2,T", Deleted, true},
		{"1700000000.M1P2.host", 0, false},
		{"1700000000.M1P2.host:1,S", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		f, ok := ParseInfo(tc.name)
		if f != tc.flags || ok != tc.ok {
			t.Errorf("ParseInfo(%q) = %v, %v; want %v, %v", tc.name, f, ok, tc.flags, tc.ok)
		}
	}
}

func FuzzParseInfo(f *testing.F) {
	f.Add("1.M1.h:2,DFPRST")
	f.Add("x!2,")
	f.Add(":2,:2,S")
	f.Fuzz(func(t *testing.T, name string) {
		flags, ok := ParseInfo(name)
		if !ok && flags != 0 {
			t.Fatalf("flags %v without info", flags)
		}
		// The letters round-trip.
		if back, ok := ParseInfo("x:2," + flags.maildirLetters()); !ok || back != flags {
			t.Fatalf("%v -> %q -> %v", flags, flags.maildirLetters(), back)
		}
		if letters := flags.maildirLetters(); !slices.IsSorted([]byte(letters)) {
			t.Fatalf("letters %q not in ASCII order", letters)
		}
	})
}

func TestMaildirWriteList(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Mail")
	w, err := NewMaildirWriter(root)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	bodies := []string{"a\n", "b\n", "c"}
	flags := []Flags{Seen | Answered, 0, Draft | Flagged | Passed | Deleted}
	// Written newest first: the list must come back by date.
	for i := len(bodies) - 1; i >= 0; i-- {
		p, n, err := w.Write(strings.NewReader(bodies[i]), flags[i], base.Add(time.Duration(i)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(len(bodies[i])) || filepath.Dir(p) != filepath.Join(root, "cur") || !strings.HasSuffix(p, ":2,"+flags[i].maildirLetters()) {
			t.Errorf("wrote %s (%d bytes)", p, n)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) != 0 {
		t.Errorf("%d files left in tmp/", len(ents))
	}
	// A message in new/ without info, and a dot file that is skipped.
	newPath := filepath.Join(root, "new", "1800000000.M1P1.other")
	os.WriteFile(newPath, []byte("d\n"), 0o600)
	os.WriteFile(filepath.Join(root, "cur", ".hidden"), []byte("x"), 0o600)
	ents, err := ListMaildir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 4 {
		t.Fatalf("listed %d messages", len(ents))
	}
	for i, e := range ents[:3] {
		b, _ := os.ReadFile(e.Path)
		if string(b) != bodies[i] || e.Flags != flags[i] || !e.Date.Equal(base.Add(time.Duration(i)*time.Hour)) || e.Size != int64(len(b)) {
			t.Errorf("entry %d: %+v, body %q", i, e, b)
		}
	}
	if ents[3].Path != newPath || ents[3].Flags != 0 {
		t.Errorf("last entry %+v", ents[3])
	}
	if _, err := ListMaildir(t.TempDir()); err == nil {
		t.Error("listing a non-Maildir succeeded")
	}
}

func TestMaildirFolders(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"cur", ".Sent/cur", ".Foo.Bar/new", ".Foo/cur", ".NotAFolder", "plain/cur"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := MaildirFolders(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, strings.Join(f.Levels, "/")+"="+f.Dir)
	}
	want := []string{"=" + root, "Foo=" + root + "/.Foo", "Foo/Bar=" + root + "/.Foo.Bar", "Sent=" + root + "/.Sent"}
	if !slices.Equal(got, want) {
		t.Errorf("folders %q, want %q", got, want)
	}
	for _, tc := range []struct {
		levels []string
		want   string
	}{{nil, root}, {[]string{"Sent"}, root + "/.Sent"}, {[]string{"Foo", "Bar"}, root + "/.Foo.Bar"}, {[]string{"a.b"}, ""}, {[]string{""}, ""}} {
		got, err := FolderDir(root, tc.levels)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("FolderDir(%q) = %q, %v", tc.levels, got, err)
		}
	}
	os.MkdirAll(filepath.Join(root, ".a..b", "cur"), 0o700)
	if _, err := MaildirFolders(root); err == nil {
		t.Error("a folder with an empty level was accepted")
	}
}

func TestMaildirWriterUniqueNames(t *testing.T) {
	root := t.TempDir()
	w, err := NewMaildirWriter(root)
	if err != nil {
		t.Fatal(err)
	}
	d := time.Unix(1700000000, 0)
	seen := map[string]bool{}
	for i := range 50 {
		p, _, err := w.Write(bytes.NewReader([]byte{byte(i)}), Seen, d)
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("name %s used twice", p)
		}
		seen[p] = true
	}
	w.Close()
	ents, _ := os.ReadDir(filepath.Join(root, "cur"))
	if len(ents) != 50 {
		t.Errorf("%d files in cur/", len(ents))
	}
}
