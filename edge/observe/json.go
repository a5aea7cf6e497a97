package observe

import (
	"encoding/json"
	"io"
	"math"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Family is one metric family in the JSON rendering of /metrics: the same
// names, labels and values as the Prometheus text, for readers (the
// dashboard, scripts) that would rather not parse it.
type Family struct {
	Name    string   `json:"name"`
	Help    string   `json:"help"`
	Type    string   `json:"type"` // counter, gauge, histogram, summary, untyped
	Samples []Sample `json:"samples"`
}

// Sample is one series. Value is set for counters and gauges; Count, Sum
// and Buckets (upper bound -> cumulative count, "+Inf" last) for
// histograms.
type Sample struct {
	Labels  map[string]string `json:"labels,omitempty"`
	Value   *float64          `json:"value,omitempty"`
	Count   *uint64           `json:"count,omitempty"`
	Sum     *float64          `json:"sum,omitempty"`
	Buckets []Bucket          `json:"buckets,omitempty"`
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	LE    float64 `json:"le"` // math.MaxFloat64 stands for +Inf (JSON has no infinity)
	Count uint64  `json:"count"`
}

// WriteJSON writes every family g gathers as {"metrics": [...]}.
func WriteJSON(w io.Writer, g prometheus.Gatherer) error {
	mfs, err := g.Gather()
	if err != nil && len(mfs) == 0 {
		return err
	}
	out := make([]Family, 0, len(mfs))
	for _, mf := range mfs {
		f := Family{Name: mf.GetName(), Help: mf.GetHelp(), Type: typeName(mf.GetType())}
		for _, m := range mf.GetMetric() {
			s := Sample{}
			if len(m.GetLabel()) > 0 {
				s.Labels = make(map[string]string, len(m.GetLabel()))
				for _, l := range m.GetLabel() {
					s.Labels[l.GetName()] = l.GetValue()
				}
			}
			switch {
			case m.Counter != nil:
				s.Value = finite(m.Counter.GetValue())
			case m.Gauge != nil:
				s.Value = finite(m.Gauge.GetValue())
			case m.Untyped != nil:
				s.Value = finite(m.Untyped.GetValue())
			case m.Histogram != nil:
				h := m.Histogram
				n := h.GetSampleCount()
				s.Count, s.Sum = &n, finite(h.GetSampleSum())
				for _, b := range h.GetBucket() {
					s.Buckets = append(s.Buckets, Bucket{LE: b.GetUpperBound(), Count: b.GetCumulativeCount()})
				}
				s.Buckets = append(s.Buckets, Bucket{LE: math.MaxFloat64, Count: n})
			case m.Summary != nil:
				n := m.Summary.GetSampleCount()
				s.Count, s.Sum = &n, finite(m.Summary.GetSampleSum())
			}
			f.Samples = append(f.Samples, s)
		}
		out = append(out, f)
	}
	return json.NewEncoder(w).Encode(map[string]any{"metrics": out})
}

// finite maps NaN and infinities, which JSON cannot carry, to nil.
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func typeName(t dto.MetricType) string {
	switch t {
	case dto.MetricType_COUNTER:
		return "counter"
	case dto.MetricType_GAUGE:
		return "gauge"
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		return "histogram"
	case dto.MetricType_SUMMARY:
		return "summary"
	}
	return "untyped"
}
