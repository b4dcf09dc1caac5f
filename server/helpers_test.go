package main

import (
	"database/sql"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

func openSQL(t *testing.T, pool *pgxpool.Pool) *sql.DB {
	t.Helper()
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { db.Close() })
	return db
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// node is a hub process of a cluster started by startNodes.
type node struct {
	*hubProcess
	url string // http://host:port
}

// wsURL is the node's protocol A endpoint.
func (n node) wsURL() string { return "ws" + strings.TrimPrefix(n.url, "http") + "/ws/subscribe" }

// startNodes runs one hub process of bin per ID on the database u, and
// returns them once each is ready.
func startNodes(t *testing.T, bin, u string, ids ...string) []node {
	t.Helper()
	env := []string{"DATABASE_URL=" + u, "HUB_ADMIN_TOKEN=" + testAdminToken, "HUB_ADDR=127.0.0.1:0"}
	nodes := make([]node, len(ids))
	for i, id := range ids {
		nodes[i].hubProcess = startHub(t, bin, append(env, "HUB_NODE_ID="+id)...)
	}
	for i := range nodes {
		nodes[i].url = nodes[i].stdout.waitLine(t, "listening on", nodes[i].exited)
		waitOK(t, nodes[i].url+"/readyz")
	}
	return nodes
}
