package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// The breakdown builds the capture trigger up stage by stage, as trigger
// functions of its own in schema capturebench of the scratch database
// (the migrations stay as they are), and measures each stage two ways:
// throughput with every writer, and the trigger's own time in EXPLAIN
// ANALYZE of single UPDATEs, each its own transaction as in production.
// The last variant, keymap, is a what-if: the same wire form built in one
// statement from a column -> key map computed once at attach time.
const breakdownSchema = `
CREATE SCHEMA capturebench;

CREATE FUNCTION capturebench.trivial() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NULL;
END
$$;

-- hub.capture cut after stage TG_ARGV[3]: diff, insert (raw to_jsonb
-- payload, no old), notify, wire_payload (payload through hub.wire_row),
-- wire_both (old too: hub.capture's work), plpgsql_helpers (the what-if
-- below).
CREATE FUNCTION capturebench.stage() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chan    text := TG_ARGV[0];
    tenant  text := nullif(TG_ARGV[1], '');
    subj    text := nullif(TG_ARGV[2], '');
    stage   text := TG_ARGV[3];
    cur     jsonb := to_jsonb(NEW);
    prev    jsonb := to_jsonb(OLD);
    changed text[];
    owner   text;
BEGIN
    SELECT array_agg(n.key) INTO changed FROM jsonb_each(cur) AS n WHERE n.value IS DISTINCT FROM prev -> n.key;
    IF changed IS NULL THEN
        RETURN NULL;
    END IF;
    owner := cur ->> tenant;
    IF owner IS NULL OR stage = 'diff' THEN
        RETURN NULL;
    END IF;
    IF stage IN ('insert', 'notify') THEN
        INSERT INTO hub.events (channel, op, client, subject, payload) VALUES (chan, TG_OP, owner, cur ->> subj, cur);
    ELSIF stage = 'wire_payload' THEN
        INSERT INTO hub.events (channel, op, client, subject, payload)
        VALUES (chan, TG_OP, owner, cur ->> subj, hub.wire_row(TG_RELID, cur, NULL));
    ELSIF stage = 'wire_both' THEN
        INSERT INTO hub.events (channel, op, client, subject, payload, old)
        VALUES (chan, TG_OP, owner, cur ->> subj, hub.wire_row(TG_RELID, cur, NULL), hub.wire_row(TG_RELID, prev, changed));
    ELSE -- plpgsql_helpers
        INSERT INTO hub.events (channel, op, client, subject, payload, old)
        VALUES (chan, TG_OP, owner, cur ->> subj, capturebench.wire_row(TG_RELID, cur, NULL),
                CASE WHEN TG_OP = 'UPDATE' THEN capturebench.wire_row(TG_RELID, prev, changed) END);
    END IF;
    IF stage <> 'insert' THEN
        PERFORM pg_notify('hub_events', '');
    END IF;
    RETURN NULL;
END
$$;

-- What-if, the smallest change: hub.wire_row's query unchanged but in
-- plpgsql, which keeps its plan for the session (PostgreSQL before 18
-- plans a SQL function's body again at each call from a new statement),
-- with camel and utc as single expressions the planner inlines. camel
-- via initcap equals hub.camel for lower-case column names.
CREATE FUNCTION capturebench.camel(col text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT lower(left(replace(initcap(btrim(col, '_')), '_', ''), 1)) || substr(replace(initcap(btrim(col, '_')), '_', ''), 2)
$$;

CREATE FUNCTION capturebench.utc(v jsonb, typ oid) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v #>> '{}' IN ('infinity', '-infinity') THEN v
           ELSE to_jsonb((to_jsonb(CASE WHEN typ = 'timestamptz'::regtype THEN (v #>> '{}')::timestamptz AT TIME ZONE 'UTC'
                                        ELSE (v #>> '{}')::timestamp END) #>> '{}') || 'Z') END
$$;

CREATE FUNCTION capturebench.wire_row(rel oid, r jsonb, keep text[]) RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_object_agg(capturebench.camel(e.key),
               CASE WHEN a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype) AND jsonb_typeof(e.value) = 'string'
                    THEN capturebench.utc(e.value, a.atttypid) ELSE e.value END), '{}'::jsonb)
            FROM jsonb_each(r) AS e
            LEFT JOIN pg_attribute a ON a.attrelid = rel AND a.attname = e.key AND NOT a.attisdropped
            WHERE keep IS NULL OR e.key = ANY (keep));
END
$$;

-- What-if: TG_ARGV[3] maps each column to its key and TG_ARGV[4] lists the
-- timestamptz columns, both computed by attach; payload and old are built
-- in one statement of the trigger, whose plan plpgsql keeps for the
-- session, with no SQL-function calls per row. It writes what hub.capture
-- writes for INSERT and UPDATE of a table without timestamp (without time
-- zone) columns; DELETE is left out.
CREATE FUNCTION capturebench.keymap() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chan    text := TG_ARGV[0];
    tenant  text := nullif(TG_ARGV[1], '');
    subj    text := nullif(TG_ARGV[2], '');
    keys    jsonb := TG_ARGV[3]::jsonb;
    tstz    text[] := TG_ARGV[4]::text[];
    cur     jsonb := to_jsonb(NEW);
    prev    jsonb := to_jsonb(OLD);
    payload jsonb;
    old     jsonb;
    owner   text := cur ->> tenant;
BEGIN
    IF owner IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT jsonb_object_agg(k, v), jsonb_object_agg(k, pv) FILTER (WHERE changed)
    INTO payload, old
    FROM (SELECT coalesce(keys ->> n.key, hub.camel(n.key)) AS k,
                 n.value IS DISTINCT FROM prev -> n.key AS changed,
                 CASE WHEN n.key = ANY (tstz) AND jsonb_typeof(n.value) = 'string' AND n.value #>> '{}' NOT IN ('infinity', '-infinity')
                      THEN to_jsonb((to_jsonb((n.value #>> '{}')::timestamptz AT TIME ZONE 'UTC') #>> '{}') || 'Z')
                      ELSE n.value END AS v,
                 CASE WHEN n.key = ANY (tstz) AND jsonb_typeof(prev -> n.key) = 'string' AND prev ->> n.key NOT IN ('infinity', '-infinity')
                      THEN to_jsonb((to_jsonb((prev ->> n.key)::timestamptz AT TIME ZONE 'UTC') #>> '{}') || 'Z')
                      ELSE prev -> n.key END AS pv
          FROM jsonb_each(cur) AS n) AS t;
    IF TG_OP = 'INSERT' THEN
        old := NULL;
    ELSIF old IS NULL THEN
        RETURN NULL; -- a no-op UPDATE records nothing
    END IF;
    INSERT INTO hub.events (channel, op, client, subject, payload, old)
    VALUES (chan, TG_OP, owner, cur ->> subj, payload, old);
    PERFORM pg_notify('hub_events', '');
    RETURN NULL;
END
$$;
`

// variant is one trigger setup on public.orders.
type variant struct {
	Name string
	What string // what it adds to the variant before it
	SQL  string // installs it; "" for no trigger
}

func stageTrigger(stage string) string {
	return fmt.Sprintf(`CREATE TRIGGER capturebench AFTER INSERT OR UPDATE ON public.orders FOR EACH ROW
		EXECUTE FUNCTION capturebench.stage('orders', 'client', 'account_id', '%s')`, stage)
}

var variants = []variant{
	{"none", "no trigger", ""},
	{"trivial", "an AFTER ROW plpgsql trigger that returns at once",
		`CREATE TRIGGER capturebench AFTER INSERT OR UPDATE ON public.orders FOR EACH ROW EXECUTE FUNCTION capturebench.trivial()`},
	{"diff", "to_jsonb(NEW), to_jsonb(OLD), changed keys, tenant", stageTrigger("diff")},
	{"insert", "INSERT into hub.events (raw to_jsonb payload, no old)", stageTrigger("insert")},
	{"notify", "pg_notify('hub_events', '')", stageTrigger("notify")},
	{"wire_payload", "payload through hub.wire_row", stageTrigger("wire_payload")},
	{"wire_both", "old through hub.wire_row (= hub.capture's work)", stageTrigger("wire_both")},
	{"hub.capture", "the migration's trigger, as hub.attach installs it", attachOrders},
	{"plpgsql wire_row (what-if)", "hub.wire_row in plpgsql, camel and utc inlinable", stageTrigger("plpgsql_helpers")},
	{"keymap (what-if)", "wire form in one cached statement, keys mapped at attach", ""}, // SQL set by keymapTrigger
}

// keymapTrigger installs the what-if variant with the key map of
// public.orders, as attach would compute it.
const keymapTrigger = `DO $$
DECLARE
    keys jsonb;
    tstz text[];
BEGIN
    SELECT jsonb_object_agg(attname, hub.camel(attname)),
           array_agg(attname::text) FILTER (WHERE atttypid = 'timestamptz'::regtype)
    INTO keys, tstz
    FROM pg_attribute WHERE attrelid = 'public.orders'::regclass AND attnum > 0 AND NOT attisdropped;
    EXECUTE format('CREATE TRIGGER capturebench AFTER INSERT OR UPDATE ON public.orders FOR EACH ROW
                    EXECUTE FUNCTION capturebench.keymap(%L, %L, %L, %L, %L)', 'orders', 'client', 'account_id', keys, tstz);
END
$$`

func (v variant) install() string {
	if v.Name == "keymap (what-if)" {
		return keymapTrigger
	}
	return v.SQL
}

// breakdownResult is one variant's figures over the runs.
type breakdownResult struct {
	Variant     variant
	TPS         []float64 // one per run
	TriggerTime durStats  // EXPLAIN ANALYZE: the trigger's time for its one row
	ExecTime    durStats  // EXPLAIN ANALYZE: the whole UPDATE
}

// explainSamples is how many single-row UPDATEs are explained per variant.
const explainSamples = 400

func (b *bench) breakdown(ctx context.Context) error {
	if err := b.db.exec(ctx, breakdownSchema); err != nil {
		return err
	}
	results := make([]breakdownResult, len(variants))
	for i, v := range variants {
		results[i].Variant = v
	}
	for run := 1; run <= b.cfg.Runs; run++ {
		// Rotate the order from run to run so that no variant always goes first.
		for j := range variants {
			i := (j + run - 1) % len(variants)
			if err := b.installVariant(ctx, variants[i]); err != nil {
				return err
			}
			b.progress("breakdown run %d: %s", run, variants[i].Name)
			lr, err := b.w.run(ctx, load{Duration: b.cfg.Duration})
			if err != nil {
				return err
			}
			results[i].TPS = append(results[i].TPS, lr.TPS())
			b.out.variantRun(run, variants[i], lr.TPS())
		}
	}
	for i, v := range variants {
		if err := b.installVariant(ctx, v); err != nil {
			return err
		}
		b.progress("breakdown: EXPLAIN ANALYZE x%d, %s", explainSamples, v.Name)
		var err error
		if results[i].TriggerTime, results[i].ExecTime, err = b.explainUpdates(ctx); err != nil {
			return err
		}
	}
	b.out.breakdown(results)
	helpers, err := b.helperTimings(ctx)
	if err != nil {
		return err
	}
	b.out.helpers(helpers)
	return b.installVariant(ctx, variants[slices.IndexFunc(variants, func(v variant) bool { return v.Name == "hub.capture" })])
}

func (b *bench) installVariant(ctx context.Context, v variant) error {
	stmts := []string{detachOrders, `DROP TRIGGER IF EXISTS capturebench ON public.orders`, `TRUNCATE hub.events`, `VACUUM public.orders`}
	if sql := v.install(); sql != "" {
		stmts = append(stmts, sql)
	}
	return b.db.exec(ctx, stmts...)
}

// explainUpdates runs the workload's UPDATE under EXPLAIN ANALYZE, each in
// its own transaction, and returns the trigger's and the statement's time.
func (b *bench) explainUpdates(ctx context.Context) (trigger, exec durStats, err error) {
	var trig, total []time.Duration
	for range explainSamples {
		key := b.w.seq.Add(1)
		var raw []byte
		err := b.db.ctl.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) `+updateSQL,
			fmt.Sprint(key), key%10000, 1+rand.IntN(b.cfg.Rows)).Scan(&raw)
		if err != nil {
			return durStats{}, durStats{}, fmt.Errorf("explain update: %w", err)
		}
		var plans []struct {
			ExecutionTime float64 `json:"Execution Time"`
			Triggers      []struct {
				Time float64 `json:"Time"`
			} `json:"Triggers"`
		}
		if err := json.Unmarshal(raw, &plans); err != nil || len(plans) != 1 {
			return durStats{}, durStats{}, fmt.Errorf("decode explain output: %v", err)
		}
		var t float64
		for _, tr := range plans[0].Triggers {
			t += tr.Time
		}
		trig = append(trig, msDuration(t))
		total = append(total, msDuration(plans[0].ExecutionTime))
	}
	return summarize(trig), summarize(total), nil
}

func msDuration(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }

// helperTiming is the cost of one call of a helper, as the trigger makes
// it: each call its own statement and transaction, minus the same
// statement without the call.
type helperTiming struct {
	Name     string
	PerCall  time.Duration // median over the samples, baseline subtracted
	InQuery  time.Duration // one call among the 10,000 of a single query
	Baseline time.Duration // median time of the statement without the call
}

// helperCall is a statement with and without the helper, and the same
// over every orders row in one query.
type helperCall struct {
	name, with, without string
	args                func(row, ts []byte) []any
	inQuery, inBase     string
}

var helperCalls = []helperCall{
	{"hub.wire_row(row, NULL): payload, 14 columns",
		`SELECT hub.wire_row('public.orders'::regclass, $1::jsonb, NULL)`, `SELECT $1::jsonb`,
		func(row, _ []byte) []any { return []any{string(row)} },
		`SELECT count(hub.wire_row('public.orders'::regclass, to_jsonb(o), NULL)) FROM public.orders o`,
		`SELECT count(to_jsonb(o)) FROM public.orders o`},
	{"hub.wire_row(row, 3 changed): old",
		`SELECT hub.wire_row('public.orders'::regclass, $1::jsonb, '{exchange_order_id,matched_stake,matched_at}')`, `SELECT $1::jsonb`,
		func(row, _ []byte) []any { return []any{string(row)} },
		`SELECT count(hub.wire_row('public.orders'::regclass, to_jsonb(o), '{exchange_order_id,matched_stake,matched_at}')) FROM public.orders o`,
		`SELECT count(to_jsonb(o)) FROM public.orders o`},
	{"hub.camel(one column name)",
		`SELECT hub.camel($1::text)`, `SELECT $1::text`,
		func(_, _ []byte) []any { return []any{"exchange_order_id"} },
		`SELECT count(hub.camel('exchange_order_id' || o.order_id)) FROM public.orders o`,
		`SELECT count('exchange_order_id' || o.order_id) FROM public.orders o`},
	{"hub.utc(one timestamptz)",
		`SELECT hub.utc($1::jsonb, 'timestamptz'::regtype)`, `SELECT $1::jsonb`,
		func(_, ts []byte) []any { return []any{string(ts)} },
		`SELECT count(hub.utc(to_jsonb(o.matched_at), 'timestamptz'::regtype)) FROM public.orders o`,
		`SELECT count(to_jsonb(o.matched_at)) FROM public.orders o`},
}

// helperSamples is how many statements are timed per helper and side.
const helperSamples = 2000

func (b *bench) helperTimings(ctx context.Context) ([]helperTiming, error) {
	var row, ts []byte
	if err := b.db.ctl.QueryRow(ctx, `SELECT to_jsonb(o), to_jsonb(o.matched_at) FROM public.orders o WHERE order_id = 1`).Scan(&row, &ts); err != nil {
		return nil, fmt.Errorf("read an orders row: %w", err)
	}
	var out []helperTiming
	for _, h := range helperCalls {
		b.progress("breakdown: timing %s", h.name)
		with, err := b.timeStatements(ctx, h.with, h.args(row, ts))
		if err != nil {
			return nil, err
		}
		without, err := b.timeStatements(ctx, h.without, h.args(row, ts))
		if err != nil {
			return nil, err
		}
		inQuery, err := b.timeQueryPerRow(ctx, h.inQuery, h.inBase)
		if err != nil {
			return nil, err
		}
		out = append(out, helperTiming{Name: h.name, PerCall: with - without, InQuery: inQuery, Baseline: without})
	}
	return out, nil
}

// timeStatements returns the median client-side time of q, one statement
// (and transaction) at a time.
func (b *bench) timeStatements(ctx context.Context, q string, args []any) (time.Duration, error) {
	ds := make([]time.Duration, 0, helperSamples)
	for range helperSamples {
		start := time.Now()
		if _, err := b.db.ctl.Exec(ctx, q, args...); err != nil {
			return 0, fmt.Errorf("%s: %w", q, err)
		}
		ds = append(ds, time.Since(start))
	}
	return summarize(ds).P50, nil
}

// timeQueryPerRow returns (time of q - time of base) per orders row, the
// best of three.
func (b *bench) timeQueryPerRow(ctx context.Context, q, base string) (time.Duration, error) {
	best := func(q string) (time.Duration, error) {
		var ds []time.Duration
		for range 3 {
			start := time.Now()
			if _, err := b.db.ctl.Exec(ctx, q); err != nil {
				return 0, fmt.Errorf("%s: %w", q, err)
			}
			ds = append(ds, time.Since(start))
		}
		return slices.Min(ds), nil
	}
	with, err := best(q)
	if err != nil {
		return 0, err
	}
	without, err := best(base)
	if err != nil {
		return 0, err
	}
	return (with - without) / time.Duration(b.cfg.Rows), nil
}
