// Package metrics is peapod's Prometheus endpoint: the per-RPC request counts and latencies
// of the gRPC ecosystem's interceptors, peapod's own families (peapod_*: pods and
// containers by state, container exits by reason, image pulls, shims, stream sessions) and
// the Go and process collectors, on one registry of its own (never the global one). It is
// the only importer of the Prometheus client libraries; the packages it reports on tell it
// through plain hooks and counting functions and never import it.
package metrics

import (
	"net/http"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
)

// Namespace prefixes every family peapod defines.
const Namespace = "peapod"

// Sources count what the gauges report, read at each scrape. Any may be nil.
type Sources struct {
	// Pods counts the pods by state ("ready", "notready").
	Pods func() map[string]int
	// Containers counts the containers by state ("created", "running", "exited", "unknown").
	Containers func() map[string]int
	// ShimsRunning counts the pod shims the daemon is connected to.
	ShimsRunning func() int
}

// Metrics holds the registry and the families fed by hooks. A nil *Metrics is valid and
// records nothing, so hooks can be wired whether metrics are on or off.
type Metrics struct {
	reg          *prometheus.Registry
	grpc         *grpcprom.ServerMetrics
	exits        *prometheus.CounterVec
	pulls        *prometheus.CounterVec
	pullBytes    prometheus.Counter
	pullDuration prometheus.Histogram
	shimsLost    prometheus.Counter
	streams      *prometheus.GaugeVec
}

// New builds the registry with every family; the gauges read from the Sources given to
// Watch, once the daemon has them.
func New() (*Metrics, error) {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		grpc: grpcprom.NewServerMetrics(
			grpcprom.WithServerCounterOptions(grpcprom.WithNamespace(Namespace)),
			grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramNamespace(Namespace),
				// CRI calls range from sub-millisecond lists to pulls of minutes.
				grpcprom.WithHistogramBuckets([]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120})),
		),
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "container_exits_total",
			Help: "Container exits this daemon recorded, by reason as the kubelet reads it (Completed, Error, OOMKilled, StartError).",
		}, []string{"reason"}),
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "image_pulls_total",
			Help: "Image pulls, by result (success, failure).",
		}, []string{"result"}),
		pullBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "image_pull_bytes_total",
			Help: "Size of the images pulled successfully (compressed layers plus config, as ImageStatus reports it).",
		}),
		pullDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "image_pull_duration_seconds",
			Help:    "How long image pulls took, successful or not.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
		shimsLost: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "shims_lost_total",
			Help: "Pod shims found gone while their containers still ran (those containers are reported exited, monitor lost).",
		}),
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "stream_sessions_open",
			Help: "Exec, attach and port-forward sessions open on the streaming server, by kind.",
		}, []string{"kind"}),
	}
	for _, reason := range []string{"Completed", "Error", "OOMKilled", "StartError"} {
		m.exits.WithLabelValues(reason)
	}
	for _, result := range []string{"success", "failure"} {
		m.pulls.WithLabelValues(result)
	}
	for _, kind := range []string{"exec", "attach", "portforward"} {
		m.streams.WithLabelValues(kind)
	}
	cs := []prometheus.Collector{
		m.grpc, m.exits, m.pulls, m.pullBytes, m.pullDuration, m.shimsLost, m.streams,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Watch registers the gauges read from src at every scrape: pods and containers by state,
// shims running.
func (m *Metrics) Watch(src Sources) error {
	if m == nil {
		return nil
	}
	return m.reg.Register(stateCollector{src: src,
		pods:       prometheus.NewDesc(Namespace+"_pods", "Pods by state.", []string{"state"}, nil),
		containers: prometheus.NewDesc(Namespace+"_containers", "Containers by state.", []string{"state"}, nil),
		shims:      prometheus.NewDesc(Namespace+"_shims_running", "Pod shims (peapod-shim) the daemon is connected to.", nil, nil),
	})
}

// ServerOptions are the gRPC interceptors that count and time every RPC by method and
// code. Put them before the CRI server's own, so that they see the codes it answers with.
func (m *Metrics) ServerOptions() []grpc.ServerOption {
	if m == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.grpc.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(m.grpc.StreamServerInterceptor()),
	}
}

// InitializeGRPC pre-creates the series of every method g serves, at zero, so that a
// method never called is reported too. Call it after the services are registered.
func (m *Metrics) InitializeGRPC(g *grpc.Server) {
	if m != nil {
		m.grpc.InitializeMetrics(g)
	}
}

// ContainerExited counts one exit (container.Options.OnExit).
func (m *Metrics) ContainerExited(reason string) {
	if m != nil {
		m.exits.WithLabelValues(reason).Inc()
	}
}

// ImagePulled records one pull (images.Config.OnPull).
func (m *Metrics) ImagePulled(size uint64, took time.Duration, err error) {
	if m == nil {
		return
	}
	m.pullDuration.Observe(took.Seconds())
	if err != nil {
		m.pulls.WithLabelValues("failure").Inc()
		return
	}
	m.pulls.WithLabelValues("success").Inc()
	m.pullBytes.Add(float64(size))
}

// ShimLost counts one lost shim (container.Options.OnShimLost).
func (m *Metrics) ShimLost() {
	if m != nil {
		m.shimsLost.Inc()
	}
}

// StreamSession counts a session of kind ("exec", "attach", "portforward") as open until
// the returned function is called.
func (m *Metrics) StreamSession(kind string) (done func()) {
	if m == nil {
		return func() {}
	}
	g := m.streams.WithLabelValues(kind)
	g.Inc()
	return g.Dec
}

// Handler serves the registry as Prometheus text (or what the scraper negotiates).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// stateCollector reads the gauges from Sources at scrape time, so they are never stale.
type stateCollector struct {
	src                     Sources
	pods, containers, shims *prometheus.Desc
}

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pods
	ch <- c.containers
	ch <- c.shims
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	states := func(desc *prometheus.Desc, count func() map[string]int, known ...string) {
		counts := map[string]int{}
		for _, s := range known {
			counts[s] = 0
		}
		if count != nil {
			for s, n := range count() {
				counts[s] += n
			}
		}
		for s, n := range counts {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(n), s)
		}
	}
	states(c.pods, c.src.Pods, "ready", "notready")
	states(c.containers, c.src.Containers, "created", "running", "exited", "unknown")
	n := 0
	if c.src.ShimsRunning != nil {
		n = c.src.ShimsRunning()
	}
	ch <- prometheus.MustNewConstMetric(c.shims, prometheus.GaugeValue, float64(n))
}
