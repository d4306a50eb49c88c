package imapd_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// An independent client (go-imap v2) driving the mailbox, APPEND, COPY,
// MOVE, EXPUNGE and QUOTA commands.
func TestMboxGoIMAPClient(t *testing.T) {
	env, addr := mboxUser(t)
	var mu sync.Mutex
	var expunged []uint32
	c, err := imapclient.DialInsecure(env.Addr("imap"), &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Expunge: func(seq uint32) {
				mu.Lock()
				expunged = append(expunged, seq)
				mu.Unlock()
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(addr, mboxPass).Wait(); err != nil {
		t.Fatal(err)
	}

	// CREATE, with CREATE-SPECIAL-USE.
	if err := c.Create("Projects/2024", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Bin", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrTrash}}).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Bin", nil).Wait(); err == nil {
		t.Error("CREATE of an existing mailbox succeeded")
	} else if ie, ok := err.(*imap.Error); !ok || ie.Code != imap.ResponseCodeAlreadyExists {
		t.Errorf("CREATE existing: %v", err)
	}
	// CREATE does not subscribe (RFC 9051 §6.3.9: clients do).
	for _, name := range []string{"Projects", "Projects/2024", "Bin"} {
		if err := c.Subscribe(name).Wait(); err != nil {
			t.Fatal(err)
		}
	}

	// APPEND with flags and date.
	body := mboxMsg(1)
	date := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	app := c.Append("Projects/2024", int64(len(body)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: date})
	if _, err := app.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	ad, err := app.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if ad.UID != 1 || ad.UIDValidity == 0 {
		t.Errorf("APPEND data %+v", ad)
	}

	// LIST with SPECIAL-USE, SUBSCRIBED, CHILDREN and STATUS.
	list, err := c.List("", "*", &imap.ListOptions{
		ReturnSubscribed: true, ReturnChildren: true, ReturnSpecialUse: true,
		ReturnStatus: &imap.StatusOptions{NumMessages: true, NumUnseen: true, UIDNext: true, Size: true},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*imap.ListData{}
	for _, l := range list {
		byName[l.Mailbox] = l
		if l.Delim != '/' {
			t.Errorf("%s: delimiter %q", l.Mailbox, l.Delim)
		}
	}
	if l := byName["Projects/2024"]; l == nil || l.Status == nil || *l.Status.NumMessages != 1 || *l.Status.NumUnseen != 0 ||
		l.Status.UIDNext != 2 || *l.Status.Size != int64(len(body)) || !slices.Contains(l.Attrs, imap.MailboxAttrHasNoChildren) {
		t.Errorf("Projects/2024: %+v", l)
	}
	if l := byName["Projects"]; l == nil || !slices.Contains(l.Attrs, imap.MailboxAttrHasChildren) {
		t.Errorf("Projects: %+v", l)
	}
	if l := byName["Bin"]; l == nil || !slices.Contains(l.Attrs, imap.MailboxAttrTrash) || !slices.Contains(l.Attrs, imap.MailboxAttrSubscribed) {
		t.Errorf("Bin: %+v", l)
	}
	if l := byName["INBOX"]; l == nil || l.Status == nil {
		t.Errorf("INBOX: %+v", l)
	}

	// STATUS.
	st, err := c.Status("Projects/2024", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true,
		NumUnseen: true, NumDeleted: true, Size: true, AppendLimit: true, DeletedStorage: true, HighestModSeq: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.NumMessages != 1 || st.UIDValidity != ad.UIDValidity || *st.NumDeleted != 0 || *st.DeletedStorage != 0 ||
		st.AppendLimit == nil || st.HighestModSeq == 0 {
		t.Errorf("STATUS %+v", st)
	}

	// COPY and MOVE with COPYUID; MOVE's expunge arrives.
	if _, err := c.Select("Projects/2024", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	cd, err := c.Copy(imap.UIDSetNum(1), "INBOX").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if cd.UIDValidity == 0 || cd.SourceUIDs.String() != "1" || cd.DestUIDs.String() != "1" {
		t.Errorf("COPY data %+v", cd)
	}
	md, err := c.Move(imap.SeqSetNum(1), "Bin").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if md.UIDValidity == 0 || md.DestUIDs.String() != "1" {
		t.Errorf("MOVE data %+v", md)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if !slices.Equal(expunged, []uint32{1}) {
		t.Errorf("expunged %v", expunged)
	}
	mu.Unlock()
	if n := len(env.Mailbox(t, addr, "Bin")); n != 1 {
		t.Errorf("Bin has %d messages", n)
	}

	// EXPUNGE and UID EXPUNGE.
	for i := 2; i <= 4; i++ {
		b := mboxMsg(i)
		app := c.Append("INBOX", int64(len(b)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDeleted}})
		app.Write([]byte(b))
		app.Close()
		if _, err := app.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	seqs, err := c.UIDExpunge(imap.UIDSetNum(3)).Collect()
	if err != nil || !slices.Equal(seqs, []uint32{3}) {
		t.Errorf("UID EXPUNGE: %v %v", seqs, err)
	}
	seqs, err = c.Expunge().Collect()
	if err != nil || !slices.Equal(seqs, []uint32{3, 2}) {
		t.Errorf("EXPUNGE: %v %v", seqs, err)
	}

	// RENAME, SUBSCRIBE, DELETE, NAMESPACE.
	if err := c.Rename("Projects", "Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Unsubscribe("Work/2024").Wait(); err != nil {
		t.Fatal(err)
	}
	subs, err := c.List("", "Work*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil || len(subs) != 1 || subs[0].Mailbox != "Work" {
		t.Errorf("LIST (SUBSCRIBED): %+v %v", subs, err)
	}
	if err := c.Delete("Work").Wait(); err == nil {
		t.Error("DELETE of a parent succeeded")
	}
	if err := c.Delete("Work/2024").Wait(); err != nil {
		t.Fatal(err)
	}
	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Delim != '/' || ns.Personal[0].Prefix != "" {
		t.Errorf("NAMESPACE %+v %v", ns, err)
	}

	// QUOTA.
	if err := env.Users.SetQuota(context.Background(), addr, 1<<20); err != nil {
		t.Fatal(err)
	}
	qs, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil || len(qs) != 1 || qs[0].Root != "" || qs[0].Resources[imap.QuotaResourceStorage].Limit != 1024 {
		t.Errorf("GETQUOTAROOT %+v %v", qs, err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
}
