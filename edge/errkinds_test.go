package edge

import (
	"testing"

	"github.com/sluicegw/sluice/edge/observe"
	"github.com/sluicegw/sluice/pool"
)

// observe can't import pool, so observe.ErrorKinds (the kind labels of
// sluice_upstream_errors_total) is indexed by pool.ErrKind-1 by agreement
// only. A kind added to one list and not the other, or out of order,
// would count errors under the wrong label.
func TestErrorKindLabelsFollowPoolErrKind(t *testing.T) {
	n := 0
	for k := pool.ErrKind(1); k.String() != "none"; k++ {
		n++
		if int(k) > len(observe.ErrorKinds) {
			t.Fatalf("pool.ErrKind %d (%s) has no label in observe.ErrorKinds", k, k)
		}
		if got := observe.ErrorKinds[k-1]; got != k.String() {
			t.Errorf("observe.ErrorKinds[%d] = %q, want %q (pool.ErrKind %d)", k-1, got, k, k)
		}
	}
	if n != len(observe.ErrorKinds) {
		t.Errorf("pool has %d error kinds, observe.ErrorKinds %d labels", n, len(observe.ErrorKinds))
	}
	// retryPolicy.onKind is indexed by pool.ErrKind too.
	if n >= len(retryPolicy{}.onKind) {
		t.Errorf("retryPolicy.onKind has %d slots for kinds 1..%d", len(retryPolicy{}.onKind), n)
	}
}
