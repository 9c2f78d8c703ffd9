package scenarios

import _ "embed" // for StarterYAML

// StarterYAML is a commented starter scenario that lists every field with its default
// and meaning; `rehearse scenario init` prints it. It parses to Defaults() plus one
// example latency SLO. It lives in starter/ so that globbing scenarios/*.yaml finds
// only the shipped scenarios.
//
//go:embed starter/starter.yaml
var StarterYAML string

// StarterScriptYAML is a commented starter for the script workload (`rehearse
// scenario init --workload script`).
//
//go:embed starter/script.yaml
var StarterScriptYAML string

// StarterReplayYAML is a commented starter for the replay workload (`rehearse
// scenario init --workload replay`).
//
//go:embed starter/replay.yaml
var StarterReplayYAML string
