package edge

import (
	"context"
	"testing"
)

// The version comes from the caller (cmd/sluice passes the one the build
// stamped in), not from a package variable, and "" reads as "dev".
func TestBuildInfoReportsTheVersionNewWasGiven(t *testing.T) {
	for _, c := range []struct{ given, want string }{{"v1.2.3", "v1.2.3"}, {"", "dev"}} {
		gw, err := New(mustParse(t, "listen: 127.0.0.1:0\nadmin: { listen: \"off\" }\n"), quietLogger(), c.given)
		if err != nil {
			t.Fatal(err)
		}
		fams, err := gw.Metrics().Registry.Gather()
		_ = gw.Shutdown(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, f := range fams {
			if f.GetName() != "sluice_build_info" {
				continue
			}
			for _, l := range f.GetMetric()[0].GetLabel() {
				if l.GetName() == "version" {
					got = l.GetValue()
				}
			}
		}
		if got != c.want {
			t.Errorf("New(..., %q): sluice_build_info version %q, want %q", c.given, got, c.want)
		}
	}
}
