package exporter

// SetCrashHook makes x call fn at each step of its work; an error from fn
// stops the work there as if the process had died (tests only).
func SetCrashHook(x *Exporter, fn func(step string) error) { x.crash = fn }
