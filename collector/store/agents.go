package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Agent is a registered agent. Its token is stored only as a SHA-256 hash:
// tokens are 256 random bits, so a plain hash is as good as a slow one.
type Agent struct {
	Name      string
	Region    string
	TokenHash string
	CreatedAt time.Time
}

// TokenPrefix marks Meridian agent tokens so they are easy to spot in a leak.
const TokenPrefix = "mrd_"

// HashToken returns the stored form of a token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// AddAgent registers an agent and returns its token, which is not stored and
// cannot be shown again.
func AddAgent(ctx context.Context, conn driver.Conn, name, region string) (token string, err error) {
	if !agentNameRE.MatchString(name) {
		return "", fmt.Errorf("cannot add agent %q: use letters, digits, '.', '_' and '-' (at most 64)", name)
	}
	if region == "" {
		return "", fmt.Errorf("cannot add agent %q: --region is required (for example --region eu-west)", name)
	}
	agents, err := ListAgents(ctx, conn)
	if err != nil {
		return "", err
	}
	for _, a := range agents {
		if a.Name == name {
			return "", fmt.Errorf("cannot add agent %q: it already exists (region %s); pick another name", name, a.Region)
		}
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("cannot make a token: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	now := time.Now()
	err = insert(ctx, conn, "agents", []string{"name", "region", "token_sha256", "created_at", "disabled", "version"},
		name, region, HashToken(token), now, uint8(0), uint64(now.UnixNano()))
	if err != nil {
		return "", fmt.Errorf("cannot store agent %q: %w", name, err)
	}
	return token, nil
}

// SetAgentCountry records the ISO 3166 alpha-2 country agent measures from
// (validated by the caller against the code list), so its results count in
// that country's steering scope.
func SetAgentCountry(ctx context.Context, conn driver.Conn, agent, country string) error {
	if !countryRE.MatchString(country) {
		return fmt.Errorf("cannot set the country of agent %q: %q is not an ISO 3166 alpha-2 code such as BR", agent, country)
	}
	err := insert(ctx, conn, "agent_countries", []string{"agent", "country", "version"}, agent, country, uint64(time.Now().UnixNano()))
	if err != nil {
		return fmt.Errorf("cannot store the country of agent %q: %w", agent, err)
	}
	return nil
}

var countryRE = regexp.MustCompile(`^[A-Z]{2}$`)

// AgentCountries maps agent names to the countries they measure from.
func AgentCountries(ctx context.Context, conn driver.Conn) (map[string]string, error) {
	rows, err := conn.Query(ctx, "SELECT agent, country FROM agent_countries FINAL")
	if err != nil {
		return nil, fmt.Errorf("cannot read agent countries: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var a, c string
		if err := rows.Scan(&a, &c); err != nil {
			return nil, fmt.Errorf("cannot read agent countries: %w", err)
		}
		out[a] = c
	}
	return out, rows.Err()
}

// ListAgents returns the enabled agents, by name.
func ListAgents(ctx context.Context, conn driver.Conn) ([]Agent, error) {
	rows, err := conn.Query(ctx, "SELECT name, region, token_sha256, created_at FROM agents FINAL WHERE disabled = 0 ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("cannot list agents: %w", err)
	}
	defer rows.Close()
	var out []Agent
	for rows.Next() {
		var a Agent
		if err := rows.Scan(&a.Name, &a.Region, &a.TokenHash, &a.CreatedAt); err != nil {
			return nil, fmt.Errorf("cannot read agent row: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AgentCache answers agent token lookups from memory (see keyedCache).
type AgentCache struct{ c *keyedCache[Agent] }

// NewAgentCache returns a cache over the agents table.
func NewAgentCache(conn driver.Conn) *AgentCache {
	return &AgentCache{newKeyedCache(func(ctx context.Context) ([]Agent, error) { return ListAgents(ctx, conn) },
		func(a Agent) string { return a.TokenHash })}
}

// Lookup returns the agent owning token.
func (c *AgentCache) Lookup(ctx context.Context, token string) (Agent, bool, error) {
	return c.c.lookup(ctx, HashToken(token))
}

// AgentActivity is what the results say about an agent over the last day.
type AgentActivity struct {
	LastResult   time.Time // newest measurement's start
	LastReceived time.Time // when the collector received it
	Results      uint64
}

// Lag is how far behind the agent's shipping was for its newest result.
func (a AgentActivity) Lag() time.Duration { return a.LastReceived.Sub(a.LastResult) }

// AgentsActivity returns, per agent name, its activity over the last day.
func AgentsActivity(ctx context.Context, conn driver.Conn) (map[string]AgentActivity, error) {
	rows, err := conn.Query(ctx, `SELECT agent, max(ts), argMax(received_at, ts), count()
		FROM results WHERE ts >= now() - 86400 GROUP BY agent`)
	if err != nil {
		return nil, fmt.Errorf("cannot read agent activity: %w", err)
	}
	defer rows.Close()
	out := map[string]AgentActivity{}
	for rows.Next() {
		var name string
		var a AgentActivity
		if err := rows.Scan(&name, &a.LastResult, &a.LastReceived, &a.Results); err != nil {
			return nil, fmt.Errorf("cannot read agent activity: %w", err)
		}
		out[name] = a
	}
	return out, rows.Err()
}
