package hub

import (
	"github.com/hubdev/hub/hub/wire"
	"github.com/hubdev/hub/store"
)

// sessionSet is the sessions of one client on one channel (or on every
// channel).
type sessionSet map[*Session]struct{}

// index is who receives what (SPEC §6): channel → client → sessions, and
// client → the sessions subscribed to every channel, so that an event
// costs in proportion to the sessions that receive it. The hub's lock
// guards it.
type index struct {
	byChannel map[string]map[string]sessionSet
	byClient  map[string]sessionSet
	// filters holds one copy of each distinct row filter the indexed
	// subscriptions have, so that an event is checked once per distinct
	// filter however many sessions have it (SPEC §10; message.passes).
	filters map[string]*filterRef
}

// filterRef is an interned filter and the subscriptions that hold it.
type filterRef struct {
	f    *wire.ChannelFilter
	refs int
}

func newIndex() index {
	return index{byChannel: map[string]map[string]sessionSet{}, byClient: map[string]sessionSet{}, filters: map[string]*filterRef{}}
}

// add indexes s under sub, and makes sub's filters the interned ones.
func (x *index) add(s *Session, sub *Subscription) {
	for channel, f := range sub.Filter {
		r := x.filters[f.Key]
		if r == nil {
			r = &filterRef{f: f}
			x.filters[f.Key] = r
		}
		r.refs++
		sub.Filter[channel] = r.f
	}
	if sub.All {
		addTo(x.byClient, sub.Client, s)
		return
	}
	for _, c := range sub.Channels {
		byClient := x.byChannel[c]
		if byClient == nil {
			byClient = map[string]sessionSet{}
			x.byChannel[c] = byClient
		}
		addTo(byClient, sub.Client, s)
	}
}

// remove undoes add(s, sub); sub may be nil.
func (x *index) remove(s *Session, sub *Subscription) {
	if sub == nil {
		return
	}
	for _, f := range sub.Filter {
		if r := x.filters[f.Key]; r != nil {
			if r.refs--; r.refs == 0 {
				delete(x.filters, f.Key)
			}
		}
	}
	if sub.All {
		removeFrom(x.byClient, sub.Client, s)
		return
	}
	for _, c := range sub.Channels {
		if byClient := x.byChannel[c]; byClient != nil {
			removeFrom(byClient, sub.Client, s)
			if len(byClient) == 0 {
				delete(x.byChannel, c)
			}
		}
	}
}

// route calls offer for each session that may receive e. The event's
// scope, not its client alone, decides who may see it (SPEC §2.2): a
// tenant channel's event without a client reaches no one, and so does an
// event of a channel that is not attached.
func (x *index) route(e *store.Event, offer func(sessionSet)) {
	byClient := x.byChannel[e.Channel]
	switch {
	case e.Scope == store.ScopeNone, e.Scope == store.ScopeTenant && e.Client == "":
		return
	case e.Client != "":
		offer(byClient[e.Client])
		offer(x.byClient[e.Client])
		return
	}
	for _, set := range byClient {
		offer(set)
	}
	for _, set := range x.byClient {
		offer(set)
	}
}

func addTo(m map[string]sessionSet, k string, s *Session) {
	set := m[k]
	if set == nil {
		set = sessionSet{}
		m[k] = set
	}
	set[s] = struct{}{}
}

func removeFrom(m map[string]sessionSet, k string, s *Session) {
	if set := m[k]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}
