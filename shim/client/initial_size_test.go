package client

import (
	"context"
	"testing"
	"time"

	"github.com/peapod-runtime/peapod/shim"
)

// TestAwaitInitialSize: a terminal exec starts with the client's first size even when it
// arrives just after the streams open (kubectl exec -t sends it then); without one it starts
// after the short wait, and a session without a resize channel does not wait at all.
func TestAwaitInitialSize(t *testing.T) {
	ctx := context.Background()
	resize := make(chan shim.TerminalSize, 1)
	go func() {
		time.Sleep(20 * time.Millisecond) // the client's size arrives after the session opened
		resize <- shim.TerminalSize{Width: 77, Height: 33}
	}()
	if got := awaitInitialSize(ctx, resize); got == nil || got.Width != 77 || got.Height != 33 {
		t.Fatalf("initial size %+v, want 77x33", got)
	}
	if got := awaitInitialSize(ctx, make(chan shim.TerminalSize)); got != nil {
		t.Fatalf("initial size %+v from a client that sent none", got)
	}
	if got := awaitInitialSize(ctx, nil); got != nil {
		t.Fatalf("initial size %+v without a resize channel", got)
	}
	closed := make(chan shim.TerminalSize)
	close(closed)
	if got := awaitInitialSize(ctx, closed); got != nil {
		t.Fatalf("initial size %+v from a closed channel", got)
	}
}
