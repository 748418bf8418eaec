package steering_test

import (
	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/steering/export"
)

// renderers are package export's, as `meridian serve` hands them to the
// Pusher.
func renderers() steering.Renderers { return export.Renderers }
