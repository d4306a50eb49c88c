package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a number of bytes, written in the configuration file as a plain
// integer ("1048576") or an integer with a unit: B, KB, MB, GB, TB (powers of
// 1000) or KiB, MiB, GiB, TiB (powers of 1024). Units are matched without
// regard to case and may be separated from the number by spaces ("50 MiB").
type Size int64

// sizeUnits lists the accepted units; String prefers them in this order.
var sizeUnits = []struct {
	name string
	mult int64
}{
	{"TiB", 1 << 40},
	{"GiB", 1 << 30},
	{"MiB", 1 << 20},
	{"KiB", 1 << 10},
	{"TB", 1e12},
	{"GB", 1e9},
	{"MB", 1e6},
	{"KB", 1e3},
	{"B", 1},
}

// ParseSize parses a size such as "50MiB", "10MB" or "1048576".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q: must be a whole number of bytes, optionally followed by a unit such as MiB", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: number too large", s)
	}
	unit := strings.TrimSpace(t[i:])
	if unit == "" {
		return Size(n), nil
	}
	for _, u := range sizeUnits {
		if strings.EqualFold(unit, u.name) {
			if n > math.MaxInt64/u.mult {
				return 0, fmt.Errorf("size %q: too large", s)
			}
			return Size(n * u.mult), nil
		}
	}
	return 0, fmt.Errorf("size %q: unknown unit %q (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, unit)
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseSize.
func (s *Size) UnmarshalText(text []byte) error {
	v, err := ParseSize(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalText implements encoding.TextMarshaler with String; the result
// parses back to the same value.
func (s Size) MarshalText() ([]byte, error) {
	return []byte(s.String()), nil
}

// String formats s with the unit that divides it exactly and gives the
// smallest number, binary units winning ties ("50MiB", "10MB"), or as a
// plain number of bytes.
func (s Size) String() string {
	n, unit := int64(s), ""
	if s > 0 {
		for _, u := range sizeUnits[:len(sizeUnits)-1] {
			if q := int64(s) / u.mult; int64(s)%u.mult == 0 && q < n {
				n, unit = q, u.name
			}
		}
	}
	return strconv.FormatInt(n, 10) + unit
}
