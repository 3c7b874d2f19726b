package exporter

import "github.com/prometheus/client_golang/prometheus"

// metrics are the exporter's Prometheus metrics. The only label is the
// configuration's root (operator-defined, few) and the kind of key.
type metrics struct {
	files         *prometheus.CounterVec
	keys          *prometheus.CounterVec
	skipped       *prometheus.CounterVec
	regenerated   *prometheus.CounterVec
	leaseHeld     *prometheus.CounterVec
	unavailable   *prometheus.GaugeVec
	listed        *prometheus.GaugeVec
	lag           *prometheus.GaugeVec
	passes        *prometheus.CounterVec
	passDuration  prometheus.Histogram
	retainedKeys  prometheus.Counter
	retainedFiles prometheus.Counter
	eventFailures prometheus.Counter
}

// newMetrics builds the metrics and registers them with reg when not nil.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		files: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_export_files_written_total",
			Help: "Export files written (new batches), by root.",
		}, []string{"root"}),
		keys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_export_keys_total",
			Help: "Keys written into new export files, by root and kind (new, revised, padding).",
		}, []string{"root", "kind"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_export_bad_keys_skipped_total",
			Help: "Stored key records skipped by the exporter because they do not decode (wrong key length, damaged record), by root.",
		}, []string{"root"}),
		regenerated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_export_files_regenerated_total",
			Help: "Recorded export files found missing or damaged on disk and rewritten byte for byte, by root.",
		}, []string{"root"}),
		leaseHeld: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_export_lease_held_total",
			Help: "Windows skipped because another exporter held their lease, by root.",
		}, []string{"root"}),
		unavailable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "candor_export_files_unavailable",
			Help: "Recorded export files that are missing or damaged and could not be regenerated, hence not listed (alert when > 0), by root.",
		}, []string{"root"}),
		listed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "candor_export_index_files",
			Help: "Files listed in index.txt, by root.",
		}, []string{"root"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "candor_export_lag_seconds",
			Help: "How long the oldest window that is due (ended at least the minimum window age ago) has been waiting for export; 0 when up to date, by root.",
		}, []string{"root"}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_export_passes_total",
			Help: "Export passes by result (ok, error).",
		}, []string{"result"}),
		passDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "candor_export_pass_duration_seconds",
			Help:    "Duration of export passes.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		retainedKeys: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "candor_retention_keys_deleted_total",
			Help: "Keys deleted by retention.",
		}),
		retainedFiles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "candor_retention_export_files_deleted_total",
			Help: "Export files deleted by retention.",
		}),
		eventFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "candor_export_event_delivery_failures_total",
			Help: "Failed deliveries of export events to the transparency log hooks (retried on the next pass).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.files, m.keys, m.skipped, m.regenerated, m.leaseHeld, m.unavailable, m.listed,
			m.lag, m.passes, m.passDuration, m.retainedKeys, m.retainedFiles, m.eventFailures)
	}
	return m
}
