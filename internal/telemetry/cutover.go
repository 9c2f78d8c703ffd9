package telemetry

// CutoverEvent records a cutover step's event: the step started ("started") or
// ended with status. The phase is not read from the steps: the run's phases follow
// its disruptions (the cutover's cycles, its faults), and Phase is told of them.
func (m *Metrics) CutoverEvent(step, status string) {
	m.Step(step, status)
}
