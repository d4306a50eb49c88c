package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// knownKeys maps every key the format defines ("listen", "listen.smtp", ...)
// to its Go type, from the toml tags of Config.
func knownKeys() map[string]reflect.Type {
	known := map[string]reflect.Type{}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			key := prefix + name
			known[key] = f.Type
			if f.Type.Kind() == reflect.Struct && !isLeaf(f.Type) {
				walk(key+".", f.Type)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	return known
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// isLeaf reports whether values of t are single TOML values, not tables.
func isLeaf(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(textUnmarshaler) || t == reflect.TypeFor[time.Duration]()
}

// checkKeys rejects keys the format does not define and durations written as
// bare integers. md is from decoding data into a Config.
//
// BurntSushi/toml matches struct fields without regard to case, so walking
// md.Keys against the exact known names (rather than relying on
// md.Undecoded alone) also rejects "Hostname" or "[LISTEN]".
func checkKeys(data []byte, md *toml.MetaData) error {
	known := knownKeys()
	var errs []error
	var reported []toml.Key
	keys := md.Keys()
	for i, k := range keys {
		t, ok := known[k.String()]
		if !ok {
			if hasPrefix(k, reported) {
				continue // inside an unknown table already reported
			}
			reported = append(reported, k)
			errs = append(errs, atLine(data, keys[i:], fmt.Errorf("unknown key %q", k.String())))
			continue
		}
		if t == reflect.TypeFor[time.Duration]() && md.Type(k...) == "Integer" {
			// toml would take an integer as nanoseconds: "5" would be 5ns.
			errs = append(errs, atLine(data, keys[i:i+1],
				fmt.Errorf("%s: a duration needs a unit; write a string such as \"5m\" or \"90s\"", k.String())))
		}
	}
	return errors.Join(errs...)
}

// hasPrefix reports whether k equals or lies under one of the keys in ps.
func hasPrefix(k toml.Key, ps []toml.Key) bool {
	for _, p := range ps {
		if len(p) <= len(k) && slices.Equal(k[:len(p)], p) {
			return true
		}
	}
	return false
}

// atLine prefixes err with the line of keys[0], or when that key has no
// position of its own (a table implied by a dotted key) the line of the
// first key under it.
func atLine(data []byte, keys []toml.Key, err error) error {
	for _, k := range keys {
		if !hasPrefix(k, keys[:1]) {
			break
		}
		if line := keyLine(data, k); line > 0 {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	return err
}

// lineProbe fails to decode anything. toml reports an Unmarshaler's failure
// as a ParseError carrying the position of the key being decoded, which is
// the only public way to learn a key's line.
type lineProbe struct{}

var errProbe = errors.New("probe")

// UnmarshalTOML implements toml.Unmarshaler by failing.
func (lineProbe) UnmarshalTOML(any) error { return errProbe }

// keyLine returns the line where key is defined in data, or 0 if unknown.
func keyLine(data []byte, key toml.Key) int {
	var table map[string]toml.Primitive
	md, err := toml.Decode(string(data), &table)
	if err != nil {
		return 0
	}
	for i, name := range key {
		p, ok := table[name]
		if !ok {
			return 0
		}
		if i == len(key)-1 {
			var pe toml.ParseError
			if errors.As(md.PrimitiveDecode(p, lineProbe{}), &pe) {
				return pe.Position.Line
			}
			return 0
		}
		var next map[string]toml.Primitive
		if err := md.PrimitiveDecode(p, &next); err != nil {
			return 0 // not a table: an array of tables, say
		}
		table = next
	}
	return 0
}
