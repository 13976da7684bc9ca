// Package jsonreport is the one JSON object every rollout command prints with --json. It is
// its own package because a master reads the reports of the rollout on each slave (see
// replicate/fleet) in the same shape it writes its own.
package jsonreport

// Report is what a command printed with --json: what ran, whether it worked, the exit status,
// the error on one line, its results (always a list) and, for dry runs, its plan.
type Report struct {
	Command string `json:"command"`
	OK      bool   `json:"ok"`
	Exit    int    `json:"exit"`
	Error   string `json:"error,omitempty"`
	Results any    `json:"results"`        // always a list
	Plan    any    `json:"plan,omitempty"` // dry runs only
}
