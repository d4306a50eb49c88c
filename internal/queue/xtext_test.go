package queue

import (
	"testing"
)

func TestXtext(t *testing.T) {
	for _, tc := range []struct{ raw, enc string }{
		{"bob@example.org", "bob@example.org"},
		{"a+b=c d", "a+2Bb+3Dc+20d"},
		{"", ""},
	} {
		if got := EncodeXtext(tc.raw); got != tc.enc {
			t.Errorf("EncodeXtext(%q) = %q, want %q", tc.raw, got, tc.enc)
		}
		if got, err := DecodeXtext(tc.enc); err != nil || got != tc.raw {
			t.Errorf("DecodeXtext(%q) = %q, %v", tc.enc, got, err)
		}
	}
	for _, bad := range []string{"a+", "a+2", "a+ZZ", "a b", "a=b", "é"} {
		if got, err := DecodeXtext(bad); err == nil {
			t.Errorf("DecodeXtext(%q) = %q, want an error", bad, got)
		}
	}
}

func TestParseORcpt(t *testing.T) {
	for _, tc := range []struct {
		in, typ, addr string
		ok            bool
	}{
		{"rfc822;bob@example.org", "rfc822", "bob@example.org", true},
		{"RFC822;Bob+2Bx@example.org", "rfc822", "Bob+x@example.org", true},
		{"utf-8;j\\x{F6}rg@example.org", "utf-8", "jörg@example.org", true},
		{"utf-8;jörg@example.org", "utf-8", "jörg@example.org", true},
		{"x-other;thing", "x-other", "thing", true},
		{"rfc822;a+0D+0Ab@x", "", "", false},
		{"rfc822;a+C3+B6@x", "", "", false},
		{"utf-8;a\\x{0A}b", "", "", false},
		{"utf-8;a\\x{}b", "", "", false},
		{"utf-8;a\\b", "", "", false},
		{"nosemicolon", "", "", false},
		{";a@b", "", "", false},
		{"rfc822;", "", "", false},
		{"bad type;a@b", "", "", false},
	} {
		typ, addr, err := ParseORcpt(tc.in)
		if (err == nil) != tc.ok || typ != tc.typ || addr != tc.addr {
			t.Errorf("ParseORcpt(%q) = %q, %q, %v", tc.in, typ, addr, err)
		}
	}
	if got := FormatORcpt("UTF-8", "jörg@example.org"); got != `utf-8;j\x{F6}rg@example.org` {
		t.Errorf("FormatORcpt utf-8 = %q", got)
	}
	if got := FormatORcpt("RFC822", "a+b@x"); got != "rfc822;a+2Bb@x" {
		t.Errorf("FormatORcpt rfc822 = %q", got)
	}
}

func FuzzXtext(f *testing.F) {
	for _, s := range []string{"bob@example.org", "a+2Bb", "+", "+zz", "\x00\xff", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, err := DecodeXtext(EncodeXtext(s)); err != nil || got != s {
			t.Fatalf("round trip of %q: %q, %v", s, got, err)
		}
		dec, err := DecodeXtext(s)
		if err != nil {
			return
		}
		if again, err := DecodeXtext(EncodeXtext(dec)); err != nil || again != dec {
			t.Fatalf("re-encode of %q: %q, %v", dec, again, err)
		}
	})
}

func FuzzParseORcpt(f *testing.F) {
	for _, s := range []string{"rfc822;bob@example.org", "utf-8;j\\x{F6}rg@x", "utf-8;\\x{110000}", "rfc822;+41", ";", "a;b;c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		typ, addr, err := ParseORcpt(s)
		if err != nil {
			return
		}
		for i := 0; i < len(addr); i++ {
			if addr[i] < 0x20 || addr[i] == 0x7f {
				t.Fatalf("ParseORcpt(%q) let a control character through: %q", s, addr)
			}
		}
		if typ != "rfc822" && typ != "utf-8" {
			return
		}
		typ2, addr2, err := ParseORcpt(FormatORcpt(typ, addr))
		if err != nil || typ2 != typ || addr2 != addr {
			t.Fatalf("round trip of %q (%q %q): %q %q %v", s, typ, addr, typ2, addr2, err)
		}
	})
}
