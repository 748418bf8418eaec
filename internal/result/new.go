package result

import (
	"time"

	"github.com/google/uuid"
)

// New starts a result for one run of a check: a fresh UUIDv7 id and the
// start time. Probes fill in the rest.
func New(agent, check, kind, target string, start time.Time) *Result {
	id, err := uuid.NewV7()
	if err != nil { // only if the system's random source fails
		id = uuid.New()
	}
	return &Result{V: Version, ID: id.String(), Agent: agent, Check: check, Kind: kind, Target: target, TS: start.UTC()}
}

// Fail marks the result failed with an error class and message.
func (r *Result) Fail(class string, err error) {
	r.OK = false
	r.Error = class
	if err != nil {
		r.ErrorMessage = err.Error()
	}
}
