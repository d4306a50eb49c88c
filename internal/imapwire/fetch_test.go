package imapwire

import (
	"fmt"
	"strings"
	"testing"
)

// fmtFetch renders a FetchCommand for comparison: the set, then each item
// in request form (with .PEEK, <offset.count> and (LAZY)), then modifiers.
func fmtFetch(c *FetchCommand) string {
	parts := []string{c.Seq.String()}
	for _, it := range c.Items {
		s := it.String()
		if it.Peek {
			s = strings.Replace(s, "[", ".PEEK[", 1)
		}
		if it.Partial != nil {
			s = s[:strings.LastIndexByte(s, '<')] + fmt.Sprintf("<%d.%d>", it.Partial.Offset, it.Partial.Count)
		}
		if it.Lazy {
			s += " (LAZY)"
		}
		parts = append(parts, s)
	}
	if c.HasChangedSince {
		parts = append(parts, fmt.Sprintf("CHANGEDSINCE=%d", c.ChangedSince))
	}
	if c.Vanished {
		parts = append(parts, "VANISHED")
	}
	return strings.Join(parts, " ")
}

func TestParseFetch(t *testing.T) {
	for _, tc := range []struct {
		in, want, kind string
	}{
		{in: " 1 FLAGS", want: "1 FLAGS"},
		{in: " 1:* ALL", want: "1:* FLAGS INTERNALDATE RFC822.SIZE ENVELOPE"},
		{in: " 1 fast", want: "1 FLAGS INTERNALDATE RFC822.SIZE"},
		{in: " 1 FULL", want: "1 FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY"},
		{in: " 2,4:5 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])",
			want: "2,4:5 UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)]"},
		{in: " 1 (BODY[])", want: "1 BODY[]"},
		{in: " 1 BODY[]<0.2048>", want: "1 BODY[]<0.2048>"},
		{in: " 1 (body[1.2.3.mime] BODY[1.HEADER] BODY[TEXT] body[2.text]<10.5>)", want: "1 BODY[1.2.3.MIME] BODY[1.HEADER] BODY[TEXT] BODY[2.TEXT]<10.5>"},
		{in: " 1 (BODY[HEADER.FIELDS.NOT (Received \"X-Odd Name\")])", want: `1 BODY[HEADER.FIELDS.NOT (Received "X-Odd Name")]`},
		{in: " 1 (BODY[4.2.HEADER.FIELDS ({7}\r\nSubject)])", want: "1 BODY[4.2.HEADER.FIELDS (Subject)]"},
		{in: " 1 (BODY BODYSTRUCTURE ENVELOPE INTERNALDATE RFC822 RFC822.HEADER RFC822.TEXT)", want: "1 BODY BODYSTRUCTURE ENVELOPE INTERNALDATE RFC822 RFC822.HEADER RFC822.TEXT"},
		{in: " 1 (BINARY[] BINARY.PEEK[1.2]<0.100> BINARY.SIZE[3])", want: "1 BINARY[] BINARY.PEEK[1.2]<0.100> BINARY.SIZE[3]"},
		{in: " 1 (MODSEQ EMAILID THREADID SAVEDATE PREVIEW)", want: "1 MODSEQ EMAILID THREADID SAVEDATE PREVIEW"},
		{in: " 1 (PREVIEW (LAZY) UID)", want: "1 PREVIEW (LAZY) UID"},
		{in: " 1 PREVIEW (lazy)", want: "1 PREVIEW (LAZY)"},
		{in: " 1:* (FLAGS) (CHANGEDSINCE 12345)", want: "1:* FLAGS CHANGEDSINCE=12345"},
		{in: " 1:* (FLAGS) (CHANGEDSINCE 0 VANISHED)", want: "1:* FLAGS CHANGEDSINCE=0 VANISHED"},
		{in: " $ FLAGS", want: "$ FLAGS"},
		{in: "\t1 FLAGS", kind: "syntax"},
		{in: " 1 ()", kind: "syntax"},
		{in: " 1 (ALL)", kind: "syntax"},
		{in: " 1 (FLAGS ALL)", kind: "syntax"},
		{in: " 1 FOO", kind: "syntax"},
		{in: " 1 (FLAGS", kind: "syntax"},
		{in: " 1 (FLAGS  UID)", kind: "syntax"},
		{in: " 1 BODY.PEEK", kind: "syntax"},
		{in: " 1 BODY[", kind: "syntax"},
		{in: " 1 BODY[MIME]", kind: "syntax"},
		{in: " 1 BODY[0]", kind: "syntax"},
		{in: " 1 BODY[1.]", kind: "syntax"},
		{in: " 1 BODY[HEADER.FIELDS]", kind: "syntax"},
		{in: " 1 BODY[HEADER.FIELDS ()]", kind: "syntax"},
		{in: " 1 BODY[HEADERS]", kind: "syntax"},
		{in: " 1 BODY[]<0.0>", kind: "syntax"},
		{in: " 1 BODY[]<1>", kind: "syntax"},
		{in: " 1 BODY[]<a.1>", kind: "syntax"},
		{in: " 1 BINARY[TEXT]", kind: "syntax"},
		{in: " 1 BINARY.SIZE[1]<0.1>", kind: "syntax"},
		{in: " 1 BINARY", kind: "syntax"},
		{in: " 1 PREVIEW (FAST)", kind: "syntax"},
		{in: " 1 FLAGS (CHANGEDSINCE)", kind: "syntax"},
		{in: " 1 FLAGS (FOO 1)", kind: "syntax"},
		{in: " 1 FLAGS extra", kind: "syntax"},
		{in: " 0 FLAGS", kind: "syntax"},
		{in: " FLAGS", kind: "syntax"},
	} {
		d, _ := newDecoder(tc.in+"\r\n", DecoderOptions{})
		c, err := d.ParseFetch()
		if errKind(err) != tc.kind {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.kind)
			continue
		}
		if err != nil {
			if err := d.SkipLine(); err != nil || rest(d) != "" {
				t.Errorf("%q: SkipLine %v", tc.in, err)
			}
			continue
		}
		if got := fmtFetch(c); got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.in, got, tc.want)
		}
		if rest(d) != "" {
			t.Errorf("%q: input left", tc.in)
		}
	}
}

func TestFetchItemSemantics(t *testing.T) {
	d, _ := newDecoder(" 1 (BODY[] BODY.PEEK[] RFC822 RFC822.HEADER RFC822.TEXT BINARY[1] BINARY.PEEK[1] FLAGS BODY[1]<5.10>)\r\n", DecoderOptions{})
	c, err := d.ParseFetch()
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, it := range c.Items {
		if it.SetsSeen() {
			seen = append(seen, it.String())
		}
	}
	if got := strings.Join(seen, " "); got != "BODY[] RFC822 RFC822.TEXT BINARY[1] BODY[1]<5>" {
		t.Errorf("SetsSeen: %s", got)
	}
	// Response names drop .PEEK and keep only the origin of a partial.
	if got := c.Items[1].String(); got != "BODY[]" {
		t.Errorf("peek name %s", got)
	}
	if got := c.Items[8].String(); got != "BODY[1]<5>" {
		t.Errorf("partial name %s", got)
	}
	if !c.Has(FetchFlags) || c.Has(FetchUID) {
		t.Error("Has")
	}
}
