package store_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store"
)

// capture7 is migration 7's capture, which built the wire form in the
// trigger, made to record into public.wire7 instead of hub.events.
func capture7(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("../migrations/0007_doorbell.up.sql")
	require.NoError(t, err)
	fn := regexp.MustCompile(`(?s)CREATE OR REPLACE FUNCTION hub\.capture\(\).*?\n\$\$;`).Find(src)
	require.NotNil(t, fn)
	const insert = "INSERT INTO hub.events (channel, op, client, subject, payload, old)"
	require.Contains(t, string(fn), insert)
	s := strings.Replace(string(fn), "hub.capture()", "hub.capture7()", 1)
	return strings.Replace(s, insert, "INSERT INTO public.wire7 (channel, op, client, subject, payload, old)", 1)
}

// kindsSQL is a table with a column of most types and of awkward names:
// two that share a wire key (a_b, aB), underscores at both ends, quotes,
// non-ASCII, timestamps of each kind, arrays and domains of them.
const kindsSQL = `
	CREATE DOMAIN stamp AS timestamptz;
	CREATE TABLE kinds (
	    id int PRIMARY KEY, tenant text, a_b int, "aB" int, _odd_name_ text, period1_home int,
	    "quoted""name" text, "é_é" text,
	    at timestamptz, at_ts timestamp, on_day date, at_time time, at_timetz timetz, span interval,
	    ats timestamptz[], ats2 timestamptz[], stamp stamp, stamps stamp[], tss timestamp[],
	    doc jsonb, doc_json json, amount numeric, ratio float8, flag bool, blob bytea, uid uuid,
	    pt point, tags text[]
	);
	SELECT hub.attach('kinds', 'kinds', 'tenant', 'id', '{INSERT,UPDATE,DELETE}');`

// kindsRows inserts rows whose timestamps cover infinity, years BC, the
// turn from 1 BC to 1 AD, local mean time (offsets with seconds), five-
// and six-digit years and fractions of every length, written in the
// session's TimeZone; base sets the ids apart.
func kindsRows(base int) string {
	return fmt.Sprintf(`
	INSERT INTO kinds
	SELECT %[1]d + g, CASE WHEN g %% 7 = 0 THEN 'beta' ELSE 'acme' END, g, g %% 3, 'odd' || g, g,
	       'q"' || g, 'é' || g,
	       CASE g %% 12
	           WHEN 0 THEN 'infinity' WHEN 1 THEN '-infinity'
	           WHEN 2 THEN '0044-03-15 12:00:00.5 BC' WHEN 3 THEN '0001-12-31 23:30:00 BC'
	           WHEN 4 THEN '0001-01-01 00:10:00' WHEN 5 THEN '1850-06-01 12:00:00'
	           WHEN 6 THEN '294276-12-31 22:00:00.999999+00' WHEN 7 THEN '4714-11-24 00:00:00+00 BC'
	           WHEN 8 THEN '12345-06-07 08:09:10.12'
	           ELSE timestamptz '1990-01-01' + random() * interval '60 years' END,
	       CASE g %% 5 WHEN 0 THEN 'infinity' WHEN 1 THEN '0044-03-15 12:00:00 BC'
	           ELSE timestamp '1990-01-01' + random() * interval '60 years' END,
	       date '2026-02-15' + g, time '10:30:05.5' + g * interval '1 minute', timetz '10:30:05+05:30',
	       g * interval '1 hour 0.5 sec',
	       ARRAY[now(), NULL, 'infinity', '1850-06-01 12:00:00']::timestamptz[],
	       CASE WHEN g %% 2 = 0 THEN ARRAY[[now(), now() + interval '1 day'], [now(), NULL]]::timestamptz[] END,
	       now() - g * interval '1 day', ARRAY[now()]::stamp[], ARRAY[localtimestamp, 'infinity']::timestamp[],
	       jsonb_build_object('snake_key', g, 'at', '2026-02-15T10:30:05+08:00', 'nested', jsonb_build_array(1, 'a"b', NULL)),
	       '{"b": 1,  "a": [1, 2]}', round((random() * 1000)::numeric, (g %% 4)), random(), g %% 2 = 0,
	       '\x00ff', ('00000000-0000-0000-0000-00000000000' || (g %% 10))::uuid, point(g, g / 3.0), ARRAY['x', NULL, 'y"z']
	FROM generate_series(1, 48) g`, base)
}

// The wire form the store builds when it reads a raw row (migration 8) is
// byte for byte what migration 7's capture stored: every write goes
// through both captures, the old one into a table of the test's own, and
// each event read is compared with its twin, in writers' sessions of
// several time zones, through INSERT, UPDATE (changes, no-ops, and types
// without equality), DELETE, and columns added after the attach.
func TestCaptureWireFormAsMigration7(t *testing.T) {
	b := setupCapture(t)
	b.exec(t,
		`CREATE TABLE wire7 (n bigint GENERATED ALWAYS AS IDENTITY, channel text, op text, client text, subject text, payload jsonb, old jsonb)`,
		capture7(t),
		kindsSQL,
		`DO $$ BEGIN
		     EXECUTE format('CREATE TRIGGER wire7 AFTER INSERT OR UPDATE OR DELETE ON kinds FOR EACH ROW EXECUTE FUNCTION hub.capture7(%L, %L, %L, %L)',
		                    'kinds', 'tenant', 'id', hub.column_map('kinds'));
		 END $$`,
	)
	zones := []string{"UTC", "Asia/Shanghai", "America/New_York", "Asia/Kolkata", "Pacific/Chatham", "Europe/Amsterdam", "America/St_Johns"}
	for i, zone := range zones {
		b.exec(t, "SET TimeZone = '"+zone+"'", `SELECT setseed(0.25)`, kindsRows(i*1000),
			fmt.Sprintf(`UPDATE kinds SET at = at + interval '1 hour 0.25 sec', amount = amount * 2 WHERE id > %d AND id %% 3 = 0`, i*1000),
			fmt.Sprintf(`UPDATE kinds SET doc = doc || '{"k": 1}', ats = array_append(ats, now()), pt = point(0, 0), doc_json = '[]' WHERE id > %d AND id %% 5 = 0`, i*1000),
			`UPDATE kinds SET flag = flag, amount = amount + 0.0`, // no-ops, to the jsonb diff
			fmt.Sprintf(`DELETE FROM kinds WHERE id > %d AND id %% 11 = 0`, i*1000),
		)
	}
	b.exec(t,
		`ALTER TABLE kinds ADD COLUMN later_at timestamptz, ADD COLUMN later_ts timestamp, ADD COLUMN later_n int`,
		`SET TimeZone = 'Asia/Shanghai'`,
		`UPDATE kinds SET later_at = now(), later_ts = localtimestamp, later_n = id WHERE id % 4 = 0`,
	)

	var events []store.Event
	for _, e := range b.all(t) {
		if e.Channel == "kinds" {
			events = append(events, e)
		}
	}
	type twin struct {
		Channel, Op, Client, Subject string
		Payload, Old                 []byte
	}
	rows, err := b.pool.Query(context.Background(), `SELECT channel, op, client, subject, payload, old FROM wire7 ORDER BY n`)
	require.NoError(t, err)
	want, err := pgx.CollectRows(rows, pgx.RowToStructByPos[twin])
	require.NoError(t, err)
	require.Greater(t, len(want), 500)
	require.Len(t, events, len(want))
	for i, e := range events {
		w := want[i]
		require.Equal(t, []string{w.Channel, w.Op, w.Client, w.Subject}, []string{e.Channel, e.Op, e.Client, e.Subject}, "event %d", i)
		require.Equal(t, string(w.Payload), string(e.Payload), "payload of event %d (%s)", i, e.Op)
		require.Equal(t, string(w.Old), string(e.Old), "old of event %d (%s)", i, e.Op)
	}
}

// A writer whose session is in another time zone records its offsets in
// hub.events (the row is raw), and every reader of the log hands out UTC
// with Z: the reader's pages, the catch-up and the admin listing.
func TestCaptureWriterTimeZone(t *testing.T) {
	b := setupCapture(t)
	b.exec(t,
		`SET TimeZone = 'Asia/Shanghai'`,
		`INSERT INTO orders (client, account_id, matched_at, created_at) VALUES ('acme', 'a1', '2026-02-15 10:30:05.25+00', '2026-02-15 18:30:05+08')`,
		`UPDATE orders SET matched_at = '2026-02-15 11:00:00Z'`,
	)
	ctx := context.Background()
	var raw string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT payload::text FROM hub.events WHERE raw AND op = 'INSERT'`).Scan(&raw))
	require.Contains(t, raw, `"matched_at": "2026-02-15T18:30:05.25+08:00"`, "the writer's offset, the column's name")

	check := func(reader string, events []store.Event) {
		t.Helper()
		require.Len(t, events, 2, reader)
		require.Equal(t, "2026-02-15T10:30:05.25Z", object(t, events[0].Payload)["matchedAt"], reader)
		require.Equal(t, "2026-02-15T10:30:05Z", object(t, events[0].Payload)["createdAt"], reader)
		require.Equal(t, "2026-02-15T11:00:00Z", object(t, events[1].Payload)["matchedAt"], reader)
		require.Equal(t, map[string]any{"matchedAt": "2026-02-15T10:30:05.25Z"}, object(t, events[1].Old), reader)
	}
	check("EventsAfter", b.all(t))
	page, err := b.store.EventsFor(ctx, store.EventFilter{Client: "acme"}, 100, 1<<20)
	require.NoError(t, err)
	check("EventsFor", page.Events)
	listed, err := b.store.EventList(ctx, store.EventListParams{Limit: 100})
	require.NoError(t, err)
	check("EventList", listed)
}

// Rows that are not raw (written before migration 8, or by hand) are
// already in wire form and are handed out as they are.
func TestCaptureOlderRowsUntouched(t *testing.T) {
	b := setupCapture(t)
	const wire = `{"client": "acme", "orderId": 1, "matchedAt": "2026-02-15T10:30:05+08:00", "created_at": "x"}`
	b.exec(t, `INSERT INTO hub.events (channel, op, client, payload, old) VALUES ('orders', 'UPDATE', 'acme', '`+wire+`', '{"matched_at": null}')`)
	events := b.all(t)
	require.Len(t, events, 1)
	require.Equal(t, wire, string(events[0].Payload))
	require.Equal(t, `{"matched_at": null}`, string(events[0].Old))
}

// An UPDATE that leaves the row identical does not even call the capture
// (the WHEN of migration 8's update trigger), whatever the column types:
// json, point and xml have no equality, which a comparison of the rows
// with IS DISTINCT FROM would need and fail the writer for. A value
// written differently but equal (1.0, 1.00) calls it and records nothing.
// Partitions inherit the trigger, and dropped columns are no matter.
func TestCaptureUpdateSkipsIdenticalRows(t *testing.T) {
	b := setupCapture(t)
	b.exec(t,
		`CREATE TABLE shapes (id int PRIMARY KEY, j json, p point, x xml, n numeric, gone text)`,
		`ALTER TABLE shapes DROP COLUMN gone`,
		`SELECT hub.attach('shapes', 'shapes', NULL, 'id', '{UPDATE}')`,
		`CREATE TABLE ledger (id int, client text, n int) PARTITION BY RANGE (id)`,
		`CREATE TABLE ledger_1 PARTITION OF ledger FOR VALUES FROM (0) TO (100)`,
		`SELECT hub.attach('ledger', 'ledger', 'client', NULL, '{INSERT,UPDATE}')`,
		`INSERT INTO shapes VALUES (1, '{"a": 1}', '(1,2)', '<a/>', 1.0)`,
		`INSERT INTO ledger VALUES (1, 'acme', 1)`,
		`UPDATE shapes SET j = j, p = p, x = x, n = n`,
		`UPDATE shapes SET n = 1.00`,
		`UPDATE ledger SET n = n`,
		`UPDATE shapes SET p = point(1, 3)`,
		`UPDATE ledger SET n = 2`,
	)
	events := b.all(t)
	require.Len(t, events, 3)
	require.Equal(t, []string{"ledger", "INSERT"}, []string{events[0].Channel, events[0].Op})
	require.Equal(t, []string{"shapes", "UPDATE", `{"p": "(1,2)"}`}, []string{events[1].Channel, events[1].Op, string(events[1].Old)})
	require.Equal(t, []string{"ledger", "UPDATE", `{"n": 1}`}, []string{events[2].Channel, events[2].Op, string(events[2].Old)})

	rows, err := b.pool.Query(context.Background(), `SELECT tgrelid::regclass::text || ' ' || tgname || ' ' || (tgqual IS NOT NULL)::text
		FROM pg_trigger WHERE tgrelid IN ('orders'::regclass, 'scores'::regclass) ORDER BY 1`)
	require.NoError(t, err)
	triggers, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"orders hub_capture false", "orders hub_capture_update true", "scores hub_capture true"}, triggers,
		"hub_capture takes INSERT and DELETE, or UPDATE alone")
}

// The store learns a table's columns once and keeps them: a column added
// after that is looked up when a row first names it, and a column dropped
// keeps its key and conversion for the rows written before.
func TestCaptureColumnsChangeAfterRead(t *testing.T) {
	b := setupCapture(t)
	b.exec(t, `INSERT INTO accounts (account_id, client) VALUES ('a1', 'acme')`, `UPDATE accounts SET balance = 1`)
	require.Len(t, b.all(t), 1, "the columns are known now")

	b.exec(t,
		`ALTER TABLE accounts ADD COLUMN audited_at timestamptz`,
		`SET TimeZone = 'Asia/Shanghai'`,
		`UPDATE accounts SET audited_at = '2026-03-01 20:00:00.5', balance = 2`,
	)
	events := b.all(t)
	require.Len(t, events, 2)
	want := `{"balance": 1, "auditedAt": null}`
	require.Equal(t, want, string(events[1].Old))
	require.Equal(t, "2026-03-01T12:00:00.5Z", object(t, events[1].Payload)["auditedAt"])

	b.exec(t, `ALTER TABLE accounts DROP COLUMN audited_at`)
	again := b.all(t)
	require.Equal(t, string(events[1].Payload), string(again[1].Payload), "a dropped column's rows read as before")
}
