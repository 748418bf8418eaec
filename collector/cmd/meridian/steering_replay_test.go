package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store/chtest"
)

// seedSlowdown stores an hour of RUM probe fetches from Brazil from start
// on, ten per minute and member: cdn-b steady, cdn-a 300 ms slower from
// the half hour on.
func seedSlowdown(t *testing.T, db string, start time.Time) {
	t.Helper()
	var rows []string
	for m := range 60 {
		for i := range 10 {
			ts := start.Add(time.Duration(m)*time.Minute + time.Duration(i)*6*time.Second).Unix()
			a := 50 + 2*i
			if m >= 30 {
				a += 300
			}
			rows = append(rows,
				fmt.Sprintf("(toDateTime(%d), 's', 'a-%d-%d', 'BR', 28573, 'probe_cold', 'cdn-a', %d, 0, 200, 0)", ts, m, i, a),
				fmt.Sprintf("(toDateTime(%d), 's', 'b-%d-%d', 'BR', 28573, 'probe_cold', 'cdn-b', %d, 0, 200, 0)", ts, m, i, 120+2*i))
		}
	}
	if _, err := chtest.Server(t, db).Exec("INSERT INTO rum_cdn (ts, site, pv, country, asn, kind, cdn, ttfb_ms, error, status, is_bot) VALUES " + strings.Join(rows, ", ")); err != nil {
		t.Fatal(err)
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// TestSteeringReplay replays a slowdown with the stored policy and with a
// file, and checks the usage errors.
func TestSteeringReplay(t *testing.T) {
	o, conn := chtest.New(t)
	fine := minimalPolicy + "    hysteresis_percent: 5\n    alpha: 0.3\n"
	mustRun(t, o, "steering", "policy", "set", "--file", writeFile(t, "steering.yml", fine))
	seedSlowdown(t, o.Database, time.Now().Add(-2*time.Hour).Truncate(time.Minute))
	window := []string{"steering", "replay", "--pool", "www", "--since", "2h10m", "--until", "50m", "--every", "1m"}

	out := mustRun(t, o, window...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], "replayed 80 rounds from ") || !strings.Contains(lines[0], "every 1m: ") || !strings.Contains(lines[0], "country:BR ") {
		t.Errorf("replay summary: got %q", lines[0])
	}
	if strings.Join(strings.Fields(lines[1]), " ") != "scope member weight state down_rounds changes" {
		t.Errorf("replay table header: got %q", lines[1])
	}
	rows := map[string][]string{}
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		rows[f[0]+" "+f[1]] = f
	}
	if a := rows["country:BR cdn-a"]; len(a) != 6 || atoi(a[2]) > 10 || atoi(a[5]) == 0 {
		t.Errorf("replay table: want country:BR cdn-a at weight 10 or less after some changes, got %q in\n%s", a, out)
	}
	t.Logf("meridian %s:\n%s", strings.Join(window, " "), out)

	var stored, wide struct {
		Rounds  int `json:"rounds"`
		Changes int `json:"changes"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, o, append(window, "--format", "json")...)), &stored); err != nil || stored.Rounds != 80 {
		t.Fatalf("replay --format json: err %v, %+v", err, stored)
	}
	file := writeFile(t, "wide.yml", strings.Replace(fine, "hysteresis_percent: 5", "hysteresis_percent: 50", 1))
	if err := json.Unmarshal([]byte(mustRun(t, o, append(window, "--format", "json", "--policy", file)...)), &wide); err != nil {
		t.Fatal(err)
	}
	if wide.Changes >= stored.Changes || wide.Changes == 0 {
		t.Errorf("replay --policy with hysteresis_percent 50: %d changes, want fewer than the stored policy's %d, and some", wide.Changes, stored.Changes)
	}
	if out := mustRun(t, o, append(window, "--changes")...); !strings.Contains(out, "at  ") || !strings.Contains(out, "cdn-a  cdn-b") {
		t.Errorf("replay --changes: want a table of published weights, got\n%s", out)
	}

	bad := writeFile(t, "bad.yml", strings.Replace(fine, "alpha: 0.3", "alpha: 3", 1))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"steering", "replay", "--since", "1h"}, 2, "--pool"},
		{[]string{"steering", "replay", "--pool", "www", "--since", "0s"}, 2, "--since"},
		{[]string{"steering", "replay", "--pool", "www", "--every", "500ms"}, 2, "--every"},
		{[]string{"steering", "replay", "--pool", "www", "--until", "yesterday"}, 2, "--until"},
		{[]string{"steering", "replay", "--pool", "www", "--format", "yaml"}, 2, "json"},
		{[]string{"steering", "replay", "--pool", "nope"}, 2, "www"},
		{[]string{"steering", "replay", "--pool", "www", "--policy", bad}, 1, bad + ":8:"},
		{[]string{"steering", "replay", "--pool", "www", "--since", "720h", "--every", "1s"}, 1, "--every"},
	} {
		if out, code := meridian(t, o, tc.args...); code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("meridian %s: exit %d, %q; want exit %d mentioning %q", strings.Join(tc.args, " "), code, out, tc.code, tc.want)
		}
	}

	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM steering_history").Scan(&n); err != nil || n != 0 {
		t.Errorf("after replays steering_history has %d rows (err %v), want none", n, err)
	}
}
