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
// The stages follow hub.capture of migration 8: a plpgsql call, its
// SECURITY DEFINER and fixed search_path, the INSERT into hub.events, the
// two rows as jsonb, then the whole capture (the changed columns, the
// tenant, the attached guard and the doorbell read), with its doorbell
// disarmed.
const breakdownSchema = `
CREATE SCHEMA capturebench;

CREATE FUNCTION capturebench.trivial() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NULL;
END
$$;

CREATE FUNCTION capturebench.definer() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN NULL;
END
$$;

CREATE FUNCTION capturebench.insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO hub.events (channel, op, client, payload) VALUES ('orders', TG_OP, 'acme', '{}');
    RETURN NULL;
END
$$;

CREATE FUNCTION capturebench.rows() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO hub.events (channel, op, client, payload, old) VALUES ('orders', TG_OP, 'acme', to_jsonb(NEW), to_jsonb(OLD));
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

func stageTrigger(fn string) string {
	return fmt.Sprintf(`CREATE TRIGGER capturebench AFTER INSERT OR UPDATE ON public.orders FOR EACH ROW
		EXECUTE FUNCTION capturebench.%s()`, fn)
}

var variants = []variant{
	{"none", "no trigger", ""},
	{"trivial", "an AFTER ROW plpgsql trigger that returns at once", stageTrigger("trivial")},
	{"definer", "SECURITY DEFINER with a fixed search_path", stageTrigger("definer")},
	{"insert", "INSERT into hub.events (empty payload)", stageTrigger("insert")},
	{"rows", "to_jsonb(NEW) and to_jsonb(OLD) as payload and old", stageTrigger("rows")},
	{"hub.capture", "changed columns, tenant, attached guard, doorbell read (disarmed): the migration's trigger", attachOrders},
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
	return b.installVariant(ctx, variants[slices.IndexFunc(variants, func(v variant) bool { return v.Name == "hub.capture" })])
}

func (b *bench) installVariant(ctx context.Context, v variant) error {
	stmts := []string{detachOrders, `DROP TRIGGER IF EXISTS capturebench ON public.orders`, `TRUNCATE hub.events`, `VACUUM public.orders`}
	stmts = append(stmts, disarmedDoorbell)
	if sql := v.SQL; sql != "" {
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
