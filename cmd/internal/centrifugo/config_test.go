package centrifugo

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestConfigFile(t *testing.T) {
	t.Parallel()
	b, err := Config{Addr: "127.0.0.1:8123", Secret: "s", DSN: "postgres://x", TenantNamespaces: []string{"orders"}}.File()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"address": "127.0.0.1", "port": "8123", "engine": "memory", "token_hmac_secret_key": "s",
		"allow_subscribe_for_client": true, "health": true, "usage_stats_disable": true,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	pg := got["consumers"].([]any)[0].(map[string]any)["postgresql"].(map[string]any)
	for key, want := range map[string]any{
		"dsn": "postgres://x", "outbox_table_name": OutboxTable, "num_partitions": 1.0,
		"partition_select_limit": 100.0, "partition_poll_interval": "300ms", "partition_notification_channel": NotifyChannel,
	} {
		if pg[key] != want {
			t.Errorf("consumer %s = %v, want %v", key, pg[key], want)
		}
	}
	ns := got["namespaces"].([]any)[0].(map[string]any)
	if ns["name"] != "orders" || ns["allow_user_limited_channels"] != true {
		t.Errorf("namespace %v", ns)
	}
}

func TestConfigFileNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	_, err := Config{Addr: "nowhere"}.File()
	for _, want := range []string{"Addr", "Secret", "DSN"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func TestAttachSQL(t *testing.T) {
	t.Parallel()
	got := AttachSQL(Attach{Table: "public.orders", Channel: "orders", TenantColumn: "client", Ops: []string{"INSERT", "UPDATE"}})
	want := `CREATE OR REPLACE TRIGGER centrifugo_publish AFTER INSERT OR UPDATE ON public.orders FOR EACH ROW ` +
		`EXECUTE FUNCTION public.centrifugo_publish('orders', 'client', '1')`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := literal("it's"); got != `'it''s'` {
		t.Fatalf("literal = %s", got)
	}
	if got := TenantChannel("orders", "hubload-t007"); got != "orders:#hubload-t007" {
		t.Fatalf("TenantChannel = %s", got)
	}
}
