package cri

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestToStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"invalid", fmt.Errorf("pod %q: %w", "x", errdefs.ErrInvalidArgument), codes.InvalidArgument},
		{"not found", fmt.Errorf("a: %w", fmt.Errorf("b: %w", errdefs.ErrNotFound)), codes.NotFound},
		{"exists", fmt.Errorf("name held by abc: %w", errdefs.ErrAlreadyExists), codes.AlreadyExists},
		{"precondition", fmt.Errorf("not running: %w", errdefs.ErrFailedPrecondition), codes.FailedPrecondition},
		{"conflict", fmt.Errorf("busy: %w", errdefs.ErrConflict), codes.FailedPrecondition},
		{"unavailable", fmt.Errorf("shim gone: %w", errdefs.ErrUnavailable), codes.Unavailable},
		{"unimplemented", fmt.Errorf("later: %w", errdefs.ErrNotImplemented), codes.Unimplemented},
		{"unauthorized", fmt.Errorf("registry said 401: %w", errdefs.ErrUnauthenticated), codes.Unauthenticated},
		{"deadline", fmt.Errorf("wait: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{"canceled", fmt.Errorf("wait: %w", context.Canceled), codes.Canceled},
		{"digest mismatch", fmt.Errorf("layer: %w", errdefs.ErrDataLoss), codes.DataLoss},
		{"plain", errors.New("disk on fire"), codes.Unknown},
		{"already a status", status.Error(codes.OutOfRange, "x"), codes.OutOfRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := toStatus(tc.err)
			st, ok := status.FromError(got)
			if !ok || st.Code() != tc.want {
				t.Fatalf("toStatus(%v) = %v, want code %v", tc.err, got, tc.want)
			}
			if st.Message() != tc.err.Error() && tc.name != "already a status" {
				t.Errorf("message %q lost the error text %q", st.Message(), tc.err.Error())
			}
		})
	}
	if toStatus(nil) != nil {
		t.Fatal("toStatus(nil) != nil")
	}
}
