package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestDocumentedDefaults holds the two places that spell out every key
// with its default, the README's configuration block and this package's
// doc comment, to Default(): each must parse to the defaults (as root,
// where the ports are the standard ones) and name every key.
func TestDocumentedDefaults(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("config.go")
	if err != nil {
		t.Fatal(err)
	}
	blocks := []struct{ name, text string }{
		{"README.md", readmeBlock(t, string(readme))},
		{"config.go package doc", docBlock(t, string(src))},
	}
	var want []string
	for k, typ := range knownKeys() {
		if typ.Kind() != reflect.Struct || isLeaf(typ) {
			want = append(want, k)
		}
	}
	slices.Sort(want)
	for _, b := range blocks {
		var m map[string]any
		md, err := toml.Decode(b.text, &m)
		if err != nil {
			t.Errorf("%s: %v", b.name, err)
			continue
		}
		var keys []string
		for _, k := range md.Keys() {
			if _, isTable := m[k.String()].(map[string]any); !isTable && len(k) > 0 {
				keys = append(keys, k.String())
			}
		}
		keys = slices.DeleteFunc(keys, func(k string) bool { return !slices.Contains(want, k) && strings.Count(k, ".") == 0 && isTableName(k) })
		slices.Sort(keys)
		if !slices.Equal(keys, want) {
			t.Errorf("%s names keys\n%v\nwant every key\n%v", b.name, keys, want)
		}
		o := Options{Euid: func() int { return 0 }, Hostname: func() (string, error) { return "mail.example.org", nil }}
		got, err := o.Parse([]byte(b.text))
		if err != nil {
			t.Errorf("%s: %v", b.name, err)
			continue
		}
		def := o.Default()
		if filepath.Clean(got.Data) == filepath.Clean(def.Data) {
			got.Data = def.Data
		}
		if !reflect.DeepEqual(got, def) {
			t.Errorf("%s parses to\n%+v\nwant the defaults\n%+v", b.name, *got, *def)
		}
	}
}

func isTableName(k string) bool {
	for name, typ := range knownKeys() {
		if name == k && typ.Kind() == reflect.Struct && !isLeaf(typ) {
			return true
		}
	}
	return false
}

// readmeBlock is the ```toml block under the README's "## Configuration".
func readmeBlock(t *testing.T, readme string) string {
	_, rest, ok := strings.Cut(readme, "\n## Configuration")
	if !ok {
		t.Fatal("README.md has no Configuration section")
	}
	_, rest, ok = strings.Cut(rest, "```toml\n")
	if !ok {
		t.Fatal("README.md's Configuration section has no toml block")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("README.md's toml block does not end")
	}
	return block
}

// docBlock is the indented TOML of the package doc comment.
func docBlock(t *testing.T, src string) string {
	_, rest, ok := strings.Cut(src, "with every default spelled out")
	if !ok {
		t.Fatal("config.go's package doc has no defaults block")
	}
	var b strings.Builder
	started := false
	for _, line := range strings.Split(rest, "\n") {
		switch {
		case strings.HasPrefix(line, "//\t"):
			started = true
			b.WriteString(strings.TrimPrefix(line, "//\t") + "\n")
		case line == "//" && started:
			b.WriteString("\n")
		case started:
			return b.String()
		}
	}
	t.Fatal("config.go's defaults block does not end")
	return ""
}
