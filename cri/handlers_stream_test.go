package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/images"
	"github.com/peapod-runtime/peapod/sandbox"
)

// recvAll reads a stream to its end, noting each message's item count in f.chunks.
func recvAll[M any](f *fixture, recv func() (M, error), items func(M) int) ([]M, error) {
	f.chunks = nil
	var out []M
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
		f.chunks = append(f.chunks, items(m))
	}
}

// manyPods adds 450 ready pods with one running container each: three messages of a stream.
func (f *fixture) manyPods() {
	for i := range 450 {
		id := fmt.Sprintf("pod%03d", i)
		f.pods.add(sandbox.Sandbox{ID: id, State: sandbox.StateReady})
		f.ctrs.add(container.Container{ID: fmt.Sprintf("ctr%03d", i), PodID: id, State: container.StateRunning})
		f.imgs.imgs[id] = images.Image{ID: id}
	}
}

// chunked checks that a stream cut n items into messages of at most streamChunk.
func chunked[Resp any](n int) func(*testing.T, *fixture, Resp) {
	return func(t *testing.T, f *fixture, _ Resp) {
		var want []int
		for ; n > 0; n -= streamChunk {
			want = append(want, min(n, streamChunk))
		}
		if !slices.Equal(f.chunks, want) {
			t.Errorf("messages of %v items, want %v", f.chunks, want)
		}
	}
}

func streamPods(filter *runtimeapi.PodSandboxFilter) func(context.Context, *fixture) (*runtimeapi.StreamPodSandboxesResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.StreamPodSandboxesResponse, error) {
		st, err := f.rt.StreamPodSandboxes(ctx, &runtimeapi.StreamPodSandboxesRequest{Filter: filter})
		if err != nil {
			return nil, err
		}
		msgs, err := recvAll(f, st.Recv, func(m *runtimeapi.StreamPodSandboxesResponse) int { return len(m.GetPodSandboxes()) })
		out := &runtimeapi.StreamPodSandboxesResponse{}
		for _, m := range msgs {
			out.PodSandboxes = append(out.PodSandboxes, m.GetPodSandboxes()...)
		}
		return out, err
	}
}

func testStreamPodSandboxes(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.StreamPodSandboxesResponse]{{
		name: "every pod once, in messages of 200", setup: (*fixture).manyPods, call: streamPods(nil),
		want: twice(codes.OK), check: chunked[*runtimeapi.StreamPodSandboxesResponse](450),
	}, {
		name: "the filter is ListPodSandbox's", setup: (*fixture).addPodWithContainers,
		call: streamPods(&runtimeapi.PodSandboxFilter{Id: "pod1x"}), want: twice(codes.OK),
		calls: []string{"Sandboxes.List {ID:pod1x State: LabelSelector:map[]}"},
		check: func(t *testing.T, f *fixture, r *runtimeapi.StreamPodSandboxesResponse) {
			if got := podIDs(r.GetPodSandboxes()); got != "pod1x" || !slices.Equal(f.chunks, []int{1}) {
				t.Errorf("pods %q in messages %v", got, f.chunks)
			}
		},
	}, {
		name: "nothing: no message at all", call: streamPods(nil), want: twice(codes.OK), check: chunked[*runtimeapi.StreamPodSandboxesResponse](0),
	}})
}

func streamContainers(ctx context.Context, f *fixture) (*runtimeapi.StreamContainersResponse, error) {
	st, err := f.rt.StreamContainers(ctx, &runtimeapi.StreamContainersRequest{
		Filter: &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if err != nil {
		return nil, err
	}
	msgs, err := recvAll(f, st.Recv, func(m *runtimeapi.StreamContainersResponse) int { return len(m.GetContainers()) })
	out := &runtimeapi.StreamContainersResponse{}
	for _, m := range msgs {
		out.Containers = append(out.Containers, m.GetContainers()...)
	}
	return out, err
}

func testStreamContainers(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.StreamContainersResponse]{{
		name: "every running container once, in messages of 200", setup: (*fixture).manyPods, call: streamContainers,
		want: twice(codes.OK), calls: []string{"Containers.List {ID: PodID: State:running LabelSelector:map[]}"},
		check: chunked[*runtimeapi.StreamContainersResponse](450),
	}, {
		name: "nothing", call: streamContainers, want: twice(codes.OK), check: chunked[*runtimeapi.StreamContainersResponse](0),
	}})
}

func streamContainerStats(ctx context.Context, f *fixture) (*runtimeapi.StreamContainerStatsResponse, error) {
	st, err := f.rt.StreamContainerStats(ctx, &runtimeapi.StreamContainerStatsRequest{})
	if err != nil {
		return nil, err
	}
	msgs, err := recvAll(f, st.Recv, func(m *runtimeapi.StreamContainerStatsResponse) int { return len(m.GetContainerStats()) })
	out := &runtimeapi.StreamContainerStatsResponse{}
	for _, m := range msgs {
		out.ContainerStats = append(out.ContainerStats, m.GetContainerStats()...)
	}
	return out, err
}

func testStreamContainerStats(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.StreamContainerStatsResponse]{{
		name: "every listed container once", setup: (*fixture).manyPods, call: streamContainerStats,
		want: twice(codes.OK), check: chunked[*runtimeapi.StreamContainerStatsResponse](450),
	}, {
		name: "stats not collected", setup: noStats, call: streamContainerStats, want: twice(codes.Unavailable), calls: none,
	}})
}

func streamPodStats(ctx context.Context, f *fixture) (*runtimeapi.StreamPodSandboxStatsResponse, error) {
	st, err := f.rt.StreamPodSandboxStats(ctx, &runtimeapi.StreamPodSandboxStatsRequest{})
	if err != nil {
		return nil, err
	}
	msgs, err := recvAll(f, st.Recv, func(m *runtimeapi.StreamPodSandboxStatsResponse) int { return len(m.GetPodSandboxStats()) })
	out := &runtimeapi.StreamPodSandboxStatsResponse{}
	for _, m := range msgs {
		out.PodSandboxStats = append(out.PodSandboxStats, m.GetPodSandboxStats()...)
	}
	return out, err
}

func testStreamPodSandboxStats(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.StreamPodSandboxStatsResponse]{{
		name: "every ready pod once", setup: (*fixture).manyPods, call: streamPodStats,
		want: twice(codes.OK), check: chunked[*runtimeapi.StreamPodSandboxStatsResponse](450),
	}, {
		name: "stats not collected", setup: noStats, call: streamPodStats, want: twice(codes.Unavailable), calls: none,
	}})
}

func streamPodMetrics(ctx context.Context, f *fixture) (*runtimeapi.StreamPodSandboxMetricsResponse, error) {
	st, err := f.rt.StreamPodSandboxMetrics(ctx, &runtimeapi.StreamPodSandboxMetricsRequest{})
	if err != nil {
		return nil, err
	}
	msgs, err := recvAll(f, st.Recv, func(m *runtimeapi.StreamPodSandboxMetricsResponse) int { return len(m.GetPodSandboxMetrics()) })
	out := &runtimeapi.StreamPodSandboxMetricsResponse{}
	for _, m := range msgs {
		out.PodSandboxMetrics = append(out.PodSandboxMetrics, m.GetPodSandboxMetrics()...)
	}
	return out, err
}

func testStreamPodSandboxMetrics(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.StreamPodSandboxMetricsResponse]{{
		name: "every ready pod once", setup: (*fixture).manyPods, call: streamPodMetrics,
		want: twice(codes.OK), varies: true, check: chunked[*runtimeapi.StreamPodSandboxMetricsResponse](450),
	}, {
		name: "stats not collected", setup: noStats, call: streamPodMetrics, want: twice(codes.Unavailable), calls: none,
	}})
}

func streamImages(ctx context.Context, f *fixture) (*runtimeapi.StreamImagesResponse, error) {
	st, err := f.img.StreamImages(ctx, &runtimeapi.StreamImagesRequest{})
	if err != nil {
		return nil, err
	}
	msgs, err := recvAll(f, st.Recv, func(m *runtimeapi.StreamImagesResponse) int { return len(m.GetImages()) })
	out := &runtimeapi.StreamImagesResponse{}
	for _, m := range msgs {
		out.Images = append(out.Images, m.GetImages()...)
	}
	return out, err
}

func testStreamImages(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.StreamImagesResponse]{{
		name: "every image once", setup: (*fixture).manyPods, call: streamImages,
		want: twice(codes.OK), calls: []string{"Images.List "}, check: chunked[*runtimeapi.StreamImagesResponse](450),
	}, {
		name: "the store fails", setup: func(f *fixture) { f.rec.fail("Images.List", errors.New("read: bad record")) },
		call: streamImages, want: twice(codes.Unknown),
	}})
}

// subscribed waits until the event hub has n streams.
func (f *fixture) subscribed(ctx context.Context, n int) error {
	for {
		f.srv.events.mu.Lock()
		got := len(f.srv.events.subs)
		f.srv.events.mu.Unlock()
		if got == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("event streams: %d, want %d: %w", got, n, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// nextEvent opens an event stream, sends ev through the container manager once the stream
// is subscribed, and answers what the stream received.
func nextEvent(ev container.Event, closeHub bool) func(context.Context, *fixture) (*runtimeapi.ContainerEventResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.ContainerEventResponse, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		st, err := f.rt.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
		if err != nil {
			return nil, err
		}
		if closeHub {
			f.srv.Close()
		} else {
			if err := f.subscribed(ctx, 1); err != nil {
				return nil, err
			}
			ev.At = time.Now()
			f.ctrs.events <- ev
		}
		resp, err := st.Recv()
		cancel()
		// The stream's end unsubscribes it, so the next call starts from none.
		wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer wcancel()
		if err := f.subscribed(wctx, 0); err != nil {
			return nil, err
		}
		return resp, err
	}
}

func testGetContainerEvents(t *testing.T) {
	started := container.Event{Type: container.EventStarted, ContainerID: "ctr1", PodID: "pod1"}
	runCases(t, []rpcCase[*runtimeapi.ContainerEventResponse]{{
		name: "a transition with the pod's and its containers' statuses", setup: (*fixture).addPodWithContainers,
		call: nextEvent(started, false), want: twice(codes.OK), varies: true,
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ContainerEventResponse) {
			if r.GetContainerId() != "ctr1" || r.GetContainerEventType() != runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT ||
				r.GetPodSandboxStatus().GetId() != "pod1" || len(r.GetContainersStatuses()) != 2 {
				t.Errorf("event %v", r)
			}
		},
	}, {
		name: "the runtime shutting down ends the stream", setup: (*fixture).addPodWithContainers,
		call: nextEvent(started, true), want: twice(codes.Unavailable),
	}})
}
