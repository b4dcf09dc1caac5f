package api

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub/hubtest"
	"github.com/hubdev/hub/store"
)

// chromiumPath is where Debian's chromium package puts the browser; CI
// installs it (.ci/run).
const chromiumPath = "/usr/bin/chromium"

// browserWait bounds each wait on the page; the machine may be slow.
const browserWait = 60 * time.Second

func TestDashboardFiles(t *testing.T) {
	t.Parallel()
	e := echo.New()
	dashboardRoutes(e)
	for _, tc := range []struct {
		path, status, typ, body string
	}{
		{"/", "200", "text/html; charset=utf-8", `<script type="module" src="/dashboard/app.js">`},
		{"/dashboard/", "200", "text/html; charset=utf-8", "<title>"},
		{"/dashboard/app.js", "200", "text/javascript; charset=utf-8", "function connect()"},
		{"/dashboard/style.css", "200", "text/css; charset=utf-8", ".banner"},
		{"/dashboard/nope.js", "404", "", ""},
		{"/dashboard/../dashboard.go", "404", "", ""},
		{"/dashboard/%2e%2e/dashboard.go", "404", "", ""},
	} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		require.Equal(t, tc.status, fmt.Sprint(rec.Code), tc.path)
		if tc.typ != "" {
			require.Equal(t, tc.typ, rec.Header().Get("Content-Type"), tc.path)
			require.Contains(t, rec.Body.String(), tc.body, tc.path)
			csp := cspDirectives(t, rec.Header().Get("Content-Security-Policy"))
			require.Equal(t, "'none'", csp["default-src"], tc.path)
			require.Equal(t, "'self'", csp["connect-src"], "%s: fetch and WebSocket to the hub only", tc.path)
			require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"), tc.path)
		}
	}
}

// cspDirectives splits a Content-Security-Policy into its directives, by
// name; it fails t if a name repeats (browsers would use the first).
func cspDirectives(t *testing.T, policy string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for d := range strings.SplitSeq(policy, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		if name == "" {
			continue
		}
		_, dup := m[name]
		require.False(t, dup, "directive %s repeats in %q", name, policy)
		m[name] = strings.TrimSpace(value)
	}
	return m
}

// dashBundle is a hub with the dashboard, served on a listener whose
// connections the test can cut.
type dashBundle struct {
	pool  *pgxpool.Pool
	store *store.Store
	url   string
	ln    *cutListener
	e     *echo.Echo
}

const dashAdminToken = "dashboard-test-admin-token"

func setupDashboard(t *testing.T) *dashBundle {
	t.Helper()
	env := hubtest.Start(t, hubtest.Options{NodeID: "node-dash"})
	b := &dashBundle{pool: env.Pool, store: env.Store}
	h, node, log := env.Hub, env.Node, env.Log

	conns := &Conns{}
	b.e = New(Config{
		Ready: func(context.Context) error { return nil }, AdminToken: dashAdminToken, Admin: b.store,
		Hub: h, Store: b.store, Leases: node, Conns: conns, Logger: log,
	})
	if !hasRoute(b.e, http.MethodGet, "/") { // until routes() registers the dashboard
		dashboardRoutes(b.e)
	}
	srv := httptest.NewUnstartedServer(b.e)
	b.ln = &cutListener{Listener: srv.Listener}
	srv.Listener = b.ln
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { // after the browser closed its connection
		ctx, cancel := context.WithTimeout(context.Background(), browserWait)
		defer cancel()
		require.NoError(t, conns.Wait(ctx))
	})
	b.url = srv.URL
	return b
}

func hasRoute(e *echo.Echo, method, path string) bool {
	for _, r := range e.Routes() {
		if r.Method == method && r.Path == path {
			return true
		}
	}
	return false
}

func (b *dashBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

func (b *dashBundle) orderID(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(context.Background(), sql, args...).Scan(&id))
	return id
}

// cutListener remembers its connections so that the test can cut them all,
// as a network failure would, including hijacked WebSocket connections.
type cutListener struct {
	net.Listener
	mu    sync.Mutex // guards conns
	conns []net.Conn
}

func (l *cutListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *cutListener) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

// pageErrors collects what the page logs as errors: console.error and
// console.assert calls, uncaught exceptions, and browser log entries of
// level error other than network ones (a route of the admin API that is
// not there yet answers 404, which the page shows and Chromium logs).
type pageErrors struct {
	mu   sync.Mutex // guards list
	list []string
}

func (p *pageErrors) listen(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var args []string
		for _, a := range ev.Args {
			args = append(args, string(a.Value)+a.Description)
		}
		msg = "console." + string(ev.Type) + ": " + strings.Join(args, " ")
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg = "exception: " + d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level != cdplog.EntryLevelError || ev.Entry.Source == cdplog.EntrySourceNetwork {
			return
		}
		msg = "log " + string(ev.Entry.Source) + ": " + ev.Entry.Text
	default:
		return
	}
	p.mu.Lock()
	p.list = append(p.list, msg)
	p.mu.Unlock()
}

func (p *pageErrors) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.list...)
}

// newBrowser starts a headless Chromium for t, stopped when t ends. The
// flags keep it off the network, which is closed.
func newBrowser(t *testing.T, errs *pageErrors) context.Context {
	t.Helper()
	_, err := os.Stat(chromiumPath)
	require.NoError(t, err, "the dashboard test needs Chromium: apt-get install chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1100),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithListener(errs.listen), chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		bcancel()
		acancel() // waits for the browser to exit
	})
	// The first run starts the browser and its tab, which live as long as
	// the context it gets: bctx, not the timeouts of the steps.
	require.NoError(t, chromedp.Do(bctx), "start Chromium")
	return bctx
}

// do runs the actions with a timeout.
func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(wctx, actions...); err != nil {
		// What the page says helps more than the timeout.
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		page, _ := chromedp.Run(sctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%s: %v\npage text:\n%s", what, err, page)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, browserWait)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(t, err, sel)
	return s
}

// TestDashboardBrowser drives the page in Chromium: it ignores a key in the
// query string, subscribes with the key from the URL fragment under its
// connect-src 'self' policy, shows a change of an order with its old value,
// resumes after a network cut without losing what was written meanwhile,
// shows the admin view and the emergency banner, and logs no error.
func TestDashboardBrowser(t *testing.T) {
	t.Parallel()
	b := setupDashboard(t)
	ctx := context.Background()
	_, err := b.store.ClientCreate(ctx, "acme")
	require.NoError(t, err)
	_, key, err := b.store.APIKeyCreate(ctx, store.APIKeyCreateParams{Client: "acme", Label: "dashboard"})
	require.NoError(t, err)

	errs := &pageErrors{}
	browser := newBrowser(t, errs)

	// A key in the query string is not used (it has reached the server's
	// and any proxy's log already), and it leaves the address bar; the
	// page's other parameters stay. The address changing shows that the
	// page's script has run.
	rctx, cancel := context.WithTimeout(browser, browserWait)
	defer cancel()
	resp, err := chromedp.RunResponse(rctx, chromedp.Navigate(b.url+"/?key="+key+"&x=1"))
	require.NoError(t, err)
	policy, _ := resp.Headers["Content-Security-Policy"].(string)
	require.Equal(t, "'self'", cspDirectives(t, policy)["connect-src"], "the policy the browser got")
	do(t, browser, "the page drops ?key=", chromedp.Poll[chromedp.Void](`location.search === "?x=1"`))
	type pageState struct {
		State  string  `json:"state"`
		Input  string  `json:"input"`
		Stored *string `json:"stored"`
	}
	st, err := chromedp.Run(browser, chromedp.Evaluate[pageState](
		`({
			state: document.querySelector("#state").dataset.state,
			input: document.querySelector("#api-key").value,
			stored: localStorage.getItem("hub.key"),
		})`))
	require.NoError(t, err)
	require.Equal(t, pageState{State: "idle"}, st, "the page ignores ?key=")

	// Rows written before the page opens are on its boards at once: it
	// subscribes with a snapshot (SPEC §10); another client's are not.
	early := b.orderID(t, `INSERT INTO orders (client, account_id, exchange, order_status) VALUES ('acme', 'early', 'betfair', 'OPEN') RETURNING order_id`)
	otherEarly := b.orderID(t, `INSERT INTO orders (client, account_id, exchange, order_status) VALUES ('other', 'X', 'betfair', 'OPEN') RETURNING order_id`)
	b.exec(t, `INSERT INTO accounts (account_id, client, venue, balance, currency) VALUES ('early-acct', 'acme', 'betfair', 250, 'GBP')`)

	// Under connect-src 'self' (no ws: or wss:), the page subscribes:
	// Chromium lets 'self' match ws: to the page's host and port, as CSP
	// Level 3 says.
	do(t, browser, "load the page and subscribe",
		chromedp.Navigate(b.url+"/#key="+key+"&admin="+dashAdminToken),
		chromedp.WaitVisible(chromedp.CSS(`#state[data-state="subscribed"]`)),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#board-orders tr[data-key="%d"][data-op="SNAPSHOT"]`, early))),
		chromedp.WaitVisible(chromedp.CSS(`#board-accounts tr[data-key="early-acct"][data-op="SNAPSHOT"]`)),
	)
	require.Contains(t, text(t, browser, fmt.Sprintf(`#board-orders tr[data-key="%d"]`, early)), "OPEN")
	shown, err := chromedp.Run(browser, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll('#board-orders tr[data-key="%d"]').length`, otherEarly)))
	require.NoError(t, err)
	require.Zero(t, shown, "another client's row is not in the snapshot")
	loc, err := chromedp.Run(browser, chromedp.Location())
	require.NoError(t, err)
	require.NotContains(t, loc, key, "the key leaves the address bar")

	// Another client's order is never shown; acme's change is, with its old
	// values. The other order commits first, so once acme's update is on
	// the page the other one would be too.
	other := b.orderID(t, `INSERT INTO orders (client, account_id, exchange, order_status) VALUES ('other', 'X', 'betfair', 'OPEN') RETURNING order_id`)
	id := b.orderID(t, `
		INSERT INTO orders (client, account_id, fixture_id, exchange, order_status, matched_status, order_cents, order_stake, matched_stake)
		VALUES ('acme', 'pm-1', 'id1000000861624412', 'polymarket', 'OPEN', 'UNMATCHED', 47, 100, 0) RETURNING order_id`)
	b.exec(t, `UPDATE orders SET order_status = 'FILLED', matched_status = 'MATCHED', matched_stake = 100, matched_at = now() WHERE order_id = $1`, id)
	row := fmt.Sprintf(`#board-orders tr[data-key="%d"][data-op="UPDATE"] td.changed`, id)
	do(t, browser, "the order's update",
		chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.WaitVisible(chromedp.CSS(`#stream .event[data-channel="orders"][data-op="UPDATE"] .change ins`)),
	)
	change := text(t, browser, `#stream .event[data-channel="orders"][data-op="UPDATE"] .event-body`)
	require.Contains(t, change, "orderStatus")
	require.Contains(t, change, "OPEN")
	require.Contains(t, change, "FILLED")
	require.Contains(t, text(t, browser, fmt.Sprintf(`#board-orders tr[data-key="%d"]`, id)), "FILLED / MATCHED")
	n, err := chromedp.Run(browser, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll('#board-orders tr[data-key="%d"]').length`, other)))
	require.NoError(t, err)
	require.Zero(t, n, "another client's order is not shown")

	// A network cut: the page reconnects and resumes after the last event it
	// showed, so the change written meanwhile arrives.
	b.ln.cut()
	b.exec(t, `INSERT INTO scores (fixture_id, live, current_period, current_minute, scores) VALUES ('id1000000861624418', true, '1H', 12, '{"home":0,"away":0}')`)
	b.exec(t, `UPDATE scores SET current_minute = 13, scores = '{"home":1,"away":0}', updated_at = now() WHERE fixture_id = 'id1000000861624418'`)
	do(t, browser, "the score written during the cut",
		chromedp.WaitVisible(chromedp.CSS(`#board-scores tr[data-key="id1000000861624418"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#state[data-state="subscribed"]`)),
	)
	require.Contains(t, text(t, browser, `#board-scores tr[data-key="id1000000861624418"]`), "1 – 0")
	require.Contains(t, text(t, browser, `#notice`), "resumed after")

	// The admin view lists the clients and their keys.
	do(t, browser, "the admin view",
		chromedp.WaitVisible(chromedp.CSS(`#admin-clients tr[data-key="acme"]`)),
	)
	require.Contains(t, text(t, browser, `#admin-clients tr[data-key="acme"]`), "dashboard")

	// The emergency switch, or the row written by SQL while this node has
	// no POST /admin/emergency.
	const reason = "feed outage at betfair"
	if hasRoute(b.e, http.MethodPost, "/admin/emergency") {
		do(t, browser, "flip the emergency switch",
			chromedp.SetValue(chromedp.CSS(`#emergency-reason-input`), reason),
			chromedp.Click(chromedp.CSS(`#emergency-toggle`)),
		)
	} else {
		t.Log("POST /admin/emergency is not registered: the emergency row is written by SQL")
		b.exec(t, `UPDATE emergency SET emergency = true, reason = $1, triggered_at = now()`, reason)
	}
	do(t, browser, "the emergency banner",
		chromedp.WaitVisible(chromedp.CSS(`#emergency-banner`)),
		chromedp.WaitVisible(chromedp.CSS(`#stream .event[data-channel="emergency"]`)),
	)
	require.Contains(t, text(t, browser, `#emergency-banner`), reason)

	// A few more rows, so that the picture shows every board.
	b.exec(t, `INSERT INTO accounts (account_id, client, venue, balance, currency) VALUES ('pm-1', 'acme', 'polymarket', 1000, 'USD')`)
	b.exec(t, `UPDATE accounts SET balance = 953, updated_at = now() WHERE account_id = 'pm-1'`)
	b.exec(t, `INSERT INTO bets (order_id, client, account_id, bookmaker, placed_price, placed_stake, bet_status, placed_at) VALUES ($1, 'acme', 'pin-1', 'pinnacle', 2.08, 47, 'PLACED', now())`, id)
	do(t, browser, "the balance", chromedp.WaitVisible(chromedp.CSS(`#board-accounts tr[data-key="pm-1"]`)))

	shot, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	dir := cmp.Or(os.Getenv("HUB_SCREENSHOT_DIR"), t.TempDir())
	path := filepath.Join(dir, "dashboard.png")
	require.NoError(t, os.WriteFile(path, shot, 0o644))
	t.Logf("screenshot: %s", path)

	require.Empty(t, errs.all(), "the page logged errors")
}
