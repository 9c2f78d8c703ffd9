package scenarios

import _ "embed" // for StarterYAML

// StarterYAML is a commented starter scenario that lists every field with its default
// and meaning; `rehearse scenario init` prints it. It parses to Defaults() plus one
// example latency SLO. It lives in starter/ so that globbing scenarios/*.yaml finds
// only the shipped scenarios.
//
//go:embed starter/starter.yaml
var StarterYAML string
