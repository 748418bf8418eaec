package probe

import (
	"context"
	"errors"

	"github.com/meridian-net/meridian/internal/result"
)

// HTTPOptions are the options of a http check.
type HTTPOptions struct{}

// HTTP is a placeholder until the HTTP probe lands.
func HTTP(ctx context.Context, c *Check) ([]*result.Result, error) { return nil, errors.New("not yet") }
