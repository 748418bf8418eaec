package steering

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// SetPolicy validates doc (name labels its errors, as "name:line: …") and
// stores it as the steering policy; an invalid document is refused and the
// running policy kept. It returns the stored version.
func SetPolicy(ctx context.Context, conn driver.Conn, name string, doc []byte) (*Policy, uint64, error) {
	p, err := ParsePolicy(name, doc)
	if err != nil {
		return nil, 0, err
	}
	version := uint64(time.Now().UnixNano())
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO steering_policies (version, yaml, updated_at)")
	if err == nil {
		if err = batch.Append(version, string(doc), time.Now()); err != nil {
			batch.Abort()
		} else {
			err = batch.Send()
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("cannot store the steering policy: %w", err)
	}
	return p, version, nil
}

// ErrNoPolicy says no steering policy was ever stored.
var ErrNoPolicy = fmt.Errorf("no steering policy is stored: set one with `meridian steering policy set --file steering.yml`")

// LoadPolicy reads the stored policy: parsed, its version and its text.
func LoadPolicy(ctx context.Context, conn driver.Conn) (*Policy, uint64, string, error) {
	var version uint64
	var doc string
	rows, err := conn.Query(ctx, "SELECT version, yaml FROM steering_policies ORDER BY version DESC LIMIT 1")
	if err != nil {
		return nil, 0, "", fmt.Errorf("cannot read the steering policy: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, 0, "", fmt.Errorf("cannot read the steering policy: %w", err)
		}
		return nil, 0, "", ErrNoPolicy
	}
	if err := rows.Scan(&version, &doc); err != nil {
		return nil, 0, "", fmt.Errorf("cannot read the steering policy: %w", err)
	}
	p, err := ParsePolicy(fmt.Sprintf("stored policy v%d", version), []byte(doc))
	if err != nil {
		return nil, 0, "", err
	}
	return p, version, doc, nil
}

// Runner makes and publishes decisions: each Step reads the policy (a new
// one takes effect at the next step), the agents' countries and, with one
// query per pool, the window's figures; the engine decides and every
// decision goes to steering_history. Exactly one Runner should publish per
// database (`meridian serve --steering` on one collector, or `meridian
// steering run`); it starts from the last published decisions.
type Runner struct {
	Conn         driver.Conn
	AgentCountry func(ctx context.Context) (map[string]string, error)
	Logf         func(format string, args ...any)
	// Pusher, if set, sends each published decision to its pool's routers.
	// A failed push is logged, recorded and retried at later steps; it
	// never fails the step nor changes what was published.
	Pusher        *Pusher
	engine        *Engine
	policyVersion uint64
}

// Step makes one round of decisions at now and publishes them.
func (r *Runner) Step(ctx context.Context, now time.Time) ([]*Decision, error) {
	p, version, _, err := LoadPolicy(ctx, r.Conn)
	if err != nil {
		return nil, err
	}
	if r.engine == nil {
		last, err := Latest(ctx, r.Conn)
		if err != nil {
			return nil, err
		}
		r.engine = NewEngine(p, last.State)
		r.policyVersion = version
	} else if version != r.policyVersion {
		r.engine.SetPolicy(p)
		r.policyVersion = version
		r.logf("steering policy v%d in effect", version)
	}
	countries, err := r.AgentCountry(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Decision
	for i := range p.Pools {
		pool := &p.Pools[i]
		stats, err := ReadStats(ctx, r.Conn, p, pool, countries, now)
		if err != nil {
			return out, err
		}
		d, err := r.engine.Compute(now, pool.Name, stats)
		if err != nil {
			return out, fmt.Errorf("cannot decide pool %s: %w", pool.Name, err)
		}
		if err := Publish(ctx, r.Conn, d, r.engine.State(), version); err != nil {
			return out, err
		}
		if r.Pusher != nil {
			r.Pusher.Sync(ctx, now, d, pool, p.Regions) //nolint:errcheck // the Pusher logs and records its failures
		}
		out = append(out, d)
	}
	return out, nil
}

// Run steps every every until ctx ends; a failed step is logged and the
// next one tries again (routers keep the last published weights meanwhile).
func (r *Runner) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if ds, err := r.Step(ctx, time.Now()); err != nil {
			r.logf("steering: %v", err)
		} else {
			changed := 0
			for _, d := range ds {
				for _, s := range d.Scopes {
					if s.Changed {
						changed++
					}
				}
			}
			r.logf("steering: published %d pools, %d scopes changed", len(ds), changed)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Runner) logf(format string, args ...any) {
	if r.Logf != nil {
		r.Logf(format, args...)
	}
}
