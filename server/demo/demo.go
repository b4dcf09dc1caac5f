// Package demo is the demo data simulator (HUB_DEMO, SPEC §9): it plays
// the applications that write the business tables, so that a first `make
// run` has something to show. It writes plain SQL like any application
// would; the hub sees it only through its triggers.
package demo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Client is the hub client whose rows the simulator writes: orders placed
// on exchanges and filled, hedge bets at bookmakers after each fill, the
// balances they move, and (global) live scores.
const Client = "demo"

// Run writes demo data for Client at a gentle rate until ctx ends; it
// returns nil then. Errors (the database restarting, say) are logged and
// the step is retried after a pause.
func Run(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	return newDemo(pool, config{Logger: log}).run(ctx)
}

// config tunes the simulator; the zero value is the gentle default.
type config struct {
	// MinInterval and MaxInterval bound the pause between two writes
	// (default 500ms and 2s).
	MinInterval, MaxInterval time.Duration
	// RetryInterval is the pause after a failed write (default 2s).
	RetryInterval time.Duration
	Logger        *slog.Logger
}

func (c config) withDefaults() config {
	c.MinInterval = cmp.Or(c.MinInterval, 500*time.Millisecond)
	c.MaxInterval = max(cmp.Or(c.MaxInterval, 2*time.Second), c.MinInterval)
	c.RetryInterval = cmp.Or(c.RetryInterval, 2*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// account is a trading account of client demo at one venue.
type account struct {
	id, venue, currency string
	exchange            bool    // orders go to exchange accounts, bets to bookmaker ones
	balance             float64 // opening balance
}

var accounts = []account{
	{"pm-7f3a91", "polymarket", "USD", true, 25000},
	{"bf-118204", "betfair", "GBP", true, 18000},
	{"pin-55021", "pinnacle", "EUR", false, 12000},
	{"b365-90812", "bet365", "GBP", false, 8000},
	{"sbo-30177", "sbobet", "EUR", false, 10000},
}

// pitches is how many fixtures are in play at once.
const pitches = 3

// order is an order the simulator placed and has not finished with.
type order struct {
	id       int64
	account  account
	fixture  string
	outcome  int
	cents    int
	stake    float64
	matched  float64
	exchange string
}

// match is the state of a fixture in play.
type match struct {
	fixture    string
	minute     int
	home, away int
}

// demo is the simulator's state; only its run goroutine touches it.
type demo struct {
	pool    *pgxpool.Pool
	cfg     config
	rnd     *rand.Rand
	seeded  bool
	open    []*order // placed, not fully matched
	filled  []*order // matched, not hedged yet
	bets    []int64  // placed, not settled
	matches []*match
	fixture int64 // the number of the last fixture that kicked off
}

func newDemo(pool *pgxpool.Pool, cfg config) *demo {
	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	// Fixture ids in the feed's style, id1000000861624412, starting
	// somewhere new at every start.
	return &demo{pool: pool, cfg: cfg.withDefaults(), rnd: rnd, fixture: 861_000_000 + rnd.Int64N(1_000_000)}
}

// run writes until ctx ends.
func (d *demo) run(ctx context.Context) error {
	d.cfg.Logger.Info("demo data simulator started", "client", Client)
	for {
		pause := d.interval()
		if err := d.step(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.cfg.Logger.Warn("demo simulator: write failed; retrying", "err", err)
			pause = d.cfg.RetryInterval
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
	}
}

func (d *demo) interval() time.Duration {
	span := d.cfg.MaxInterval - d.cfg.MinInterval
	if span <= 0 {
		return d.cfg.MinInterval
	}
	return d.cfg.MinInterval + time.Duration(d.rnd.Int64N(int64(span)))
}

// step makes one change: the seed first, then an action picked by weight
// among those that have something to act on.
func (d *demo) step(ctx context.Context) error {
	if !d.seeded {
		if err := d.seed(ctx); err != nil {
			return err
		}
		d.seeded = true
		return nil
	}
	type action struct {
		weight int
		do     func(context.Context) error
	}
	actions := []action{
		{3, d.placeOrder},
		{3, d.tickScore},
		{1, d.moveBalance},
	}
	if len(d.open) > 0 {
		actions = append(actions, action{4, d.matchOrder})
	}
	if len(d.filled) > 0 {
		actions = append(actions, action{4, d.placeHedge})
	}
	if len(d.bets) > 3 {
		actions = append(actions, action{1, d.settleBet})
	}
	total := 0
	for _, a := range actions {
		total += a.weight
	}
	n := d.rnd.IntN(total)
	for _, a := range actions {
		if n < a.weight {
			return a.do(ctx)
		}
		n -= a.weight
	}
	return nil
}

// seed creates the accounts and the first fixtures (INSERTs neither
// channel broadcasts) and touches them, so their first state is on the
// wire; rows left by an earlier run are reused.
func (d *demo) seed(ctx context.Context) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		for _, a := range accounts {
			if _, err := tx.Exec(ctx, `
				INSERT INTO accounts (account_id, client, venue, balance, currency, status, updated_at)
				VALUES ($1, $2, $3, $4, $5, 'ACTIVE', now())
				ON CONFLICT (account_id) DO NOTHING`,
				a.id, Client, a.venue, a.balance, a.currency); err != nil {
				return fmt.Errorf("demo: seed account %s: %w", a.id, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE accounts SET status = 'ACTIVE', updated_at = now() WHERE account_id = $1`, a.id); err != nil {
				return fmt.Errorf("demo: seed account %s: %w", a.id, err)
			}
		}
		matches := make([]*match, pitches)
		for i := range matches {
			m, err := d.kickOff(ctx, tx)
			if err != nil {
				return err
			}
			matches[i] = m
		}
		d.matches = matches
		return nil
	})
}

// kickOff starts a new fixture: INSERT it (not broadcast), then the
// UPDATE that puts it live. The caller keeps the match once tx commits.
func (d *demo) kickOff(ctx context.Context, tx pgx.Tx) (*match, error) {
	d.fixture += 1 + d.rnd.Int64N(700)
	f := fmt.Sprintf("id1000000%09d", d.fixture)
	if _, err := tx.Exec(ctx, `
		INSERT INTO scores (fixture_id, live, status_id, current_period, current_minute, scores, updated_at)
		VALUES ($1, false, 1, 'NS', 0, '{"home":0,"away":0}', now())
		ON CONFLICT (fixture_id) DO NOTHING`, f); err != nil {
		return nil, fmt.Errorf("demo: insert fixture %s: %w", f, err)
	}
	if _, err := tx.Exec(ctx, `
		UPDATE scores SET live = true, status_id = 2, current_period = '1H', current_minute = 1,
		       scores = '{"home":0,"away":0}', updated_at = now()
		WHERE fixture_id = $1`, f); err != nil {
		return nil, fmt.Errorf("demo: kick off %s: %w", f, err)
	}
	return &match{fixture: f, minute: 1}, nil
}

// tickScore moves one match on by a few minutes, sometimes with a goal;
// a finished match makes way for the next fixture.
func (d *demo) tickScore(ctx context.Context) error {
	if len(d.matches) == 0 {
		return nil
	}
	i := d.rnd.IntN(len(d.matches))
	m := *d.matches[i]
	m.minute += 1 + d.rnd.IntN(3)
	if d.rnd.IntN(6) == 0 {
		if d.rnd.IntN(5) < 3 {
			m.home++
		} else {
			m.away++
		}
	}
	period, status, live := "1H", 2, true
	switch {
	case m.minute > 90:
		m.minute, period, status, live = 90, "FT", 3, false
	case m.minute > 45:
		period = "2H"
	}
	var next *match // the fixture after a finished one
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			UPDATE scores SET live = $2, status_id = $3, current_period = $4, current_minute = $5,
			       scores = jsonb_build_object('home', $6::int, 'away', $7::int), updated_at = now()
			WHERE fixture_id = $1`, m.fixture, live, status, period, m.minute, m.home, m.away); err != nil {
			return fmt.Errorf("demo: score %s: %w", m.fixture, err)
		}
		if live {
			return nil
		}
		var err error
		next, err = d.kickOff(ctx, tx)
		return err
	})
	if err != nil {
		return err
	}
	if next != nil {
		d.matches[i] = next
	} else {
		*d.matches[i] = m
	}
	return nil
}

// placeOrder places a back order on an exchange at a price in cents.
func (d *demo) placeOrder(ctx context.Context) error {
	if len(d.open) >= 12 {
		return d.matchOrder(ctx)
	}
	acc := d.pick(true)
	o := &order{
		account:  acc,
		exchange: acc.venue,
		fixture:  d.liveFixture(),
		outcome:  1 + d.rnd.IntN(3),
		cents:    18 + d.rnd.IntN(64),
		stake:    float64(10 + 5*d.rnd.IntN(40)),
	}
	err := d.pool.QueryRow(ctx, `
		INSERT INTO orders (client, account_id, fixture_id, outcome_id, exchange, exchange_order_id,
		                    order_status, matched_status, order_cents, order_stake, matched_stake)
		VALUES ($1, $2, $3, $4, $5, $6, 'OPEN', 'UNMATCHED', $7, $8, 0)
		RETURNING order_id`,
		Client, acc.id, o.fixture, o.outcome, o.exchange, d.exchangeOrderID(o.exchange), o.cents, o.stake).Scan(&o.id)
	if err != nil {
		return fmt.Errorf("demo: place order: %w", err)
	}
	d.open = append(d.open, o)
	return nil
}

// matchOrder matches part or all of an open order; a full match fills it,
// sometimes an order is cancelled instead.
func (d *demo) matchOrder(ctx context.Context) error {
	if len(d.open) == 0 {
		return nil
	}
	i := d.rnd.IntN(len(d.open))
	o := d.open[i]
	if d.rnd.IntN(12) == 0 {
		if _, err := d.pool.Exec(ctx, `
			UPDATE orders SET order_status = 'CANCELLED', matched_status = CASE WHEN matched_stake > 0 THEN 'PARTIALLY_MATCHED' ELSE 'UNMATCHED' END
			WHERE order_id = $1`, o.id); err != nil {
			return fmt.Errorf("demo: cancel order %d: %w", o.id, err)
		}
		d.open = append(d.open[:i], d.open[i+1:]...)
		return nil
	}
	matched := o.stake
	status, mstatus := "FILLED", "MATCHED"
	if o.matched == 0 && d.rnd.IntN(3) == 0 {
		matched = math.Round(o.stake*(0.2+0.6*d.rnd.Float64())*100) / 100
		status, mstatus = "OPEN", "PARTIALLY_MATCHED"
	}
	if _, err := d.pool.Exec(ctx, `
		UPDATE orders SET order_status = $2, matched_status = $3, matched_stake = $4, matched_at = now()
		WHERE order_id = $1`, o.id, status, mstatus, matched); err != nil {
		return fmt.Errorf("demo: match order %d: %w", o.id, err)
	}
	o.matched = matched
	if status == "FILLED" {
		d.open = append(d.open[:i], d.open[i+1:]...)
		d.filled = append(d.filled, o)
	}
	return nil
}

// placeHedge lays off a filled order at a bookmaker: the bet, then the
// bookmaker account's balance, in one transaction.
func (d *demo) placeHedge(ctx context.Context) error {
	o := d.filled[0]
	acc := d.pick(false)
	price := math.Round((100/float64(o.cents))*(0.93+0.1*d.rnd.Float64())*100) / 100
	price = max(price, 1.01)
	stake := math.Round(o.matched*float64(o.cents)/100*price*100) / 100
	selection := [...]string{"", "home", "draw", "away"}[o.outcome]
	var betID int64
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			INSERT INTO bets (order_id, client, account_id, bookmaker, placed_price, placed_stake, bet_status,
			                  sent_data, received_data, placed_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'PLACED',
			        jsonb_build_object('fixtureId', $7::text, 'market', '1X2', 'selection', $8::text, 'price', $5::numeric, 'stake', $6::numeric),
			        jsonb_build_object('ticket', $9::text, 'accepted', true, 'price', $5::numeric), now())
			RETURNING bet_id`,
			o.id, Client, acc.id, acc.venue, price, stake, o.fixture, selection,
			fmt.Sprintf("%s-%08d", acc.venue[:3], d.rnd.IntN(1e8))).Scan(&betID)
		if err != nil {
			return fmt.Errorf("demo: hedge order %d: %w", o.id, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance - $2, updated_at = now() WHERE account_id = $1`, acc.id, stake); err != nil {
			return fmt.Errorf("demo: debit %s: %w", acc.id, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.filled = d.filled[1:]
	d.bets = append(d.bets, betID)
	return nil
}

// settleBet settles the oldest open bet, paying a winner out.
func (d *demo) settleBet(ctx context.Context) error {
	id := d.bets[0]
	won := d.rnd.IntN(5) < 2
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		status := "LOST"
		if won {
			status = "WON"
		}
		var account string
		var payout float64
		if err := tx.QueryRow(ctx, `
			UPDATE bets SET bet_status = $2 WHERE bet_id = $1
			RETURNING account_id, (placed_stake * placed_price)::float8`, id, status).Scan(&account, &payout); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return nil // deleted by someone else: nothing to settle
			}
			return fmt.Errorf("demo: settle bet %d: %w", id, err)
		}
		if !won {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + $2, updated_at = now() WHERE account_id = $1`, account, math.Round(payout*100)/100); err != nil {
			return fmt.Errorf("demo: pay %s: %w", account, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.bets = d.bets[1:]
	return nil
}

// moveBalance books a deposit, withdrawal or fee on an account.
func (d *demo) moveBalance(ctx context.Context) error {
	acc := accounts[d.rnd.IntN(len(accounts))]
	delta := float64(d.rnd.IntN(40000)-15000) / 100
	if _, err := d.pool.Exec(ctx, `UPDATE accounts SET balance = balance + $2, updated_at = now() WHERE account_id = $1`, acc.id, delta); err != nil {
		return fmt.Errorf("demo: balance %s: %w", acc.id, err)
	}
	return nil
}

// pick returns a random exchange (true) or bookmaker (false) account.
func (d *demo) pick(exchange bool) account {
	var list []account
	for _, a := range accounts {
		if a.exchange == exchange {
			list = append(list, a)
		}
	}
	return list[d.rnd.IntN(len(list))]
}

func (d *demo) liveFixture() string {
	return d.matches[d.rnd.IntN(len(d.matches))].fixture
}

// exchangeOrderID looks like the venue's own ids: a 0x hash on
// Polymarket, a numeric bet id on Betfair.
func (d *demo) exchangeOrderID(exchange string) string {
	if exchange == "polymarket" {
		return fmt.Sprintf("0x%016x%016x%016x%016x", d.rnd.Uint64(), d.rnd.Uint64(), d.rnd.Uint64(), d.rnd.Uint64())
	}
	return fmt.Sprintf("3%011d", d.rnd.Int64N(1e11))
}
