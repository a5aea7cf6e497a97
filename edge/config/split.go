package config

import (
	"fmt"
	"strings"
)

// mirror checks a route's mirror block.
func (v *validator) mirror(p string, m *Mirror, ups map[string]*Upstream) {
	if m == nil {
		return
	}
	if m.Upstream == "" {
		v.add(p+".upstream", "required")
	} else if _, ok := ups[m.Upstream]; !ok {
		v.add(p+".upstream", "no upstream named %q", m.Upstream)
	}
	if m.Sample != nil && (*m.Sample < 0 || *m.Sample > 1) {
		v.add(p+".sample", "must be 0..1, got %g", *m.Sample)
	}
	if m.MaxConcurrent < 1 || m.MaxConcurrent > 10000 {
		v.add(p+".max_concurrent", "must be 1..10000, got %d", m.MaxConcurrent)
	}
	if m.Timeout.D() <= 0 {
		v.add(p+".timeout", "must be positive")
	}
}

// split checks a route's split, split_override and split_key.
func (v *validator) split(p string, r *Route, ups map[string]*Upstream) {
	v.mirror(p+".mirror", r.Mirror, ups)
	if len(r.Split) == 0 {
		if r.SplitOverride != "" {
			v.add(p+".split_override", "needs a split")
		}
		if r.SplitKey != "" {
			v.add(p+".split_key", "needs a split")
		}
		return
	}
	sum := 0
	seen := map[string]bool{}
	for i, b := range r.Split {
		fp := fmt.Sprintf("%s.split[%d]", p, i)
		switch _, ok := ups[b.Upstream]; {
		case b.Upstream == "":
			v.add(fp+".upstream", "required")
		case !ok:
			v.add(fp+".upstream", "no upstream named %q", b.Upstream)
		case seen[b.Upstream]:
			v.add(fp+".upstream", "%q is listed twice", b.Upstream)
		}
		seen[b.Upstream] = true
		if b.Weight < 0 || b.Weight > 10000 {
			v.add(fp+".weight", "must be 0..10000, got %d", b.Weight)
		} else {
			sum += b.Weight
		}
	}
	if sum == 0 {
		v.add(p+".split", "the weights add up to 0: no request would be sent anywhere")
	}
	if o := r.SplitOverride; o != "" {
		if kind, _, err := ParseHashKey(o); err != nil || (kind != "header" && kind != "cookie") {
			v.add(p+".split_override", `want "header:NAME" or "cookie:NAME", got %q`, o)
		}
	}
	if k := r.SplitKey; k != "" {
		if kind, _, err := ParseHashKey(k); err != nil || kind == "path" {
			v.add(p+".split_key", `want "ip", "header:NAME" or "cookie:NAME", got %q`, k)
		}
	}
}

// SplitUpstreams names a route's upstreams: its upstream, or its split's.
func (r *Route) SplitUpstreams() []string {
	if len(r.Split) == 0 {
		return []string{r.Upstream}
	}
	names := make([]string, len(r.Split))
	for i, b := range r.Split {
		names[i] = b.Upstream
	}
	return names
}

// SplitDescription is "a 95%, b 5%" for a split, else the upstream's name.
func (r *Route) SplitDescription() string {
	if len(r.Split) == 0 {
		return r.Upstream
	}
	sum := 0
	for _, b := range r.Split {
		sum += b.Weight
	}
	parts := make([]string, len(r.Split))
	for i, b := range r.Split {
		parts[i] = fmt.Sprintf("%s %.4g%%", b.Upstream, 100*float64(b.Weight)/float64(max(sum, 1)))
	}
	return strings.Join(parts, ", ")
}
