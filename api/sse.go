package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hubdev/hub/hub"
	"github.com/hubdev/hub/hub/wire"
)

// sseKeepAlive is the interval of the comment line that keeps proxies from
// closing an idle stream (SPEC §7).
const sseKeepAlive = 15 * time.Second

// msgBodyTooBig answers a POST body over HUB_MAX_MESSAGE_BYTES with code
// 1009, the close code protocol A uses for a frame too big (SPEC §4.1).
const msgBodyTooBig = "request body too big"

// msgQueryTooLong refuses a query string over maxQueryBytes, with 414 or,
// on the SSE route, with code 1009 like a body too big.
var msgQueryTooLong = "query string longer than " + strconv.Itoa(maxQueryBytes) + " bytes"

// sse serves the SSE transport (SPEC §7): GET and POST /sse/subscribe.
// Each request is one subscription; a refusal is an error event, then the
// stream ends, since EventSource cannot read an error status.
type sse struct {
	cfg    Config
	adm    *admission
	nodeID string // the connected event's node_id
	// keepAlive is the interval of the keep-alive comment (default 15s).
	keepAlive time.Duration
}

// nodeIDer is what the lease holder offers when it is a *hub.Node.
type nodeIDer interface{ ID() string }

// newSSE returns the SSE transport; cfg needs Hub, Store and Leases. The
// node's ID comes from cfg.Leases when it has one (*hub.Node does).
func newSSE(cfg Config) *sse {
	cfg = cfg.withDefaults()
	s := &sse{cfg: cfg, adm: newAdmission(cfg), keepAlive: sseKeepAlive}
	if n, ok := cfg.Leases.(nodeIDer); ok {
		s.nodeID = n.ID()
	}
	return s
}

// handle serves GET and POST /sse/subscribe until the client goes away or
// the server ends the stream. The request is pending (see pending) until
// its subscribe is checked.
func (s *sse) handle(c echo.Context) error {
	if s.cfg.Conns != nil {
		s.cfg.Conns.wg.Add(1)
		defer s.cfg.Conns.wg.Done()
	}
	slot, ok := s.cfg.pending.take(c.Request().RemoteAddr)
	defer slot.release()
	if !ok {
		refuseSSE(c, wire.CloseTryAgain, wire.MsgTooManyPending)
		return nil
	}
	req := s.readRequest(c)
	if req.code != 0 {
		refuseSSE(c, req.code, req.msg)
		return nil
	}
	writeSSEHeader(c)
	st := s.newStream(c)
	// The header goes out before the writer may write: nothing else
	// writes on this goroutine afterwards.
	if st.framing.flush() != nil {
		return nil
	}
	st.connect()
	defer st.end()
	st.subscribe(req)
	slot.release()
	st.serve()
	return nil
}

// refuseSSE answers a request refused before it has a session: the error
// event, and the end of the stream.
func refuseSSE(c echo.Context, code int, msg string) {
	writeSSEHeader(c)
	_, _ = c.Response().Write(wire.AppendSSEError(nil, msg, code))
}

func writeSSEHeader(c echo.Context) {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set(echo.HeaderCacheControl, "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx would buffer the stream
	c.Response().WriteHeader(http.StatusOK)
}

// readRequest reads the request. A POST body must arrive within the auth
// timeout: a body sent a byte at a time must not hold the handler, its
// goroutine and a pending slot for long (issue 12).
func (s *sse) readRequest(c echo.Context) sseRequest {
	r := c.Request()
	if r.Method != http.MethodPost {
		return readSSERequest(r, s.cfg.MaxMessageBytes)
	}
	rc := http.NewResponseController(c.Response())
	// Every server connection of net/http supports read deadlines.
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.AuthTimeout))
	req := readSSERequest(r, s.cfg.MaxMessageBytes)
	if req.code == 0 {
		// The stream's reads see the client go; they must not time out.
		_ = rc.SetReadDeadline(time.Time{})
	}
	// Otherwise the deadline stays: net/http reads the rest of a body
	// before it answers, and that read must end too.
	return req
}

// sseRequest is a subscribe as an SSE request states it.
type sseRequest struct {
	key      keyClaim
	channels []string // from a POST body
	// channelList is the channels query parameter of a GET, split only
	// once the key is known to be good (see channelNames).
	channelList string
	since       string // Last-Event-ID, else since; "" when neither
	snapshot    bool   // snapshot=true, unless Last-Event-ID resumes
	filter      []byte // the filter's JSON, from the body or the filter parameter
	// A refusal found while reading the request: the error event's code
	// and message; code 0 when there is none.
	code int
	msg  string
}

// readSSERequest reads the key, channels and since of GET (query) or POST
// (JSON body) /sse/subscribe. A refusal is recorded in the order of SPEC
// §4 step 7; a query string too long, then a malformed body, come before
// all.
func readSSERequest(r *http.Request, maxBytes int) sseRequest {
	if len(r.URL.RawQuery) > maxQueryBytes {
		return sseRequest{code: wire.CloseTooBig, msg: msgQueryTooLong}
	}
	q := r.URL.Query()
	var body wire.Request
	var out sseRequest
	if r.Method == http.MethodPost {
		var ok bool
		if body, out.code, out.msg, ok = readSSEBody(r.Body, maxBytes); !ok {
			return out
		}
		out.channels, out.since, out.snapshot, out.filter = body.Channels, body.Since, body.Snapshot, body.Filter
	} else {
		out.channelList = strings.Join(q["channels"], ",")
		out.since = q.Get("since")
		out.snapshot = q.Get("snapshot") == "true"
		if f := q.Get("filter"); f != "" {
			out.filter = []byte(f)
		}
	}
	// EventSource reconnects to the same URL with Last-Event-ID: the
	// position it saw last wins over the since it started from (SPEC §7),
	// and over a snapshot, which it has (only snapshot_end and broadcasts
	// carry ids).
	if id := strings.TrimSpace(r.Header.Get("Last-Event-ID")); id != "" {
		out.since, out.snapshot = id, false
	}
	// The key may come in Authorization (Bearer or bare, as SPEC §4.4),
	// X-API-Key, the apiKey query parameter (EventSource sets no headers)
	// or the body.
	out.key, _ = headerClaim(r.Header, true, q.Get("apiKey"), body.APIKey)
	return out
}

// readSSEBody decodes a POST body; an empty one is an empty request, so
// that the key may come in a header alone (seed 000).
func readSSEBody(body io.Reader, maxBytes int) (req wire.Request, code int, msg string, ok bool) {
	data, err := io.ReadAll(io.LimitReader(body, int64(maxBytes)+1))
	switch {
	case isTimeout(err):
		return req, wire.ClosePolicy, wire.MsgSubscribeTimeout, false
	case err != nil:
		return req, wire.ClosePolicy, wire.MsgInvalidMessage, false
	case len(data) > maxBytes:
		return req, wire.CloseTooBig, msgBodyTooBig, false
	case len(bytes.TrimSpace(data)) == 0:
		return wire.Request{Type: wire.TypeSubscribe}, 0, "", true
	}
	if req, err = wire.DecodeSSE(data); err != nil {
		return req, wire.ClosePolicy, wire.MsgInvalidMessage, false
	}
	return req, 0, "", true
}

// sseStream is one SSE response. The handler goroutine owns it; the hub
// calls its Send and Close, which hand over to its writer.
type sseStream struct {
	s       *sse
	id      string // the connection's and its lease's ID
	r       *http.Request
	out     *writer
	framing *sseFraming
	sess    *hub.Session
	log     *slog.Logger
	lease   *lease // nil until admitted
}

func (s *sse) newStream(c echo.Context) *sseStream {
	id := rand.Text()
	r := c.Request()
	st := &sseStream{s: s, id: id, r: r, log: s.cfg.Logger.With("conn", id, "remote", r.RemoteAddr)}
	st.framing = &sseFraming{w: c.Response(), rc: http.NewResponseController(c.Response()), timeout: s.cfg.WriteTimeout, log: st.log}
	st.out = newWriter(st.framing, nil)
	return st
}

// connect starts the stream's hub session.
func (st *sseStream) connect() {
	st.sess = st.s.cfg.Hub.Connect(hub.ConnectParams{ID: st.id, Conn: st, Protocol: hub.ProtocolSSE, Credits: writerCredits})
	st.out.attach(st.sess)
}

// Send implements hub.Conn.
func (st *sseStream) Send(frames ...[]byte) { st.out.send(frames) }

// Close implements hub.Conn: the error event ends the stream (SPEC §7).
func (st *sseStream) Close(cl wire.Close) {
	st.out.close(wire.AppendSSEError(nil, cl.Reason, cl.Code), cl)
}

// sseFraming writes a writer's batches as SSE events, flushing after each.
type sseFraming struct {
	w       io.Writer
	rc      *http.ResponseController
	timeout time.Duration
	log     *slog.Logger
}

// write implements framing: the events, a keep-alive comment when kicked
// with nothing else to write, and the error event that ends the stream.
// A write blocked past the write timeout means the socket is jammed (SPEC
// §6); the writer then drops the stream.
func (f *sseFraming) write(b outBatch) error {
	if len(b.frames) == 0 && b.end == nil && !b.kicked {
		return nil
	}
	f.deadline()
	if err := f.writeAll(b); err != nil {
		f.log.Debug("SSE write failed", "err", err)
		return err
	}
	return f.flush()
}

// flush sends what is written.
func (f *sseFraming) flush() error {
	f.deadline()
	err := f.rc.Flush()
	if err != nil {
		f.log.Debug("SSE flush failed", "err", err)
	}
	return err
}

func (f *sseFraming) deadline() {
	// Not every ResponseWriter supports deadlines; without one a jammed
	// socket blocks until the client goes away.
	_ = f.rc.SetWriteDeadline(time.Now().Add(f.timeout))
}

func (f *sseFraming) writeAll(b outBatch) error {
	for _, fr := range b.frames {
		if _, err := f.w.Write(fr); err != nil {
			return err
		}
	}
	var last []byte
	switch {
	case b.end != nil:
		last = b.end.last
	case b.kicked && len(b.frames) == 0:
		last = wire.AppendSSEKeepAlive(nil)
	}
	if last == nil {
		return nil
	}
	_, err := f.w.Write(last)
	return err
}

// closed implements framing; the handler ends the response.
func (f *sseFraming) closed() {}

// subscribe admits the request (SPEC §4 step 7) and subscribes the
// session. A refusal closes the session: the error event then ends the
// stream. An unknown channel or an invalid since, which leave a protocol
// A connection open, end the stream too with 1008: an SSE stream cannot
// take another subscribe.
func (st *sseStream) subscribe(req sseRequest) {
	ad, ref := st.s.adm.admit(st.r.Context(), admitRequest{
		conn: connInfo{id: st.id, remote: st.r.RemoteAddr, protocol: hub.ProtocolSSE},
		key:  req.key, since: req.since,
		sub: &subRequest{sess: st.sess, channels: req.channels, channelList: req.channelList, snapshot: req.snapshot, filter: req.filter,
			reply: func(ad admitted) []byte { return wire.AppendSSEConnected(nil, st.s.nodeID, ad.subscribed(1)) }},
	})
	if ref == nil {
		st.lease = ad.lease
		return
	}
	if ref.kind == refusedUnavailable && !errors.Is(ref.err, context.Canceled) {
		st.log.Error("SSE subscribe failed", "err", ref.err)
	}
	st.sess.Close(ref.close())
}

// serve keeps the stream open while its writer writes what the hub hands
// over, and kicks the writer for a keep-alive comment every keepAlive
// (SPEC §7), until the stream ends or the client goes away.
func (st *sseStream) serve() {
	keepAlive := time.NewTicker(st.s.keepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case <-keepAlive.C:
			st.out.kick()
		case <-st.out.done:
			return
		case <-st.r.Context().Done():
			return
		}
	}
}

// end lets go of the session and the lease once the stream ends. No write
// is under way after it: the response is not touched once the handler
// returned.
func (st *sseStream) end() {
	st.out.stop()
	st.out.wait()
	// A deadline would outlive the request on a kept-alive connection.
	_ = st.framing.rc.SetWriteDeadline(time.Time{})
	st.sess.Gone()
	st.lease.release(st.r.Context())
}
