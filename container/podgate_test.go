package container

import (
	"context"
	"errors"
	"testing"
	"time"
)

// returnsWithin reports whether f returns within d; f keeps running if it does not.
func returnsWithin(d time.Duration, f func()) (done <-chan struct{}, ok bool) {
	ch := make(chan struct{})
	go func() { f(); close(ch) }()
	select {
	case <-ch:
		return ch, true
	case <-time.After(d):
		return ch, false
	}
}

func TestPodGateHoldWaitsForCreatesUnderWay(t *testing.T) {
	g := newPodGates()
	ctx := context.Background()
	relCreate, err := g.create(ctx, "pod")
	if err != nil {
		t.Fatal(err)
	}
	var relHold func()
	held, ok := returnsWithin(50*time.Millisecond, func() { relHold, err = g.hold(ctx, "pod") })
	if ok {
		t.Fatal("hold returned while a create held the pod")
	}
	// A create that comes once a hold waits must wait too, or a stream of creates would
	// keep the hold out for ever.
	var relLate func()
	late, ok := returnsWithin(50*time.Millisecond, func() { relLate, _ = g.create(ctx, "pod") })
	if ok {
		t.Fatal("a new create got in while a hold waited")
	}
	// Another pod is not held.
	relOther, err := g.create(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	relOther()

	relCreate()
	<-held
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-late:
		t.Fatal("a create got in while the pod was held")
	case <-time.After(50 * time.Millisecond):
	}
	relHold()
	<-late
	relLate()
	relLate() // twice is harmless
	if n := g.size(); n != 0 {
		t.Errorf("%d gates left after every holder released", n)
	}
}

func TestPodGateHoldsAreSerial(t *testing.T) {
	g := newPodGates()
	ctx := context.Background()
	rel1, err := g.hold(ctx, "pod")
	if err != nil {
		t.Fatal(err)
	}
	var rel2 func()
	second, ok := returnsWithin(50*time.Millisecond, func() { rel2, _ = g.hold(ctx, "pod") })
	if ok {
		t.Fatal("a second hold got in while the first held the pod")
	}
	rel1()
	<-second
	rel2()
	if n := g.size(); n != 0 {
		t.Errorf("%d gates left", n)
	}
}

func TestPodGateWaitEndsWithItsContext(t *testing.T) {
	g := newPodGates()
	relCreate, err := g.create(context.Background(), "pod")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := g.hold(ctx, "pod"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hold past its deadline: %v", err)
	}
	// The hold that gave up must not keep creates out.
	rel, err := g.create(context.Background(), "pod")
	if err != nil {
		t.Fatal(err)
	}
	rel()
	relCreate()

	relHold, err := g.hold(context.Background(), "pod")
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer ccancel()
	if _, err := g.create(cctx, "pod"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("create past its deadline: %v", err)
	}
	relHold()
	if n := g.size(); n != 0 {
		t.Errorf("%d gates left", n)
	}
}
