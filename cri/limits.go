package cri

import (
	"fmt"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
)

// maxMetadataSize is the most the keys and values of an object's labels and annotations
// may hold together: Kubernetes' own limit on an object's annotations
// (TotalAnnotationSizeLimitB, 256 KiB), applied here to labels and annotations together.
// Every List answer carries them, so one client's huge metadata would otherwise break
// listing for every client and swell the daemon.
const maxMetadataSize = 256 << 10

// checkMetadataSize refuses labels and annotations of what (a pod or container config)
// larger together than maxMetadataSize.
func checkMetadataSize(what string, labels, annotations map[string]string) error {
	n := 0
	for _, m := range []map[string]string{labels, annotations} {
		for k, v := range m {
			n += len(k) + len(v)
		}
	}
	if n > maxMetadataSize {
		return fmt.Errorf("%s labels and annotations hold %d bytes, over the limit of %d bytes (256 KiB, as Kubernetes allows an object): %w",
			what, n, maxMetadataSize, errdefs.ErrInvalidArgument)
	}
	return nil
}

// maxReplySize is the largest answer a CRI client takes: the kubelet's CRI client (and
// crictl, built on it) refuses messages over 16 MiB. The server's send limit is set to it.
const maxReplySize = 16 << 20

// checkReplySize refuses an answer too large for the clients, with an error that says so
// and how to get a smaller one, rather than letting the client fail on the transport.
func checkReplySize(method string, resp any) error {
	m, ok := resp.(proto.Message)
	if !ok {
		return nil
	}
	if n := proto.Size(m); n > maxReplySize {
		return fmt.Errorf("%s answer of %d bytes is over the %d-byte (16 MiB) gRPC message limit of CRI clients: narrow the request with a filter (an id, a pod sandbox id, a label selector): %w",
			method, n, maxReplySize, errdefs.ErrResourceExhausted)
	}
	return nil
}
