package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Roles a token (not an agent's) may have.
const RoleSteeringReader = "steering-reader"

// Roles lists the roles `meridian tokens add --role` accepts.
var Roles = []string{RoleSteeringReader}

// Token is a registered non-agent token, stored only as its SHA-256 hash.
type Token struct {
	Name      string
	Role      string
	TokenHash string
	CreatedAt time.Time
}

// AddToken registers a token for role and returns it; it is not stored and
// cannot be shown again.
func AddToken(ctx context.Context, conn driver.Conn, name, role string) (string, error) {
	if !agentNameRE.MatchString(name) {
		return "", fmt.Errorf("cannot add token %q: use letters, digits, '.', '_' and '-' (at most 64)", name)
	}
	if !slices.Contains(Roles, role) {
		return "", fmt.Errorf("cannot add token %q: unknown role %q; choose from %v", name, role, Roles)
	}
	tokens, err := ListTokens(ctx, conn)
	if err != nil {
		return "", err
	}
	for _, t := range tokens {
		if t.Name == name {
			return "", fmt.Errorf("cannot add token %q: it already exists (role %s); pick another name", name, t.Role)
		}
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("cannot make a token: %w", err)
	}
	token := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	now := time.Now()
	if err := insert(ctx, conn, "tokens", []string{"name", "role", "token_sha256", "created_at", "disabled", "version"},
		name, role, HashToken(token), now, uint8(0), uint64(now.UnixNano())); err != nil {
		return "", fmt.Errorf("cannot store token %q: %w", name, err)
	}
	return token, nil
}

// ListTokens returns the enabled tokens, by name.
func ListTokens(ctx context.Context, conn driver.Conn) ([]Token, error) {
	rows, err := conn.Query(ctx, "SELECT name, role, token_sha256, created_at FROM tokens FINAL WHERE disabled = 0 ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("cannot list tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		var t Token
		if err := rows.Scan(&t.Name, &t.Role, &t.TokenHash, &t.CreatedAt); err != nil {
			return nil, fmt.Errorf("cannot read token row: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// TokenCache answers token lookups from memory (see keyedCache).
type TokenCache struct{ c *keyedCache[Token] }

// NewTokenCache returns a cache over the tokens table.
func NewTokenCache(conn driver.Conn) *TokenCache {
	return &TokenCache{newKeyedCache(func(ctx context.Context) ([]Token, error) { return ListTokens(ctx, conn) },
		func(t Token) string { return t.TokenHash })}
}

// Lookup returns the token's record; false when it is unknown or disabled.
func (c *TokenCache) Lookup(ctx context.Context, token string) (Token, bool, error) {
	return c.c.lookup(ctx, HashToken(token))
}
