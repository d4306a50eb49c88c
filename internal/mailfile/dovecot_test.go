package mailfile

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseDovecotUIDList(t *testing.T) {
	data := "3 V1275660208 N25022 G3085f01b7f11094c501100008c4a11c1\n" +
		"7 :1655390418.M100238P743770.host,S=3734\n" +
		"12 W3800 P0badcafe O2 :1655390419.M1P2.host,S=10,W=12\n" +
		"13 GXYZ :1655390420.M1P3.host\n"
	l, err := ParseDovecotUIDList([]byte(data), "uidlist")
	if err != nil {
		t.Fatal(err)
	}
	if l.UIDValidity != 1275660208 || l.NextUID != 25022 || l.GUID != "3085f01b7f11094c501100008c4a11c1" || len(l.Records) != 3 {
		t.Fatalf("%+v", l)
	}
	r, ok := l.Lookup("1655390419.M1P2.host,S=10,W=12:2,FSab")
	if !ok || r.UID != 12 || r.Ext['P'] != "0badcafe" || r.Ext['W'] != "3800" || r.Ext['O'] != "2" {
		t.Errorf("lookup: %+v %v", r, ok)
	}
	if _, ok := l.Lookup("1655390418.M100238P743770.host,S=3734"); !ok {
		t.Errorf("lookup of a name without info failed")
	}
	for _, tc := range []struct{ format, want string }{
		{"%08Xu%08Xv", "0000000c4c0907b0"},
		{"%u-%v", "12-1275660208"},
		{"%f", "1655390419.M1P2.host,S=10,W=12"},
		{"%g", "1655390419.M1P2.host,S=10,W=12"},
		{"100%%", "100%"},
	} {
		got, err := DovecotUIDL(tc.format, r.UID, l.UIDValidity, r)
		if err != nil || got != tc.want {
			t.Errorf("DovecotUIDL(%q) = %q, %v; want %q", tc.format, got, err, tc.want)
		}
	}
	if _, err := DovecotUIDL("%m", 1, 1, r); err == nil {
		t.Errorf("%%m accepted")
	}
	r13, _ := l.Lookup("1655390420.M1P3.host")
	if g, _ := DovecotUIDL("%g", 13, 1, r13); g != "XYZ" {
		t.Errorf("%%g with a G field: %q", g)
	}

	v1, err := ParseDovecotUIDList([]byte("1 1000 5\n3 abc:2,S\n"), "v1")
	if err != nil || v1.UIDValidity != 1000 || v1.NextUID != 5 || v1.Records[0].Base != "abc" {
		t.Errorf("version 1: %+v %v", v1, err)
	}
	for _, bad := range []string{"", "3 N5\n", "9 V1 N2\n", "3 V1 N5\n2 :a\n1 :b\n", "3 V1 N5\nx :a\n", "3 V1 N5\n2 :a/b\n"} {
		if _, err := ParseDovecotUIDList([]byte(bad), "bad"); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestDovecotKeywordsAndSubscriptions(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "dovecot-keywords"), []byte("0 $Label1\n1 work\n3 $Junk\n"), 0o600)
	kw, err := ReadDovecotKeywords(dir)
	if err != nil || kw[0] != "$Label1" || kw[1] != "work" || kw[3] != "$Junk" || len(kw) != 3 {
		t.Errorf("keywords %v %v", kw, err)
	}
	if got := InfoKeywords("123.M1.host,S=5:2,FSad"); !slices.Equal(got, []int{0, 3}) {
		t.Errorf("InfoKeywords: %v", got)
	}
	os.WriteFile(filepath.Join(dir, "subscriptions"), []byte("V\t2\n\nINBOX\nLists\tgo\nodd\x01tname\n"), 0o600)
	subs, err := ReadDovecotSubscriptions(dir, "/")
	if err != nil || !slices.Equal(subs, []string{"INBOX", "Lists/go", "odd\tname"}) {
		t.Errorf("v2 subscriptions %q %v", subs, err)
	}
	os.WriteFile(filepath.Join(dir, "subscriptions"), []byte("INBOX\nLists.go\n"), 0o600)
	subs, err = ReadDovecotSubscriptions(dir, "/")
	if err != nil || !slices.Equal(subs, []string{"INBOX", "Lists/go"}) {
		t.Errorf("v1 subscriptions %q %v", subs, err)
	}
}

func FuzzParseDovecotUIDList(f *testing.F) {
	f.Add([]byte("3 V1275660208 N25022 G3085f01b7f11094c501100008c4a11c1\n7 :a,S=1\n12 W3 P0bad O2 :b\n"))
	f.Add([]byte("1 1000 5\n3 abc:2,S\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseDovecotUIDList(data, "fuzz")
		if err != nil {
			return
		}
		var prev uint32
		for _, r := range l.Records {
			if r.UID <= prev || r.UID >= l.NextUID || r.Base == "" {
				t.Fatalf("bad record %+v (next %d)", r, l.NextUID)
			}
			prev = r.UID
			if _, ok := l.Lookup(r.Base); !ok {
				t.Fatalf("lookup %q failed", r.Base)
			}
		}
	})
}
