package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// AgentConfig is an agent's remote checks document (see agent/config.ParseChecks):
// YAML with one key, checks:. Version counts the changes to it (1, 2, …).
type AgentConfig struct {
	Agent     string
	YAML      string
	Version   uint64
	UpdatedAt time.Time
}

// SetAgentConfig stores doc as agent's remote checks document; the caller
// validates it. An empty doc removes the remote config. It returns what it
// stored.
func SetAgentConfig(ctx context.Context, conn driver.Conn, agent, doc string) (AgentConfig, error) {
	agents, err := ListAgents(ctx, conn)
	if err != nil {
		return AgentConfig{}, err
	}
	known := false
	for _, a := range agents {
		known = known || a.Name == agent
	}
	if !known {
		return AgentConfig{}, fmt.Errorf("cannot set the config of agent %q: no such agent (see `meridian agents list`)", agent)
	}
	var last uint64
	if err := conn.QueryRow(ctx, "SELECT max(version) FROM agent_configs WHERE agent = ?", agent).Scan(&last); err != nil {
		return AgentConfig{}, fmt.Errorf("cannot read the config version of agent %q: %w", agent, err)
	}
	ac := AgentConfig{Agent: agent, YAML: doc, Version: last + 1, UpdatedAt: time.Now().Truncate(time.Second)}
	if err := insert(ctx, conn, "agent_configs", []string{"agent", "yaml", "version", "updated_at"},
		ac.Agent, ac.YAML, ac.Version, ac.UpdatedAt); err != nil {
		return AgentConfig{}, fmt.Errorf("cannot store the config of agent %q: %w", agent, err)
	}
	return ac, nil
}

// GetAgentConfig returns agent's remote checks document; false when none is set.
func GetAgentConfig(ctx context.Context, conn driver.Conn, agent string) (AgentConfig, bool, error) {
	all, err := agentConfigs(ctx, conn, agent)
	if err != nil {
		return AgentConfig{}, false, err
	}
	ac, ok := all[agent]
	return ac, ok, nil
}

// agentConfigs reads the latest document of one agent, or of all when agent
// is empty, leaving out removed ones.
func agentConfigs(ctx context.Context, conn driver.Conn, agent string) (map[string]AgentConfig, error) {
	q := "SELECT agent, yaml, version, updated_at FROM agent_configs FINAL"
	var args []any
	if agent != "" {
		q += " WHERE agent = ?"
		args = append(args, agent)
	}
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot read agent configs: %w", err)
	}
	defer rows.Close()
	out := map[string]AgentConfig{}
	for rows.Next() {
		var ac AgentConfig
		if err := rows.Scan(&ac.Agent, &ac.YAML, &ac.Version, &ac.UpdatedAt); err != nil {
			return nil, fmt.Errorf("cannot read agent config row: %w", err)
		}
		if ac.YAML != "" {
			out[ac.Agent] = ac
		}
	}
	return out, rows.Err()
}

// AgentConfigCache answers GET /v1/agent/config from memory, reloading
// the whole (small) table at most every TTL, so a fleet polling every 30s
// costs ClickHouse one query per TTL, and a change reaches agents within
// TTL plus their poll interval.
type AgentConfigCache struct {
	conn driver.Conn
	ttl  time.Duration

	mu       sync.Mutex
	byAgent  map[string]AgentConfig
	loadedAt time.Time
}

// NewAgentConfigCache returns a cache over the agent_configs table.
func NewAgentConfigCache(conn driver.Conn) *AgentConfigCache {
	return &AgentConfigCache{conn: conn, ttl: 2 * time.Second}
}

// AgentConfig returns agent's remote checks document; false when none is set.
func (c *AgentConfigCache) AgentConfig(ctx context.Context, agent string) (AgentConfig, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byAgent == nil || time.Since(c.loadedAt) > c.ttl {
		all, err := agentConfigs(ctx, c.conn, "")
		switch {
		case err == nil:
			c.byAgent, c.loadedAt = all, time.Now()
		case c.byAgent == nil:
			return AgentConfig{}, false, err
		} // else serve the last good copy while ClickHouse is away
	}
	ac, ok := c.byAgent[agent]
	return ac, ok, nil
}
