package imapd_test

// FETCH, STORE, SEARCH, SORT and THREAD through an independent client,
// go-imap v2's imapclient: it must parse everything we send.

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func fetchClient(t *testing.T, addr string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(fetchUser, "secret-password").Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFetchIMAPClient(t *testing.T) {
	env := fetchNewEnv(t, fetchMessages...)
	c := fetchClient(t, env.Addr("imap"))
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	// Envelopes and body structures of every message.
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{
		UID: true, Flags: true, Envelope: true, RFC822Size: true, InternalDate: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("%d messages", len(msgs))
	}
	m1, m2 := msgs[0], msgs[1]
	if m1.Envelope.Subject != "Grüße aus Berlin" || m1.Envelope.From[0].Name != "Jürgen Müller" || m1.Envelope.From[0].Addr() != "juergen@example.org" {
		t.Errorf("envelope 1: %+v %+v", m1.Envelope, m1.Envelope.From)
	}
	if m2.Envelope.MessageID != "m2@example.com" || len(m2.Envelope.To) != 2 || m2.Envelope.Cc[0].Addr() != "carol@example.net" {
		t.Errorf("envelope 2: %+v", m2.Envelope)
	}
	if m2.RFC822Size != int64(len(fetchMessages[1])) || m2.UID != 2 {
		t.Errorf("size %d uid %d", m2.RFC822Size, m2.UID)
	}
	mp, ok := m2.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || mp.Subtype != "MIXED" || len(mp.Children) != 3 {
		t.Fatalf("body structure 2: %#v", m2.BodyStructure)
	}
	var types []string
	m2.BodyStructure.Walk(func(path []int, part imap.BodyStructure) bool {
		types = append(types, part.MediaType())
		return true
	})
	want := []string{"multipart/mixed", "multipart/alternative", "text/plain", "text/html", "application/octet-stream", "message/rfc822"}
	if !slices.Equal(types, want) {
		t.Errorf("parts %q, want %q", types, want)
	}
	att := mp.Children[1].(*imap.BodyStructureSinglePart)
	if att.Encoding != "BASE64" || att.Extended == nil || att.Extended.Disposition == nil || att.Extended.Disposition.Params["filename"] != "data.bin" {
		t.Errorf("attachment: %+v %+v", att, att.Extended)
	}
	rfc := mp.Children[2].(*imap.BodyStructureSinglePart)
	if rfc.MessageRFC822 == nil || rfc.MessageRFC822.Envelope.Subject != "Inner message" {
		t.Fatalf("embedded message: %+v", rfc.MessageRFC822)
	}
	if inner, ok := rfc.MessageRFC822.BodyStructure.(*imap.BodyStructureMultiPart); !ok || len(inner.Children) != 2 ||
		inner.Children[1].(*imap.BodyStructureSinglePart).Params["charset"] != "iso-8859-1" {
		t.Errorf("embedded structure: %#v", rfc.MessageRFC822.BodyStructure)
	}

	// Body sections, peeked, and BINARY.
	sec := &imap.FetchItemBodySection{Part: []int{3, 1}, Peek: true}
	hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true}
	bin := &imap.FetchItemBinarySection{Part: []int{2}, Peek: true}
	msgs, err = c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{
		BodySection: []*imap.FetchItemBodySection{sec, hdr}, BinarySection: []*imap.FetchItemBinarySection{bin},
		BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{2}}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(msgs[0].FindBodySection(sec)); got != "inner text part with platypus" {
		t.Errorf("BODY[3.1]: %q", got)
	}
	if got := string(msgs[0].FindBodySection(hdr)); got != "Subject: Re: Quarterly report\r\n\r\n" {
		t.Errorf("header fields: %q", got)
	}
	if got := msgs[0].FindBinarySection(bin); !bytes.Equal(got, []byte("\x00\x01\x02\x03\x04hello\x00IMAP")) {
		t.Errorf("BINARY[2]: %q", got)
	}
	if len(msgs[0].BinarySectionSize) != 1 || msgs[0].BinarySectionSize[0].Size != 15 {
		t.Errorf("BINARY.SIZE: %+v", msgs[0].BinarySectionSize)
	}

	// BODY[] without PEEK sets \Seen.
	whole := &imap.FetchItemBodySection{}
	msgs, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{whole}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(msgs[0].FindBodySection(whole)); got != fetchMessages[0] {
		t.Errorf("BODY[]: %q", got)
	}
	if !slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Errorf("flags after BODY[]: %v", msgs[0].Flags)
	}

	// STORE, then SEARCH on the flags.
	msgs, err = c.Store(imap.UIDSetNum(2, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "$Label1"}}, nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || !slices.Contains(msgs[1].Flags, "$Label1") || msgs[1].UID != 3 {
		t.Errorf("STORE: %+v", msgs)
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}, NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := data.AllUIDs(); !slices.Equal(got, []imap.UID{2, 3}) {
		t.Errorf("UID SEARCH: %v", got)
	}
	data, err = c.Search(&imap.SearchCriteria{Body: []string{"café"}}, &imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if data.Min != 2 || data.Max != 3 || data.Count != 2 {
		t.Errorf("ESEARCH: %+v", data)
	}
	data, err = c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "grüße"}}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := data.AllSeqNums(); !slices.Equal(got, []uint32{1}) {
		t.Errorf("SEARCH SUBJECT: %v", got)
	}

	// SORT and THREAD.
	sorted, err := c.Sort(&imapclient.SortOptions{SearchCriteria: &imap.SearchCriteria{},
		SortCriteria: []imapclient.SortCriterion{{Key: imapclient.SortKeySubject}}}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sorted, []uint32{3, 1, 2}) {
		t.Errorf("SORT: %v", sorted)
	}
	threads, err := c.Thread(&imapclient.ThreadOptions{Algorithm: imap.ThreadReferences, SearchCriteria: &imap.SearchCriteria{}}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(threads) != 3 {
		t.Errorf("THREAD: %+v", threads)
	}
}

func TestFetchIMAPClientRev2(t *testing.T) {
	env := fetchNewEnv(t, fetchMessages...)
	c := fetchClient(t, env.Addr("imap"))
	if _, err := c.Enable(imap.CapIMAP4rev2).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{Flags: true, ModSeq: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 || msgs[2].ModSeq == 0 || !strings.Contains(msgs[0].Envelope.Subject, "Grüße") {
		t.Errorf("FETCH: %+v", msgs)
	}
	before := msgs[2].ModSeq
	if _, err := c.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagAnswered}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	msgs, err = c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{Flags: true, ChangedSince: before}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].SeqNum != 3 || msgs[0].ModSeq <= before {
		t.Errorf("CHANGEDSINCE: %+v", msgs)
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagAnswered}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := data.AllUIDs(); !slices.Equal(got, []imap.UID{3}) {
		t.Errorf("ESEARCH: %v", got)
	}
}
