package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
)

// Row filters (SPEC §10): {"<channel>":{"<payloadKey>":[<values>]}}. A
// channel's events (and snapshot rows) pass when, for every key, the
// payload's field equals one of the values; values are strings, numbers
// or booleans, numbers compared by value (1.50 equals 1.5).

// Filter limits per subscription (SPEC §10).
const (
	MaxFilterKeys   = 8
	MaxFilterValues = 256
)

// ErrInvalidFilter is returned by ParseFilter for anything but a filter of
// the form above within the limits.
var ErrInvalidFilter = errors.New("invalid filter")

// Filter is a subscription's filters by channel.
type Filter map[string]*ChannelFilter

// ChannelFilter is one channel's filter; never changed once parsed.
type ChannelFilter struct {
	// Key is the filter in a canonical form: equal filters have equal
	// keys, so that a result is shared by every session that has it.
	Key    string
	fields []fieldFilter // sorted by name
}

type fieldFilter struct {
	name   string
	values map[string]struct{} // canonical scalars
}

// ParseFilter reads a subscribe's filter; nil or null is no filter.
func ParseFilter(raw json.RawMessage) (Filter, error) {
	if len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	var in map[string]map[string][]json.RawMessage
	if err := json.Unmarshal(raw, &in); err != nil || len(in) == 0 {
		return nil, ErrInvalidFilter
	}
	f := Filter{}
	keys, values := 0, 0
	for channel, fields := range in {
		if len(fields) == 0 {
			return nil, ErrInvalidFilter
		}
		cf := &ChannelFilter{}
		for name, vals := range fields {
			keys++
			values += len(vals)
			if len(vals) == 0 || keys > MaxFilterKeys || values > MaxFilterValues {
				return nil, ErrInvalidFilter
			}
			ff := fieldFilter{name: name, values: make(map[string]struct{}, len(vals))}
			for _, v := range vals {
				c, ok := canonicalScalar(v)
				if !ok {
					return nil, ErrInvalidFilter
				}
				ff.values[c] = struct{}{}
			}
			cf.fields = append(cf.fields, ff)
		}
		slices.SortFunc(cf.fields, func(a, b fieldFilter) int { return strings.Compare(a.name, b.name) })
		cf.Key = cf.key()
		f[channel] = cf
	}
	return f, nil
}

// key is the canonical form: names quoted, values sorted.
func (cf *ChannelFilter) key() string {
	var b strings.Builder
	for _, ff := range cf.fields {
		fmt.Fprintf(&b, "%q:", ff.name)
		vals := make([]string, 0, len(ff.values))
		for v := range ff.values {
			vals = append(vals, v)
		}
		slices.Sort(vals)
		for _, v := range vals {
			fmt.Fprintf(&b, "%q,", v)
		}
		b.WriteByte(';')
	}
	return b.String()
}

// Match reports whether a payload (a JSON object) passes the filter; a
// payload that lacks a field, or is no object, does not.
func (cf *ChannelFilter) Match(payload []byte) bool {
	var fields map[string]json.RawMessage
	if json.Unmarshal(payload, &fields) != nil {
		return false
	}
	for _, ff := range cf.fields {
		v, ok := fields[ff.name]
		if !ok {
			return false
		}
		c, ok := canonicalScalar(v)
		if !ok {
			return false
		}
		if _, ok := ff.values[c]; !ok {
			return false
		}
	}
	return true
}

// canonicalScalar returns a JSON string, number or boolean in a form
// where equal values are equal strings; false for anything else.
func canonicalScalar(v json.RawMessage) (string, bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "", false
	}
	switch c := v[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return "", false
		}
		return "s" + s, true
	case bytes.Equal(v, []byte("true")):
		return "t", true
	case bytes.Equal(v, []byte("false")):
		return "f", true
	case c == '-' || c >= '0' && c <= '9':
		var n json.Number
		if json.Unmarshal(v, &n) != nil || len(n) > 64 {
			return "", false // a longer number is no column value a filter needs
		}
		// 1e999999999 is short, and would cost big.Rat a huge power of ten.
		if i := strings.IndexAny(string(n), "eE"); i >= 0 {
			if exp, err := strconv.Atoi(string(n[i+1:])); err != nil || exp > 400 || exp < -400 {
				return "", false
			}
		}
		r, ok := new(big.Rat).SetString(string(n))
		if !ok {
			return "", false
		}
		return "n" + r.RatString(), true
	}
	return "", false
}
