package main

import (
	"runtime"
	"time"
)

// result is one run's figures; it is also the JSON line.
type result struct {
	Workload      string  `json:"workload"`
	Server        string  `json:"server"` // hub or centrifugo
	Run           int     `json:"run"`    // the pair, with two servers
	Decode        string  `json:"decode"` // json or scan
	Channel       string  `json:"channel"`
	Clients       int     `json:"clients"`
	Tenants       int     `json:"tenants"`
	Connected     int     `json:"connected"`
	ConnectFailed int     `json:"connectFailed"`
	ConnectS      float64 `json:"connectSeconds"`
	Held          int     `json:"held,omitempty"` // idle: still connected at the end

	Rate         int     `json:"rate"` // UPDATE/s asked
	DurationS    float64 `json:"durationSeconds"`
	Committed    uint64  `json:"committed"`
	CommitPerS   float64 `json:"commitsPerSecond"`
	WriteErrors  uint64  `json:"writeErrors"`
	CommitP99Ms  float64 `json:"commitP99Ms"`
	AskedPerS    float64 `json:"askedDeliveriesPerSecond"` // connected x rate (/ tenants)
	DeliveryPerS float64 `json:"deliveriesPerSecond"`      // received during the write phase / its length
	// Expected is what the clients should receive of the run's committed
	// UPDATEs, counted where ExpectedFrom says: "hub.events" (the hub's
	// log) or "writers" (the UPDATEs the writers committed; Centrifugo's
	// outbox rows are deleted once published).
	Expected     uint64  `json:"expected"`
	ExpectedFrom string  `json:"expectedFrom"`
	Delivered    uint64  `json:"delivered"`
	DeliveredPct float64 `json:"deliveredPercent"`
	Lost         uint64  `json:"lost"`
	Extra        uint64  `json:"extra"`    // received beyond the expected
	Disorder     uint64  `json:"disorder"` // a row's counter not above the previous one seen: duplicates or out of order
	// PositionDisorder counts the hub's positions not after the previous
	// one on the connection; Centrifugo sends none (nil).
	PositionDisorder *uint64 `json:"positionDisorder,omitempty"`
	CrossTenant      uint64  `json:"crossTenant"` // another tenant's rows
	NoStamp          uint64  `json:"noStamp"`     // publications without the writer's stamp
	Early            uint64  `json:"early"`       // publications stamped before the run, ignored
	Undecodable      uint64  `json:"undecodable"` // messages that did not decode, in whole or in part
	// OutboxLeft is what Centrifugo's consumer had not published when the
	// drain ended (nil for the hub).
	OutboxLeft *int64  `json:"outboxLeft,omitempty"`
	DrainS     float64 `json:"drainSeconds"`
	// DrainIncomplete: the drain ended on -drain or -quiet with deliveries
	// missing; a backlog still draining counts as lost.
	DrainIncomplete bool    `json:"drainIncomplete"`
	Latency         latency `json:"latencyMs"` // commit to receive

	ServerCPUS        float64        `json:"serverCpuSeconds"`
	ServerCPUPct      float64        `json:"serverCpuPercent"` // of one core
	ServerCPUPerDelUS float64        `json:"serverCpuPerDeliveryMicros"`
	MachineBusyPct    float64        `json:"machineBusyPercent"` // all cores
	ToolCPUPct        float64        `json:"toolCpuPercent"`     // of one core
	PGCPUPct          float64        `json:"postgresCpuPercent"` // of one core; 0: not measured
	OtherCPUPct       float64        `json:"otherCpuPercent"`    // of one core: the machine's busy time not the server's, PostgreSQL's or hubload's (the idle other server's is in it)
	LoadAvg1          float64        `json:"loadAverage1m"`      // at the end of the run
	ServerRSSBeforeKB int64          `json:"serverRssBeforeKiB"`
	ServerRSSAfterKB  int64          `json:"serverRssAfterKiB"`
	RSSPerConnKB      float64        `json:"serverRssPerConnectionKiB"`
	GoPerConn         *perConn       `json:"serverGoPerConnection,omitempty"` // from the server's /metrics
	Dropped           map[string]int `json:"dropped,omitempty"`               // connections the server ended, by reason
	measuredCPU       bool
	measuredRSS       bool
	measuredLatency   bool
}

func newResult(cfg config, server string, run int) result {
	r := result{Workload: cfg.Workload, Server: server, Run: run, Decode: "json", Channel: cfg.channel(), Clients: cfg.Clients,
		Tenants: cfg.Tenants, Rate: cfg.Rate, DurationS: cfg.Duration.Seconds(), ExpectedFrom: "writers"}
	if cfg.Scan {
		r.Decode = "scan"
	}
	if server == hubName {
		r.ExpectedFrom = "hub.events"
	}
	return r
}

// setRSS takes the server's RSS before and after the connections.
func (r *result) setRSS(before, after int64) {
	if before == 0 || after == 0 || r.Connected == 0 {
		return
	}
	r.measuredRSS = true
	r.ServerRSSBeforeKB, r.ServerRSSAfterKB = before, after
	r.RSSPerConnKB = float64(after-before) / float64(r.Connected)
}

// setCPU takes the CPU used between two marks, delivered broadcasts in it.
func (r *result) setCPU(m0, m1 cpuMark, delivered uint64) {
	wall := m1.at.Sub(m0.at)
	r.ToolCPUPct = pct(m1.self-m0.self, wall)
	if m0.pg != 0 {
		r.PGCPUPct = pct(m1.pg-m0.pg, wall)
	}
	if m1.total > m0.total {
		r.MachineBusyPct = 100 * float64(m1.busy-m0.busy) / float64(m1.total-m0.total)
	}
	machine := time.Duration(0)
	if m1.total > m0.total {
		machine = time.Duration(float64(wall) * float64(runtime.NumCPU()) * float64(m1.busy-m0.busy) / float64(m1.total-m0.total))
	}
	r.OtherCPUPct = pct(machine-(m1.self-m0.self)-(m1.pg-m0.pg)-(m1.server-m0.server), wall)
	r.LoadAvg1 = loadAverage()
	if m0.server == 0 {
		return
	}
	r.measuredCPU = true
	srv := m1.server - m0.server
	r.ServerCPUS, r.ServerCPUPct = srv.Seconds(), pct(srv, wall)
	if delivered > 0 {
		r.ServerCPUPerDelUS = float64(srv.Microseconds()) / float64(delivered)
	}
}

func pct(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * cpu.Seconds() / wall.Seconds()
}

// setWrites takes the write phase and what was received during it.
func (r *result) setWrites(wr writeResult, receivedDuring uint64) {
	r.Committed, r.WriteErrors, r.CommitP99Ms = wr.Committed, wr.Errors, wr.Commit.P99
	r.CommitPerS = float64(wr.Committed) / wr.Elapsed.Seconds()
	r.DeliveryPerS = float64(receivedDuring) / wr.Elapsed.Seconds()
	r.AskedPerS = float64(r.Connected) * float64(r.Rate)
	if r.Tenants > 0 {
		r.AskedPerS /= float64(r.Tenants)
	}
}

// setDeliveries compares, per client, what it received with the committed
// events it may see (counts by tenant, "" for a global channel).
func (r *result) setDeliveries(f *fleet, counts map[string]uint64) {
	f.mu.Lock()
	clients := f.clients
	f.mu.Unlock()
	var posDisorder uint64
	for _, c := range clients {
		want, got := counts[c.tenant], c.received.Load()
		r.Expected += want
		r.Delivered += got
		if got < want {
			r.Lost += want - got
		} else {
			r.Extra += got - want
		}
		r.Disorder += c.disorder.Load()
		posDisorder += c.posDisorder.Load()
		r.CrossTenant += c.foreign.Load()
		r.NoStamp += c.noStamp.Load()
		r.Early += c.early.Load()
		r.Undecodable += c.undecodable.Load()
	}
	if r.Server == hubName {
		r.PositionDisorder = &posDisorder
	}
	if r.Expected > 0 {
		r.DeliveredPct = 100 * float64(min(r.Delivered, r.Expected)) / float64(r.Expected)
	}
	r.Latency = f.hist.summary()
	r.measuredLatency = r.Latency.N > 0
}
