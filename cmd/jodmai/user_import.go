package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/userdb"
)

// userImportBatch is how many records share one directory transaction.
const userImportBatch = 500

// runUserImport creates and updates accounts in bulk from a CSV, JSON or
// Dovecot passwd-file, one line of report per record. It is idempotent:
// run again on the same file it changes nothing and says "unchanged".
func runUserImport(ctx context.Context, env *cmdEnv, args []string) error {
	format := env.flags.String("format", "", "input `FORMAT`: csv, json or dovecot (passwd-file); default from the file name's extension, else csv")
	createDomains := env.flags.Bool("create-domains", false, "create the domains of imported addresses that are not local yet (default: such lines fail)")
	domain := env.flags.String("domain", "", "`DOMAIN` for user names without one (dovecot format)")
	quiet := env.flags.Bool("quiet", false, "report only the lines that failed or changed something")
	workers := env.flags.Int("workers", 0, "plain-text passwords hashed at once (argon2id, 19 MiB each; default: the number of CPUs)")
	return env.withUsers(ctx, args, 1, 1, func(db *userdb.DB, _ *config.Config, rest []string) error {
		name := rest[0]
		if *format == "" {
			switch {
			case strings.HasSuffix(name, ".json"), strings.HasSuffix(name, ".jsonl"):
				*format = "json"
			case strings.HasSuffix(name, ".passwd"), strings.HasSuffix(name, "passwd-file"):
				*format = "dovecot"
			default:
				*format = "csv"
			}
		}
		var parse func([]byte, string) ([]userdb.ImportRecord, []lineError)
		switch *format {
		case "csv":
			parse = parseUsersCSV
		case "json":
			parse = parseUsersJSON
		case "dovecot":
			parse = parseUsersDovecot
		default:
			return usagef("--format must be csv, json or dovecot, not %q", *format)
		}
		var data []byte
		var err error
		if name == "-" {
			data, err = io.ReadAll(env.stdin)
		} else {
			data, err = os.ReadFile(name)
		}
		if err != nil {
			return err
		}
		start := time.Now()
		recs, bad := parse(data, *domain)
		counts := map[userdb.ImportStatus]int{}
		for _, b := range bad {
			fmt.Fprintf(env.stdout, "line %d: error: %v\n", b.line, b.err)
			counts[userdb.ImportFailed]++
		}
		opt := userdb.ImportOptions{CreateDomains: *createDomains, Workers: *workers}
		for len(recs) > 0 {
			n := min(len(recs), userImportBatch)
			res, err := db.ImportBatch(ctx, recs[:n], opt)
			if err != nil {
				return fmt.Errorf("lines %d-%d: %w", recs[0].Line, recs[n-1].Line, err)
			}
			for _, r := range res {
				counts[r.Status]++
				switch {
				case r.Err != nil:
					fmt.Fprintf(env.stdout, "line %d: %s: error: %v\n", r.Line, r.Address, r.Err)
				case r.Status == userdb.ImportUpdated:
					fmt.Fprintf(env.stdout, "line %d: %s: updated (%s)\n", r.Line, r.Address, strings.Join(r.Changed, ", "))
				case r.Status == userdb.ImportUnchanged && *quiet:
				default:
					fmt.Fprintf(env.stdout, "line %d: %s: %s\n", r.Line, r.Address, r.Status)
				}
			}
			recs = recs[n:]
		}
		total := counts[userdb.ImportCreated] + counts[userdb.ImportUpdated] + counts[userdb.ImportUnchanged] + counts[userdb.ImportFailed]
		fmt.Fprintf(env.stdout, "%d records in %s: %d created, %d updated, %d unchanged, %d failed\n", total, time.Since(start).Round(time.Millisecond),
			counts[userdb.ImportCreated], counts[userdb.ImportUpdated], counts[userdb.ImportUnchanged], counts[userdb.ImportFailed])
		if counts[userdb.ImportFailed] > 0 {
			return fmt.Errorf("%d records failed", counts[userdb.ImportFailed])
		}
		return nil
	})
}

// lineError is a record that could not be read at all.
type lineError struct {
	line int
	err  error
}

// userFields are the columns of CSV and the keys of JSON.
var userFields = []string{"address", "password", "password_hash", "quota", "apop_secret", "admin", "aliases"}

// setUserField sets one field of rec from its text form.
func setUserField(rec *userdb.ImportRecord, field, v string) error {
	switch field {
	case "address":
		rec.Address = v
	case "password":
		rec.Password = v
	case "password_hash":
		rec.Hash = v
	case "quota":
		q, err := parseQuota(v)
		if err != nil {
			return err
		}
		rec.QuotaBytes = &q
	case "apop_secret":
		rec.APOPSecret = &v
	case "admin":
		b, err := strconv.ParseBool(strings.ToLower(v))
		if v == "yes" || v == "no" {
			b, err = v == "yes", nil
		}
		if err != nil {
			return fmt.Errorf("admin %q: want true or false", v)
		}
		rec.Admin = &b
	case "aliases":
		rec.Aliases = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == ';' })
	default:
		return fmt.Errorf("unknown field %q (want %s)", field, strings.Join(userFields, ", "))
	}
	return nil
}

// parseQuota reads a quota: bytes, a size with a unit (2GiB, 500MB), or
// none/unlimited/0.
func parseQuota(v string) (int64, error) {
	switch strings.ToLower(v) {
	case "none", "unlimited", "0":
		return 0, nil
	}
	s, err := config.ParseSize(v)
	if err != nil {
		return 0, fmt.Errorf("quota: %w", err)
	}
	return int64(s), nil
}

// parseUsersCSV reads CSV with a header line naming the columns
// (userFields, any order, address required). An empty cell leaves the
// field as it is.
func parseUsersCSV(data []byte, _ string) ([]userdb.ImportRecord, []lineError) {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comment = '#'
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err != nil {
		return nil, []lineError{{1, fmt.Errorf("read header: %w", err)}}
	}
	hline, _ := r.FieldPos(0)
	cols := make([]string, len(header))
	hasAddress := false
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if !containsStr(userFields, h) {
			return nil, []lineError{{hline, fmt.Errorf("unknown column %q (want %s)", h, strings.Join(userFields, ", "))}}
		}
		cols[i] = h
		hasAddress = hasAddress || h == "address"
	}
	if !hasAddress {
		return nil, []lineError{{hline, errors.New("no address column")}}
	}
	var recs []userdb.ImportRecord
	var bad []lineError
	for {
		row, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				bad = append(bad, lineError{1, err})
				break
			}
			bad = append(bad, lineError{pe.StartLine, err})
			continue
		}
		line, _ := r.FieldPos(0)
		if len(row) != len(cols) {
			bad = append(bad, lineError{line, fmt.Errorf("%d fields, want %d", len(row), len(cols))})
			continue
		}
		rec := userdb.ImportRecord{Line: line}
		var ferr error
		for i, v := range row {
			if v == "" {
				continue
			}
			if err := setUserField(&rec, cols[i], v); err != nil {
				ferr = err
				break
			}
		}
		if ferr != nil {
			bad = append(bad, lineError{line, ferr})
			continue
		}
		recs = append(recs, rec)
	}
	return recs, bad
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// jsonUser is one account in JSON. quota is a number of bytes or a size
// string.
type jsonUser struct {
	Address      string          `json:"address"`
	Password     string          `json:"password"`
	PasswordHash string          `json:"password_hash"`
	Quota        json.RawMessage `json:"quota"`
	APOPSecret   *string         `json:"apop_secret"`
	Admin        *bool           `json:"admin"`
	Aliases      []string        `json:"aliases"`
}

// parseUsersJSON reads a JSON array of objects, or objects one after the
// other (JSON Lines). Each record's line is where its object starts.
func parseUsersJSON(data []byte, _ string) ([]userdb.ImportRecord, []lineError) {
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:off], []byte("\n")) }
	dec := json.NewDecoder(bytes.NewReader(data))
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	inArray := len(trimmed) > 0 && trimmed[0] == '['
	if inArray {
		if _, err := dec.Token(); err != nil {
			return nil, []lineError{{1, err}}
		}
	}
	var recs []userdb.ImportRecord
	var bad []lineError
	for dec.More() {
		// The offset after the previous value; the object starts at the
		// first non-space byte after it (and after a comma in an array).
		off := dec.InputOffset()
		for off < int64(len(data)) && strings.IndexByte(" \t\r\n,", data[off]) >= 0 {
			off++
		}
		line := lineAt(off)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			bad = append(bad, lineError{line, err})
			break
		}
		var u jsonUser
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&u); err != nil {
			bad = append(bad, lineError{line, err})
			continue
		}
		rec := userdb.ImportRecord{Line: line, Address: u.Address, Password: u.Password, Hash: u.PasswordHash,
			APOPSecret: u.APOPSecret, Admin: u.Admin, Aliases: u.Aliases}
		if len(u.Quota) > 0 && string(u.Quota) != "null" {
			var n int64
			var s string
			switch {
			case json.Unmarshal(u.Quota, &n) == nil:
				rec.QuotaBytes = &n
			case json.Unmarshal(u.Quota, &s) == nil:
				q, err := parseQuota(s)
				if err != nil {
					bad = append(bad, lineError{line, err})
					continue
				}
				rec.QuotaBytes = &q
			default:
				bad = append(bad, lineError{line, fmt.Errorf("quota %s: want bytes or a size", u.Quota)})
				continue
			}
		}
		recs = append(recs, rec)
	}
	return recs, bad
}

// parseUsersDovecot reads Dovecot's passwd-file format:
//
//	user:password:uid:gid:gecos:home:shell:extra_fields
//
// Only user and password are needed. The password is "{SCHEME}hash", a
// bare crypt(3) string, or "{PLAIN}text" (hashed here). A user without a
// domain gets defaultDomain. Of the extra fields (space-separated
// key=value), "userdb_quota_rule" or "quota_rule" with the rule "*:storage=N"
// (kilobytes, or with a unit b, k, M, G, T) or "*:bytes=N" sets the quota.
func parseUsersDovecot(data []byte, defaultDomain string) ([]userdb.ImportRecord, []lineError) {
	var recs []userdb.ImportRecord
	var bad []lineError
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		f := strings.SplitN(line, ":", 8)
		if len(f) < 2 || f[1] == "" {
			bad = append(bad, lineError{n, errors.New("no password field")})
			continue
		}
		user := f[0]
		if !strings.Contains(user, "@") {
			if defaultDomain == "" {
				bad = append(bad, lineError{n, fmt.Errorf("user %q has no domain (use --domain)", user)})
				continue
			}
			user += "@" + defaultDomain
		}
		rec := userdb.ImportRecord{Line: n, Address: user, Hash: f[1]}
		if len(f) == 8 {
			for _, kv := range strings.Fields(f[7]) {
				k, v, _ := strings.Cut(kv, "=")
				if k != "userdb_quota_rule" && k != "quota_rule" {
					continue
				}
				q, ok, err := dovecotQuota(v)
				if err != nil {
					bad = append(bad, lineError{n, err})
					rec.Address = ""
					break
				}
				if ok {
					rec.QuotaBytes = &q
				}
			}
		}
		if rec.Address != "" {
			recs = append(recs, rec)
		}
	}
	return recs, bad
}

// dovecotQuota reads a Dovecot quota rule; only the default rule "*"
// with storage= or bytes= counts (ok false otherwise).
func dovecotQuota(rule string) (int64, bool, error) {
	box, limits, _ := strings.Cut(rule, ":")
	if box != "*" {
		return 0, false, nil
	}
	for _, l := range strings.Split(limits, ":") {
		k, v, _ := strings.Cut(l, "=")
		if k != "storage" && k != "bytes" {
			continue
		}
		mult := int64(1)
		if k == "storage" {
			mult = 1024 // Dovecot: storage without a unit is in kilobytes
		}
		if v != "" {
			switch strings.ToUpper(v[len(v)-1:]) {
			case "B":
				mult, v = 1, v[:len(v)-1]
			case "K":
				mult, v = 1<<10, v[:len(v)-1]
			case "M":
				mult, v = 1<<20, v[:len(v)-1]
			case "G":
				mult, v = 1<<30, v[:len(v)-1]
			case "T":
				mult, v = 1<<40, v[:len(v)-1]
			}
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > (1<<62)/mult {
			return 0, false, fmt.Errorf("quota rule %q: bad limit", rule)
		}
		return n * mult, true, nil
	}
	return 0, false, nil
}
