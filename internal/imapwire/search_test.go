package imapwire

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseSearch(t *testing.T) {
	for _, tc := range []struct {
		in, want, kind string
	}{
		{in: " ALL", want: "(all)"},
		{in: " all", want: "(all)"},
		{in: " ANSWERED DELETED DRAFT FLAGGED SEEN RECENT", want: `(and (flag \Answered) (flag \Deleted) (flag \Draft) (flag \Flagged) (flag \Seen) (recent))`},
		{in: " UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN", want: `(and (not (flag \Answered)) (not (flag \Deleted)) (not (flag \Draft)) (not (flag \Flagged)) (not (flag \Seen)))`},
		{in: " NEW", want: `(and (recent) (not (flag \Seen)))`},
		{in: " OLD", want: `(not (recent))`},
		{in: ` FROM "Smith" TO x CC y BCC z SUBJECT {5}` + "\r\nhello", want: `(and (header "From" "Smith") (header "To" "x") (header "Cc" "y") (header "Bcc" "z") (header "Subject" "hello"))`},
		{in: ` HEADER Message-ID "<a@b>"`, want: `(header "Message-ID" "<a@b>")`},
		{in: ` HEADER X-Spam ""`, want: `(header "X-Spam" "")`},
		{in: ` BODY x TEXT "y z"`, want: `(and (body "x") (text "y z"))`},
		{in: ` KEYWORD $Forwarded UNKEYWORD Junk`, want: `(and (keyword "$Forwarded") (not (keyword "Junk")))`},
		{in: ` BEFORE 1-Feb-1994 ON "02-Feb-1994" SINCE 3-feb-1994`, want: `(and (before 1994-02-01) (on 1994-02-02) (since 1994-02-03))`},
		{in: ` SENTBEFORE 1-Feb-1994 SENTON 2-Feb-1994 SENTSINCE 3-Feb-1994`, want: `(and (sentbefore 1994-02-01) (senton 1994-02-02) (sentsince 1994-02-03))`},
		{in: ` SAVEDBEFORE 1-Feb-1994 SAVEDON 2-Feb-1994 SAVEDSINCE 3-Feb-1994 SAVEDATESUPPORTED`, want: `(and (savedbefore 1994-02-01) (savedon 1994-02-02) (savedsince 1994-02-03) (savedatesupported))`},
		{in: ` LARGER 100 SMALLER 9223372036854775807`, want: `(and (larger 100) (smaller 9223372036854775807))`},
		{in: ` OLDER 3600 YOUNGER 60`, want: `(and (older 3600) (younger 60))`},
		{in: ` 1:3,5 UID 7:* UID $ $`, want: `(and (seq 1:3,5) (uid 7:*) (uid $) (seq $))`},
		{in: ` *`, want: `(seq *)`},
		{in: ` NOT SEEN`, want: `(not (flag \Seen))`},
		{in: ` NOT NOT SEEN`, want: `(not (not (flag \Seen)))`},
		{in: ` OR SEEN FLAGGED`, want: `(or (flag \Seen) (flag \Flagged))`},
		{in: ` OR (SEEN FLAGGED) OR DRAFT (FROM a)`, want: `(or (and (flag \Seen) (flag \Flagged)) (or (flag \Draft) (header "From" "a")))`},
		{in: ` (SEEN)`, want: `(flag \Seen)`},
		{in: ` ((SEEN) (UNSEEN DELETED))`, want: `(and (flag \Seen) (and (not (flag \Seen)) (flag \Deleted)))`},
		{in: ` MODSEQ 620162338`, want: `(modseq 620162338)`},
		{in: ` MODSEQ "/flags/\\draft" all 620162338`, want: `(modseq "/flags/\\draft" all 620162338)`},
		{in: ` MODSEQ "/flags/$Junk" PRIV 0`, want: `(modseq "/flags/$Junk" priv 0)`},
		{in: ` EMAILID M6d99ac3275bb4e THREADID T64b478a75b7ea9`, want: `(and (emailid "M6d99ac3275bb4e") (threadid "T64b478a75b7ea9"))`},
		{in: ` CHARSET UTF-8 TEXT "x"`, want: `(text "x")`},
		{in: ` CHARSET "UTF-8" ALL`, want: `(all)`},
		{in: ` RETURN (MIN MAX) ALL`, want: `RETURN(3) (all)`},
		{in: ` RETURN () ALL`, want: `RETURN(4) (all)`},
		{in: ` RETURN (COUNT SAVE ALL) CHARSET US-ASCII UNSEEN`, want: `RETURN(28) (not (flag \Seen))`},
		{in: ` RETURN (SAVE) (OR 1 2)`, want: `RETURN(16) (or (seq 1) (seq 2))`},
		{in: ` TEXT "caf` + "\xc3\xa9" + `"`, want: `(text "café")`},
		{in: "", kind: "syntax"},
		{in: " ", kind: "syntax"},
		{in: " FOO", kind: "syntax"},
		{in: " SEEN  FLAGGED", kind: "syntax"},
		{in: " SEEN ", kind: "syntax"},
		{in: " ()", kind: "syntax"},
		{in: " (SEEN", kind: "syntax"},
		{in: " OR SEEN", kind: "syntax"},
		{in: " NOT", kind: "syntax"},
		{in: " FROM", kind: "syntax"},
		{in: " HEADER X", kind: "syntax"},
		{in: " BEFORE 31-Feb-2024", kind: "syntax"},
		{in: " LARGER -1", kind: "syntax"},
		{in: " OLDER 0", kind: "syntax"},
		{in: " UID", kind: "syntax"},
		{in: " UID 0", kind: "syntax"},
		{in: " KEYWORD \\Seen", kind: "syntax"},
		{in: " MODSEQ \"/foo/x\" all 1", kind: "syntax"},
		{in: " MODSEQ \"/flags/x\" mine 1", kind: "syntax"},
		{in: " MODSEQ x", kind: "syntax"},
		{in: " EMAILID a.b", kind: "syntax"},
		{in: " EMAILID " + strings.Repeat("a", 256), kind: "syntax"},
		{in: " RETURN (BOGUS) ALL", kind: "syntax"},
		{in: " RETURN ALL", kind: "syntax"},
		{in: " CHARSET", kind: "syntax"},
		{in: " CHARSET UTF-8", kind: "syntax"},
		{in: " " + strings.Repeat("NOT ", MaxSearchDepth+1) + "ALL", kind: "limit"},
		{in: " " + strings.Repeat("(", MaxSearchDepth+1) + "ALL" + strings.Repeat(")", MaxSearchDepth+1), kind: "limit"},
		{in: " " + strings.Repeat("OR ALL ", MaxSearchDepth+1) + "ALL", kind: "limit"},
	} {
		d, _ := newDecoder(tc.in+"\r\n", DecoderOptions{})
		c, err := d.ParseSearch()
		if errKind(err) != tc.kind {
			t.Errorf("%.60q: err %v, want %q", tc.in, err, tc.kind)
			continue
		}
		if err != nil {
			if err := d.SkipLine(); err != nil || rest(d) != "" {
				t.Errorf("%q: SkipLine %v", tc.in, err)
			}
			continue
		}
		got := c.Key.String()
		if c.ESearch {
			got = fmt.Sprintf("RETURN(%d) %s", c.Return, got)
		}
		if got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.in, got, tc.want)
		}
		if rest(d) != "" {
			t.Errorf("%q: input left", tc.in)
		}
	}
	// Charset is reported as sent.
	d, _ := newDecoder(" CHARSET iso-8859-1 ALL\r\n", DecoderOptions{})
	if c, err := d.ParseSearch(); err != nil || c.Charset != "iso-8859-1" {
		t.Fatal(c, err)
	}
}

// TestSearchDepthBoundary checks nesting just inside the limit parses.
func TestSearchDepthBoundary(t *testing.T) {
	in := " " + strings.Repeat("NOT ", MaxSearchDepth-1) + "ALL\r\n"
	d, _ := newDecoder(in, DecoderOptions{})
	if _, err := d.ParseSearch(); err != nil {
		t.Fatal(err)
	}
}

func TestParseSort(t *testing.T) {
	for _, tc := range []struct {
		in, want, kind string
	}{
		{in: " (DATE) UTF-8 ALL", want: "[{3 false}] UTF-8 (all)"},
		{in: " (REVERSE ARRIVAL cc FROM SIZE SUBJECT TO DISPLAYFROM reverse DISPLAYTO) US-ASCII SEEN FROM x", want: `[{1 true} {2 false} {4 false} {5 false} {6 false} {7 false} {8 false} {9 true}] US-ASCII (and (flag \Seen) (header "From" "x"))`},
		{in: " () UTF-8 ALL", kind: "syntax"},
		{in: " (REVERSE) UTF-8 ALL", kind: "syntax"},
		{in: " (NAME) UTF-8 ALL", kind: "syntax"},
		{in: " (DATE) ALL", kind: "syntax"},
		{in: " (DATE) UTF-8", kind: "syntax"},
	} {
		d, _ := newDecoder(tc.in+"\r\n", DecoderOptions{})
		c, err := d.ParseSort()
		if errKind(err) != tc.kind {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.kind)
			continue
		}
		if err == nil {
			if got := fmt.Sprintf("%v %s %s", c.Criteria, c.Charset, c.Key); got != tc.want {
				t.Errorf("%q:\n got %s\nwant %s", tc.in, got, tc.want)
			}
		}
	}
}

func TestParseThread(t *testing.T) {
	for _, tc := range []struct {
		in, want, kind string
	}{
		{in: " REFERENCES UTF-8 ALL", want: "REFERENCES UTF-8 (all)"},
		{in: " orderedsubject US-ASCII SINCE 1-Jan-2020", want: "ORDEREDSUBJECT US-ASCII (since 2020-01-01)"},
		{in: " REFERENCES ALL", kind: "syntax"},
		{in: " (REFERENCES) UTF-8 ALL", kind: "syntax"},
	} {
		d, _ := newDecoder(tc.in+"\r\n", DecoderOptions{})
		c, err := d.ParseThread()
		if errKind(err) != tc.kind {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.kind)
			continue
		}
		if err == nil {
			if got := fmt.Sprintf("%s %s %s", c.Algorithm, c.Charset, c.Key); got != tc.want {
				t.Errorf("%q: got %s", tc.in, got)
			}
		}
	}
}
