package wire

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAppendTime compares the hand-written formatter with time.AppendFormat.
func TestAppendTime(t *testing.T) {
	t.Parallel()
	for _, tm := range []time.Time{
		{},
		time.Date(2026, 2, 15, 10, 30, 5, 7_000_000, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999_999_999, time.FixedZone("X", -5*3600)),
		time.Date(999, 1, 2, 3, 4, 5, 6, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, -1),
	} {
		require.Equal(t, tm.UTC().Format("2006-01-02T15:04:05.000"), string(appendTime(nil, tm, 'T', true)), tm.String())
		require.Equal(t, tm.UTC().Format(time.DateTime), string(appendTime(nil, tm, ' ', false)), tm.String())
	}
}

func FuzzAppendTime(f *testing.F) {
	f.Add(int64(0), int64(0))
	f.Add(int64(1771151405), int64(7_000_000))
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		tm := time.Unix(sec, nsec)
		require.Equal(t, tm.UTC().Format("2006-01-02T15:04:05.000"), string(appendTime(nil, tm, 'T', true)))
		require.Equal(t, tm.UTC().Format(time.DateTime), string(appendTime(nil, tm, ' ', false)))
	})
}
