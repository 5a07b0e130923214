package stream

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/net/websocket"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// The WebSocket subprotocols this package serves itself: remotecommand v5 (v4 plus a signal
// that closes one stream, which is how a client ends stdin; kubectl and kubelets from 1.36
// speak only v5), and port-forward's SPDY tunnelled in a WebSocket (what kubectl
// port-forward speaks over WebSockets).
const (
	protocolV5     = "v5.channel.k8s.io"
	protocolTunnel = "SPDY/3.1+portforward.k8s.io"
)

// The channels of remotecommand over WebSockets.
const (
	chanStdin = iota
	chanStdout
	chanStderr
	chanError
	chanResize
)

func offers(r *http.Request, protocol string) bool {
	if !wsstream.IsWebSocketRequest(r) {
		return false
	}
	for _, h := range r.Header.Values("Sec-Websocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if strings.TrimSpace(p) == protocol {
				return true
			}
		}
	}
	return false
}

func wantsV5(r *http.Request) bool     { return offers(r, protocolV5) }
func wantsTunnel(r *http.Request) bool { return offers(r, protocolTunnel) }

// serveV5 runs one remotecommand v5 session: run gets the client's streams, and its result
// goes back on the error channel as the status object that v4 and v5 clients decode.
func (s *Server) serveV5(w http.ResponseWriter, r *http.Request, o *remotecommand.Options, l *zap.Logger, run func(context.Context, Streams) (int, error)) {
	channel := func(on bool, t wsstream.ChannelType) wsstream.ChannelType {
		if on {
			return t
		}
		return wsstream.IgnoreChannel
	}
	channels := []wsstream.ChannelType{
		chanStdin:  channel(o.Stdin, wsstream.ReadChannel),
		chanStdout: channel(o.Stdout, wsstream.WriteChannel),
		chanStderr: channel(o.Stderr, wsstream.WriteChannel),
		chanError:  wsstream.WriteChannel,
		chanResize: channel(o.TTY, wsstream.ReadChannel),
	}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		protocolV5: {Binary: true, Channels: channels},
	})
	conn.SetIdleTimeout(s.opts.IdleTimeout)
	_, rwc, err := conn.Open(w, r)
	if err != nil {
		l.Info("websocket session not opened", zap.Error(err))
		return
	}
	defer conn.Close()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	st := Streams{Tty: o.TTY}
	if o.Stdin {
		st.Stdin = rwc[chanStdin]
	}
	if o.Stdout {
		st.Stdout = rwc[chanStdout]
	}
	if o.Stderr {
		st.Stderr = rwc[chanStderr]
	}
	if o.TTY {
		sizes := make(chan TerminalSize)
		go decodeResize(ctx, rwc[chanResize], sizes)
		st.Resize = sizes
	}
	code, err := run(ctx, st)
	if err != nil {
		l.Info("stream session failed", zap.Error(err))
	}
	if werr := json.NewEncoder(rwc[chanError]).Encode(sessionStatus(code, err)); werr != nil {
		l.Debug("write session status", zap.Error(werr))
	}
}

// decodeResize turns the client's JSON size messages into sizes until the stream or ctx ends.
func decodeResize(ctx context.Context, r io.Reader, sizes chan<- TerminalSize) {
	defer close(sizes)
	dec := json.NewDecoder(r)
	for {
		var sz TerminalSize
		if err := dec.Decode(&sz); err != nil {
			return
		}
		select {
		case sizes <- sz:
		case <-ctx.Done():
			return
		}
	}
}

// status is the Kubernetes Status object the v4 and v5 protocols end a session with.
type status struct {
	Metadata struct{}       `json:"metadata"`
	Status   string         `json:"status"`
	Message  string         `json:"message,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	Details  *statusDetails `json:"details,omitempty"`
}

type statusDetails struct {
	Causes []statusCause `json:"causes"`
}

type statusCause struct {
	Type    string `json:"reason"`
	Message string `json:"message"`
}

func sessionStatus(code int, err error) status {
	switch {
	case err != nil:
		return status{Status: "Failure", Reason: "InternalError", Message: err.Error()}
	case code != 0:
		return status{
			Status:  "Failure",
			Reason:  "NonZeroExitCode",
			Message: fmt.Sprintf("command terminated with non-zero exit code: %d", code),
			Details: &statusDetails{Causes: []statusCause{{Type: "ExitCode", Message: strconv.Itoa(code)}}},
		}
	}
	return status{Status: "Success"}
}

// serveTunnel serves port-forward's SPDY protocol carried inside a WebSocket: the WebSocket's
// binary messages are the byte stream of a SPDY connection, which the library's SPDY
// port-forward server then handles as if it had upgraded an HTTP connection itself.
func (s *Server) serveTunnel(w http.ResponseWriter, r *http.Request, podID string, o *portforward.V4Options) {
	ctx := r.Context()
	websocket.Server{
		Handshake: func(cfg *websocket.Config, _ *http.Request) error {
			cfg.Protocol = []string{protocolTunnel}
			return nil
		},
		Handler: func(ws *websocket.Conn) {
			ws.PayloadType = websocket.BinaryFrame
			defer ws.Close()
			inner := r.Clone(ctx)
			inner.Header = http.Header{}
			inner.Header.Set("Connection", "Upgrade")
			inner.Header.Set("Upgrade", "SPDY/3.1")
			inner.Header.Set("X-Stream-Protocol-Version", portforward.ProtocolV1Name)
			tw := &tunnelWriter{conn: ws, header: http.Header{}}
			portforward.ServePortForward(tw, inner, adapter{s: s, ctx: ctx}, podID, "", o,
				s.opts.IdleTimeout, s.opts.CreationTimeout, []string{portforward.ProtocolV1Name})
		},
	}.ServeHTTP(w, r)
}

// tunnelWriter is the response the SPDY upgrade inside a tunnel writes to: the WebSocket
// already switched protocols, so the upgrade's headers go nowhere and "hijacking" hands out
// the WebSocket as the connection.
type tunnelWriter struct {
	conn   net.Conn
	header http.Header
	status int
}

func (t *tunnelWriter) Header() http.Header { return t.header }

func (t *tunnelWriter) WriteHeader(code int) { t.status = code }

// Write carries an error the server answers instead of upgrading: it is all the client gets.
func (t *tunnelWriter) Write(b []byte) (int, error) { return t.conn.Write(b) }

func (t *tunnelWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return t.conn, bufio.NewReadWriter(bufio.NewReader(t.conn), bufio.NewWriter(t.conn)), nil
}
