package centrifugo

import (
	"fmt"
	"strings"
)

// The names the outbox, the trigger and the configuration share.
const (
	// OutboxTable is the table Centrifugo's PostgreSQL consumer reads and
	// deletes from, partition by partition in id order.
	OutboxTable = "public.centrifugo_outbox"
	// NotifyChannel is where the trigger rings the partition it wrote,
	// so that the consumer reads at once instead of at its next poll.
	NotifyChannel = "centrifugo_partition"
	// TriggerName is the trigger Attach creates on a table.
	TriggerName = "centrifugo_publish"
)

// SchemaSQL creates the outbox (the columns the consumer selects: id,
// method, payload, partition; the layout of Centrifugo's documentation)
// and the trigger function; it may run again.
//
// The function publishes the row as to_jsonb writes it, with timestamps in
// UTC ("…+00:00") whatever the writer's TimeZone, as the hub's capture
// does. With a tenant column each tenant has its own user-limited channel
// "<namespace>:#<tenant>", which only a connection of that user may
// subscribe to; a row without a tenant is published to no one, as in the
// hub (SPEC §2.2). A channel always lands in the same partition, so its
// publications keep their order.
const SchemaSQL = `
CREATE TABLE IF NOT EXISTS public.centrifugo_outbox (
    id         bigserial PRIMARY KEY,
    method     text NOT NULL,
    payload    jsonb NOT NULL,
    partition  integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION public.centrifugo_publish() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    chan   text := TG_ARGV[0];
    tenant text := nullif(TG_ARGV[1], '');
    parts  integer := TG_ARGV[2]::integer;
    part   integer := 0;
    cur    jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        cur := to_jsonb(OLD);
    ELSE
        cur := to_jsonb(NEW);
    END IF;
    IF tenant IS NOT NULL THEN
        tenant := nullif(cur ->> tenant, '');
        IF tenant IS NULL THEN
            RETURN NULL;
        END IF;
        chan := chan || ':#' || tenant;
    END IF;
    IF parts > 1 THEN
        part := (hashtext(chan)::bigint & 2147483647) % parts;
    END IF;
    INSERT INTO public.centrifugo_outbox (method, payload, partition)
    VALUES ('publish', jsonb_build_object('channel', chan, 'data', cur), part);
    PERFORM pg_notify('centrifugo_partition', part::text);
    RETURN NULL;
END
$$;
`

// Attach describes the trigger that publishes a table's rows.
type Attach struct {
	// Table is the schema-qualified table (trusted: it goes into the SQL
	// as it is).
	Table string
	// Channel is the channel of every row, or with TenantColumn the
	// namespace of the tenants' channels (see TenantChannel).
	Channel string
	// TenantColumn names the column that holds a row's tenant; "" for one
	// channel for all.
	TenantColumn string
	// Ops are the operations published: INSERT, UPDATE, DELETE (required).
	Ops []string
	// Partitions is the outbox's number of partitions, as in Config
	// (default 1).
	Partitions int
}

// AttachSQL returns the statement that creates the trigger; it replaces
// an earlier one.
func AttachSQL(a Attach) string {
	return fmt.Sprintf(`CREATE OR REPLACE TRIGGER %s AFTER %s ON %s FOR EACH ROW EXECUTE FUNCTION public.centrifugo_publish(%s, %s, '%d')`,
		TriggerName, strings.Join(a.Ops, " OR "), a.Table, literal(a.Channel), literal(a.TenantColumn), max(a.Partitions, 1))
}

// TenantChannel is the channel of tenant's rows in namespace ns: a
// user-limited channel, open to user tenant only.
func TenantChannel(ns, tenant string) string { return ns + ":#" + tenant }

// literal quotes s as an SQL string literal.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
