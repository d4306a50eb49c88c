package console_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestVacationPage(t *testing.T) {
	env := start(t)
	ctx := context.Background()
	acc, _ := env.Users.Account(ctx, userAddr)
	b := newBrowser(t, env)
	b.login(userAddr, userPass)

	if code := b.get("/account/vacation"); code != 200 {
		t.Fatalf("GET /account/vacation: %d", code)
	}
	b.has("Vacation reply", "The reply is off.", `name="csrf"`)
	// Without the token: refused by the framework, nothing saved.
	if code := b.post("/account/vacation", url.Values{"enabled": {"1"}, "body": {"evil"}}); code != http.StatusForbidden {
		t.Fatalf("POST without token: %d, want 403", code)
	}
	if v, _ := env.Users.Vacation(ctx, acc.ID); v.Enabled {
		t.Fatal("a refused POST turned the vacation reply on")
	}

	b.get("/account/vacation")
	if code := b.form("/account/vacation", "enabled", "1", "subject", "Away", "body", "Back on Monday.", "start", "2020-01-01", "end", "2099-12-31"); code != 200 {
		t.Fatalf("save: %d", code)
	}
	b.has("Vacation reply saved and on.", "The reply is <strong>on</strong>.", "Back on Monday.", `value="2099-12-31"`)
	v, err := env.Users.Vacation(ctx, acc.ID)
	if err != nil || !v.Enabled || v.Subject != "Away" || v.Body != "Back on Monday." ||
		!v.Start.Equal(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) || !v.End.Equal(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("stored %+v, %v", v, err)
	}

	// Refused: on without a message, dates the wrong way round.
	b.form("/account/vacation", "enabled", "1", "body", " ")
	b.has("Vacation reply refused")
	b.form("/account/vacation", "enabled", "1", "body", "x", "start", "2030-01-02", "end", "2030-01-01")
	b.has("Vacation reply refused")
	b.form("/account/vacation", "enabled", "1", "body", "x", "start", "yesterday")
	b.has("The first day is not a date.")
	if v2, _ := env.Users.Vacation(ctx, acc.ID); v2 != v {
		t.Fatalf("a refused form changed the setting: %+v", v2)
	}

	// Off.
	b.form("/account/vacation", "body", "Back on Monday.")
	b.has("Vacation reply saved and off.", "The reply is off.")

	// The admin sees and edits it on the account's page; a user may not.
	if code := b.post("/admin/account/vacation", url.Values{"csrf": {b.csrf()}, "address": {userAddr}, "enabled": {"1"}, "body": {"x"}}); code != http.StatusForbidden && code != http.StatusNotFound {
		t.Fatalf("user POST to the admin form: %d", code)
	}
	a := newBrowser(t, env)
	a.login(adminAddr, adminPass)
	a.get("/admin/account?address=" + userAddr)
	a.has("Vacation reply", "Off.", "Back on Monday.")
	if code := a.form("/admin/account/vacation", "address", userAddr, "enabled", "1", "body", "Set by the admin."); code != 200 {
		t.Fatalf("admin save: %d", code)
	}
	a.has("Vacation reply saved and on.", "Set by the admin.")
	if v, _ := env.Users.Vacation(ctx, acc.ID); !v.Enabled || v.Body != "Set by the admin." {
		t.Fatalf("admin's setting not stored: %+v", v)
	}
}

func TestForwardingPage(t *testing.T) {
	env := start(t)
	ctx := context.Background()
	acc, _ := env.Users.Account(ctx, userAddr)
	b := newBrowser(t, env)
	b.login(userAddr, userPass)
	if code := b.get("/account/forwarding"); code != 200 {
		t.Fatalf("GET /account/forwarding: %d", code)
	}
	b.has("Forwarding is off.", `name="csrf"`)
	if code := b.post("/account/forwarding", url.Values{"to": {"evil@remote.test"}}); code != http.StatusForbidden {
		t.Fatalf("POST without token: %d, want 403", code)
	}
	b.get("/account/forwarding")
	b.form("/account/forwarding", "to", "a@remote.test\r\nb@remote.test", "keep", "1")
	b.has("Forwarding saved.", "Forwarding is <strong>on</strong>, with a copy kept here.")
	if f, _ := env.Users.Forward(ctx, acc.ID); len(f.To) != 2 || !f.KeepCopy {
		t.Fatalf("stored %+v", f)
	}
	b.form("/account/forwarding", "to", userAddr)
	b.has("Forwarding refused")
	b.form("/account/forwarding", "to", "")
	b.has("Forwarding off.", "Forwarding is off.")
	if f, _ := env.Users.Forward(ctx, acc.ID); len(f.To) != 0 {
		t.Fatalf("stored %+v after turning it off", f)
	}
}
