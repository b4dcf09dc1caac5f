package store

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The wire form of a captured row (SPEC §2.2), built when an event is read
// (migration 8): the capture records to_jsonb of the row as it is, in the
// writer's TimeZone, because building the wire form in the trigger was
// half of what every writer paid per row. The output is byte for byte what
// migration 7's capture stored: jsonb's own text, its keys in jsonb's order
// (shorter first, then bytewise), values copied from the raw row except
// timestamps.

// valueKind says what becomes of a column's values on the wire.
type valueKind uint8

const (
	kindPlain valueKind = iota // as to_jsonb gives them
	kindTZ                     // timestamptz: UTC with Z
	kindTS                     // timestamp: taken to be UTC, Z appended
	// A domain or an array over timestamptz: UTC with "+00:00", which is
	// what migration 7's capture stored, running under TimeZone UTC
	// without converting any type but timestamptz and timestamp.
	kindTZNested
)

// column is how one column of a channel's table goes on the wire.
type column struct {
	key  string // hub.camel of the column name
	kind valueKind
	// Filled in by newColumnSet:
	prefix string // the key as jsonb prints it in an object, `"key": `
	rank   int32  // the key's place in jsonb's order among the set's keys; one key, one rank
}

// columnSet is the columns of one table, by name.
type columnSet struct {
	byName map[string]int32 // index into cols
	cols   []column
}

// newColumnSet indexes cols by column name.
func newColumnSet(cols map[string]column) *columnSet {
	set := &columnSet{byName: make(map[string]int32, len(cols)), cols: make([]column, 0, len(cols))}
	for name, c := range cols {
		c.prefix = string(append(appendJSONString(nil, c.key), ": "...))
		set.byName[name] = int32(len(set.cols))
		set.cols = append(set.cols, c)
	}
	order := make([]int, len(set.cols))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return compareKeys(set.cols[a].key, set.cols[b].key) })
	var rank int32
	for i, c := range order {
		if i > 0 && set.cols[order[i-1]].key != set.cols[c].key {
			rank++
		}
		set.cols[c].rank = rank
	}
	return set
}

// lookup finds a key as it is written between its quotes.
func (s *columnSet) lookup(name []byte) (int32, bool) {
	i, ok := s.byName[string(name)]
	if !ok && bytes.IndexByte(name, '\\') >= 0 {
		i, ok = s.byName[keyString(name)]
	}
	return i, ok
}

// field is one key and value of a raw row: its column in the set, and
// where the value is in the row. Without pointers, so that a page's
// fields cost the garbage collector nothing.
type field struct {
	col        int32
	start, end int32
}

// rowConverter turns raw rows into their wire form. Its buffers are reused
// from one row to the next, so converting a page allocates only the rows
// that come out longer than they went in. Not safe for concurrent use.
type rowConverter struct {
	fields []field
	out    []byte
}

// convert returns row in wire form, given its table's columns; row's
// memory is reused when the result fits. ok is false when a key is not
// in set; row is then returned as it is. A row that is not a JSON object
// comes back unchanged: only the capture writes raw rows, and it writes
// objects.
func (c *rowConverter) convert(row []byte, set *columnSet) (wire []byte, ok bool) {
	ok, valid := c.scan(row, set)
	if !ok {
		return row, false
	}
	if !valid || len(row) > math.MaxInt32 {
		return row, true
	}
	sortFields(c.fields, set.cols)
	c.out = appendFields(c.out[:0], row, c.fields, set.cols)
	if len(c.out) <= cap(row) {
		return append(row[:0], c.out...), true
	}
	return bytes.Clone(c.out), true
}

// unknownKeys lists the keys of row that are not in set.
func unknownKeys(row []byte, set *columnSet) []string {
	var names []string
	_ = eachField(row, func(name []byte, _, _ int) bool {
		if _, ok := set.lookup(name); !ok {
			names = append(names, keyString(name))
		}
		return true
	})
	return names
}

// scan splits row into c.fields. valid is false when row is not a JSON
// object; ok is false when a key is not in set.
func (c *rowConverter) scan(row []byte, set *columnSet) (ok, valid bool) {
	c.fields = c.fields[:0]
	ok = true
	valid = eachField(row, func(name []byte, start, end int) bool {
		i, found := set.lookup(name)
		if !found {
			ok = false
			return false
		}
		c.fields = append(c.fields, field{col: i, start: int32(start), end: int32(end)})
		return true
	})
	return ok, valid
}

// sortFields puts fields in jsonb's key order, keeping the raw order among
// equal keys. Two columns with one wire key ("a_b" and "aB") become one
// key, whose value jsonb_object_agg took from the last of them in the raw
// row, as appendFields does.
func sortFields(fields []field, cols []column) {
	if len(fields) > 32 {
		slices.SortStableFunc(fields, func(a, b field) int { return int(cols[a.col].rank - cols[b.col].rank) })
		return
	}
	for i := 1; i < len(fields); i++ {
		for j := i; j > 0 && cols[fields[j-1].col].rank > cols[fields[j].col].rank; j-- {
			fields[j-1], fields[j] = fields[j], fields[j-1]
		}
	}
}

// compareKeys is jsonb's order of object keys: by length, then bytewise.
func compareKeys(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// appendFields appends the object of sorted fields as jsonb prints it.
func appendFields(dst, row []byte, fields []field, cols []column) []byte {
	dst = append(dst, '{')
	first := true
	for i, f := range fields {
		col := &cols[f.col]
		if i+1 < len(fields) && cols[fields[i+1].col].rank == col.rank {
			continue // the last of equal keys wins
		}
		if !first {
			dst = append(dst, ", "...)
		}
		first = false
		dst = append(dst, col.prefix...)
		dst = appendValue(dst, row[f.start:f.end], col.kind)
	}
	return append(dst, '}')
}

// appendValue appends a column's value in wire form. A value that is not
// what its column's type gives (a row written under an older type of the
// column) is copied as it is.
func appendValue(dst, v []byte, kind valueKind) []byte {
	switch kind {
	case kindTZ:
		if s, ok := plainString(v); ok {
			if out, ok := appendUTC(append(dst, '"'), s, true); ok {
				return append(out, '"')
			}
		}
	case kindTS:
		if s, ok := plainString(v); ok && string(s) != "infinity" && string(s) != "-infinity" {
			return append(append(append(dst, '"'), s...), 'Z', '"')
		}
	case kindTZNested:
		return appendNestedUTC(dst, v)
	}
	return append(dst, v...)
}

// appendNestedUTC copies v, a domain's value or an array, with each
// timestamp in it in UTC with "+00:00".
func appendNestedUTC(dst, v []byte) []byte {
	for len(v) > 0 {
		i := bytes.IndexByte(v, '"')
		if i < 0 {
			break
		}
		end := stringEnd(v, i)
		if end < 0 {
			break
		}
		dst = append(dst, v[:i]...)
		if s, ok := plainString(v[i:end]); ok {
			if out, ok := appendUTC(append(dst, '"'), s, false); ok {
				dst = append(out, '"')
				v = v[end:]
				continue
			}
		}
		dst = append(dst, v[i:end]...)
		v = v[end:]
	}
	return append(dst, v...)
}

// plainString returns the contents of v when it is a JSON string without
// escapes, as every timestamp is.
func plainString(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	s := v[1 : len(v)-1]
	if bytes.IndexByte(s, '\\') >= 0 || bytes.IndexByte(s, '"') >= 0 {
		return nil, false
	}
	return s, true
}

// appendUTC appends s, a timestamptz as to_jsonb writes it in any
// TimeZone ("2026-02-15T18:30:05.5+08:00"; " BC" last for years before 1),
// as it reads in UTC: "…Z" when z, else "…+00:00", which is also what
// becomes of a year BC with z, as migration 7's capture left it. The
// fraction is kept as written. ok is false when s is not such a
// timestamp ("infinity").
func appendUTC(dst, s []byte, z bool) ([]byte, bool) {
	t, frac, ok := parseTimestamptz(s)
	if !ok {
		return dst, false
	}
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	bc := year <= 0
	if bc {
		year = 1 - year
	}
	dst = appendPadded(dst, year, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendPadded(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendPadded(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, sec, 2)
	dst = append(dst, frac...)
	switch {
	case bc:
		dst = append(dst, "+00:00 BC"...)
	case z:
		dst = append(dst, 'Z')
	default:
		dst = append(dst, "+00:00"...)
	}
	return dst, true
}

// parseTimestamptz reads PostgreSQL's XSD form of a timestamptz:
// digits of the year (four or more), -MM-DDTHH:MM:SS, an optional
// fraction, the offset ±HH:MM with :SS when the zone's offset has seconds
// (local mean time), and " BC" for years before 1. It returns the instant
// (with the astronomical year: 1 BC is year 0) and the fraction with its
// dot.
func parseTimestamptz(s []byte) (t time.Time, frac []byte, ok bool) {
	bc := bytes.HasSuffix(s, []byte(" BC"))
	if bc {
		s = s[:len(s)-3]
	}
	i := bytes.IndexByte(s, '-')
	if i < 4 {
		return time.Time{}, nil, false
	}
	year, ok := number(s[:i])
	if !ok {
		return time.Time{}, nil, false
	}
	s = s[i:]
	// -MM-DDTHH:MM:SS
	if len(s) < 15 || s[0] != '-' || s[3] != '-' || s[6] != 'T' || s[9] != ':' || s[12] != ':' {
		return time.Time{}, nil, false
	}
	month, ok1 := number(s[1:3])
	day, ok2 := number(s[4:6])
	hour, ok3 := number(s[7:9])
	minute, ok4 := number(s[10:12])
	sec, ok5 := number(s[13:15])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return time.Time{}, nil, false
	}
	s = s[15:]
	if len(s) > 0 && s[0] == '.' {
		n := 1
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		frac, s = s[:n], s[n:]
	}
	offset, ok := parseOffset(s)
	if !ok {
		return time.Time{}, nil, false
	}
	if bc {
		year = 1 - year
	}
	t = time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC).Add(-offset)
	return t, frac, true
}

// parseOffset reads ±HH:MM or ±HH:MM:SS, all of s.
func parseOffset(s []byte) (time.Duration, bool) {
	if (len(s) != 6 && len(s) != 9) || (s[0] != '+' && s[0] != '-') || s[3] != ':' {
		return 0, false
	}
	h, ok1 := number(s[1:3])
	m, ok2 := number(s[4:6])
	sec, ok3 := 0, true
	if len(s) == 9 {
		if s[6] != ':' {
			return 0, false
		}
		sec, ok3 = number(s[7:9])
	}
	if !ok1 || !ok2 || !ok3 {
		return 0, false
	}
	d := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second
	if s[0] == '-' {
		d = -d
	}
	return d, true
}

// number reads a decimal number of at most 9 digits.
func number(s []byte) (int, bool) {
	if len(s) == 0 || len(s) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func appendPadded(dst []byte, n, width int) []byte {
	var buf [20]byte
	d := strconv.AppendInt(buf[:0], int64(n), 10)
	for i := len(d); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, d...)
}

// appendJSONString appends s quoted as PostgreSQL's escape_json does.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			if c < 0x20 {
				const hex = "0123456789abcdef"
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			} else {
				dst = append(dst, c)
			}
		}
	}
	return append(dst, '"')
}

// camel is hub.camel (migration 1) in Go, for the keys of columns that
// the table no longer has: the others take their keys from hub.camel
// itself. PostgreSQL's upper() follows the database's locale; this one
// follows Unicode's simple case mapping, the same for ASCII.
func camel(name string) string {
	parts := strings.Split(strings.Trim(name, "_"), "_")
	var b strings.Builder
	b.Grow(len(name))
	for i, p := range parts {
		if i == 0 || p == "" {
			b.WriteString(p)
			continue
		}
		r, n := utf8.DecodeRuneInString(p)
		b.WriteRune(unicode.ToUpper(r))
		b.WriteString(p[n:])
	}
	return b.String()
}

// eachField calls fn with each key (as written between its quotes) and
// where its value is in the JSON object row, in order, until fn returns
// false. It
// reports whether row is an object that it read to its end, or to where
// fn stopped it. Values are skipped, not checked: the rows come from
// jsonb.
func eachField(row []byte, fn func(name []byte, start, end int) bool) bool {
	i := skipSpace(row, 0)
	if i >= len(row) || row[i] != '{' {
		return false
	}
	i = skipSpace(row, i+1)
	if i < len(row) && row[i] == '}' {
		return skipSpace(row, i+1) == len(row)
	}
	for {
		if i >= len(row) || row[i] != '"' {
			return false
		}
		end := stringEnd(row, i)
		if end < 0 {
			return false
		}
		name := row[i+1 : end-1]
		i = skipSpace(row, end)
		if i >= len(row) || row[i] != ':' {
			return false
		}
		i = skipSpace(row, i+1)
		vend := valueEnd(row, i)
		if vend < 0 {
			return false
		}
		if !fn(name, i, vend) {
			return true
		}
		i = skipSpace(row, vend)
		if i >= len(row) {
			return false
		}
		switch row[i] {
		case ',':
			i = skipSpace(row, i+1)
		case '}':
			return skipSpace(row, i+1) == len(row)
		default:
			return false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just after the JSON string that starts at
// b[i], or -1.
func stringEnd(b []byte, i int) int {
	for j := i + 1; ; {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1
		}
		j += k
		n := 0 // the backslashes before it
		for n < j-i-1 && b[j-1-n] == '\\' {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
		j++
	}
}

// valueEnd returns the index just after the JSON value that starts at
// b[i], or -1.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end := stringEnd(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && !endsScalar(b[j]) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

func endsScalar(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

// keyString is a key as written between its quotes, unescaped.
func keyString(name []byte) string {
	if bytes.IndexByte(name, '\\') < 0 {
		return string(name)
	}
	var s string
	if err := json.Unmarshal(append(append([]byte{'"'}, name...), '"'), &s); err != nil {
		return string(name)
	}
	return s
}
