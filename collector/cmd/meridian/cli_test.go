package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/internal/cliutil"
)

// meridian runs the program in-process against the test database and
// returns what it printed and its exit status.
func meridian(t *testing.T, o store.Options, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	full := append([]string{"meridian"}, args...)
	full = append(full, "--clickhouse", o.Addr, "--database", o.Database)
	err := run(context.Background(), full, &out, &errOut)
	if err != nil {
		errOut.WriteString(err.Error())
	}
	return out.String() + errOut.String(), cliutil.ExitCode(err)
}

func mustRun(t *testing.T, o store.Options, args ...string) string {
	t.Helper()
	out, code := meridian(t, o, args...)
	if code != 0 {
		t.Fatalf("meridian %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// TestSitesSet changes a site flag by flag through the command users run
// and checks what it prints, what is stored, and that refused changes
// change nothing.
func TestSitesSet(t *testing.T) {
	o, conn := chtest.New(t)
	ctx := context.Background()
	add := mustRun(t, o, "sites", "add", "shop", "--origin", "https://shop.example", "--cdn", "a=https://a.example/p.gif")
	key := strings.TrimSpace(add[strings.LastIndex(strings.TrimSpace(add), "\n")+1:])
	if !strings.HasPrefix(key, "mrs_") {
		t.Fatalf("sites add: last line %q is not a site key:\n%s", key, add)
	}
	site := func() store.Site {
		t.Helper()
		s, found, err := store.NewSiteCache(conn).Lookup(ctx, key)
		if err != nil || !found {
			t.Fatalf("site %s: found %v, err %v", key, found, err)
		}
		return s
	}

	out := mustRun(t, o, "sites", "set", "shop", "--sample", "0.25")
	if !strings.Contains(out, "site shop changed") || !strings.Contains(out, `data-sample="0.25"`) || !strings.Contains(out, `data-site="`+key+`"`) {
		t.Errorf("sites set --sample: want the changed tag with the same key, got:\n%s", out)
	}
	if s := site(); s.Sample != 0.25 || len(s.CDNs) != 1 || len(s.Origins) != 1 {
		t.Errorf("after --sample 0.25: got sample %v, CDNs %v, origins %v; want only the sample changed", s.Sample, s.CDNs, s.Origins)
	}

	out = mustRun(t, o, "sites", "set", "shop", "--origin", "https://shop.example", "--origin", "https://www.shop.example")
	if strings.Contains(out, "The tag changed") {
		t.Errorf("origins are not in the tag, but sites set says it changed:\n%s", out)
	}
	if s := site(); len(s.Origins) != 2 || !s.AllowsOrigin("https://www.shop.example") {
		t.Errorf("after --origin twice: got origins %v", s.Origins)
	}

	mustRun(t, o, "sites", "set", "shop", "--no-cdns", "--gpc")
	if s := site(); len(s.CDNs) != 0 || !s.RespectGPC || s.Sample != 0.25 {
		t.Errorf("after --no-cdns --gpc: got CDNs %v, GPC %v, sample %v", s.CDNs, s.RespectGPC, s.Sample)
	}
	if list := mustRun(t, o, "sites", "list"); !strings.Contains(list, key) || !strings.Contains(list, "0.25") {
		t.Errorf("sites list lacks the key or the sample:\n%s", list)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"sites", "set", "shop", "--cdn", "b=https://b.example/p.gif", "--no-cdns"}, 2, "contradict"},
		{[]string{"sites", "set", "shop", "--cdn", "nourl"}, 2, "want NAME=URL"},
		{[]string{"sites", "set", "shop", "--sample", "2"}, 1, "sample"},
		{[]string{"sites", "set", "shop", "--origin", "ftp://shop.example"}, 1, "origin"},
		{[]string{"sites", "set", "nosuch", "--sample", "0.5"}, 1, "nosuch"},
		{[]string{"sites", "set"}, 2, "exactly one NAME"},
	} {
		out, code := meridian(t, o, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("meridian %s: exit %d, %q; want exit %d mentioning %q", strings.Join(tc.args, " "), code, out, tc.code, tc.want)
		}
	}
	if s := site(); s.Sample != 0.25 || len(s.CDNs) != 0 || len(s.Origins) != 2 || !s.RespectGPC {
		t.Errorf("refused changes changed the site: %+v", s)
	}
}

// TestRetentionApply runs `retention apply` on a database with nothing old:
// it says so, and refuses a window it cannot read.
func TestRetentionApply(t *testing.T) {
	o, _ := chtest.New(t)
	if out := mustRun(t, o, "retention", "apply", "--dry-run"); !strings.Contains(out, "nothing to drop in "+o.Database) {
		t.Errorf("retention apply --dry-run on a fresh database: got %q", out)
	}
	out, code := meridian(t, o, "retention", "apply", "--results", "3 weeks")
	if code != 2 || !strings.Contains(out, "--results") {
		t.Errorf("retention apply --results '3 weeks': exit %d, %q; want a usage error naming the flag", code, out)
	}
}
