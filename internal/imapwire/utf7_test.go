package imapwire

import (
	"testing"
	"unicode/utf8"
)

func TestMailboxUTF7(t *testing.T) {
	// RFC 3501 §5.1.3 examples, and more.
	for _, tc := range []struct{ utf8, utf7 string }{
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
		{"Hi Mom -☺-!", "Hi Mom -&Jjo--!"},
		{"日本語", "&ZeVnLIqe-"},
		{"Entwürfe", "Entw&APw-rfe"},
		{"R&D", "R&-D"},
		{"&", "&-"},
		{"&&", "&-&-"},
		{"", ""},
		{"INBOX", "INBOX"},
		{"𝄞", "&2DTdHg-"},            // a surrogate pair
		{"a\x00b", "a&AAA-b"},        // control characters are encoded (and refused as names later)
		{"ü&ü", "&APw-&-&APw-"},      // runs separated by "&-" are not adjacent
		{"\u00e9\u00e8", "&AOkA6A-"}, // one run for consecutive characters
		{"~", "~"},
	} {
		if got := EncodeMailboxUTF7(tc.utf8); got != tc.utf7 {
			t.Errorf("Encode(%q) = %q, want %q", tc.utf8, got, tc.utf7)
		}
		got, err := DecodeMailboxUTF7(tc.utf7)
		if err != nil || got != tc.utf8 {
			t.Errorf("Decode(%q) = %q, %v; want %q", tc.utf7, got, err, tc.utf8)
		}
	}
	for _, bad := range []string{
		"&Jjo",               // unterminated
		"&Jjo!",              // RFC 3501: not valid, no "-"
		"&U,BTFw-&ZeVnLIqe-", // RFC 3501: superfluous shift (adjacent runs)
		"&AGEAYgBj-",         // encoded printable ASCII ("abc")
		"&Jjp-",              // non-zero padding bits
		"&Jj-",               // 12 bits: not whole UTF-16 units
		"&J-",                // impossible base64 length
		"&2DQ-",              // lone high surrogate
		"&3R4-",              // lone low surrogate
		"&2DTYNA-",           // high surrogate followed by high surrogate
		"&Jj/o-",             // "/" is not modified base64
		"&Jjo=-",             // padding
		"a\x01b",             // control byte
		"a\x7fb",             // DEL
		"caf\xc3\xa9",        // raw 8-bit
		"&ZeVnLIqe",          // missing "-"
	} {
		if got, err := DecodeMailboxUTF7(bad); err == nil {
			t.Errorf("Decode(%q) = %q, want error", bad, got)
		}
	}
	// Invalid UTF-8 is encoded as U+FFFD.
	if got := EncodeMailboxUTF7("a\xffb"); got != "a&,,0-b" {
		t.Errorf("Encode(invalid) = %q", got)
	}
	// The lenient decoder used for client input passes raw UTF-8 through.
	if got, err := decodeUTF7("Entw\xc3\xbcrfe/&ZeVnLIqe-", true); err != nil || got != "Entwürfe/日本語" {
		t.Errorf("lenient: %q, %v", got, err)
	}
	if _, err := decodeUTF7("a\xffb", true); err == nil {
		t.Error("lenient decoder took invalid UTF-8")
	}
}

func checkUTF7(t *testing.T, s string) {
	enc := EncodeMailboxUTF7(s)
	for i := 0; i < len(enc); i++ {
		if enc[i] < 0x20 || enc[i] > 0x7e {
			t.Fatalf("Encode(%q) = %q: not printable ASCII", s, enc)
		}
	}
	if utf8.ValidString(s) {
		if dec, err := DecodeMailboxUTF7(enc); err != nil || dec != s {
			t.Fatalf("round trip %q -> %q -> %q, %v", s, enc, dec, err)
		}
	}
	// Decoding accepts only canonical input: what decodes re-encodes to
	// the same bytes.
	if dec, err := DecodeMailboxUTF7(s); err == nil {
		if !utf8.ValidString(dec) {
			t.Fatalf("Decode(%q) = %q: invalid UTF-8", s, dec)
		}
		if re := EncodeMailboxUTF7(dec); re != s {
			t.Fatalf("Decode(%q) = %q re-encodes to %q", s, dec, re)
		}
	}
}

func FuzzUTF7(f *testing.F) {
	for _, s := range []string{"~peter/mail/&U,BTFw-/&ZeVnLIqe-", "Hi Mom -&Jjo--!", "Entwürfe", "&-", "&2DTdHg-", "&AGE-", "a\xffb", "𝄞x&"} {
		f.Add(s)
	}
	f.Fuzz(checkUTF7)
}
