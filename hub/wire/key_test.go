package wire_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/hub/wire"
)

func TestValidKeyA(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		key  string
		want bool
	}{
		{"3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a6b", true},
		{"3F2B8C1E-9A4D-4E7F-8B6A-1C2D3E4F5A6B", true},
		{"00000000-0000-0000-0000-000000000000", true},
		{"a9564ebc3289b7a14551baf8ad5ec60a", false}, // seed 001's form: protocol B and SSE only
		{"", false},
		{"your-uuid-api-key", false},
		{"3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a6", false},
		{"3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a6b0", false},
		{"3f2b8c1e9a4d-4e7f-8b6a-1c2d3e4f5a6b-", false},
		{"3f2b8c1g-9a4d-4e7f-8b6a-1c2d3e4f5a6b", false},
		{"{3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a}", false},
		{" 3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a6", false},
	} {
		require.Equal(t, tt.want, wire.ValidKeyA(tt.key), tt.key)
	}
}

func TestCanonicalKey(t *testing.T) {
	t.Parallel()
	const canon = "3f2b8c1e-9a4d-4e7f-8b6a-1c2d3e4f5a6b"
	for _, tt := range []struct {
		key   string
		hex32 bool
		want  string // "" when refused
	}{
		{canon, false, canon},
		{canon, true, canon},
		{"3F2B8C1E-9A4D-4E7F-8B6A-1C2D3E4F5A6B", false, canon},
		{"3f2b8c1e9a4d4e7f8b6a1c2d3e4f5a6b", true, canon},
		{"3F2B8C1E9A4D4E7F8B6A1C2D3E4F5A6B", true, canon},
		{"3f2b8c1e9a4d4e7f8b6a1c2d3e4f5a6b", false, ""},
		{"a9564ebc3289b7a14551baf8ad5ec60a", true, "a9564ebc-3289-b7a1-4551-baf8ad5ec60a"},
		{"3f2b8c1e9a4d4e7f8b6a1c2d3e4f5a6z", true, ""},
		{"3f2b8c1e-9a4d4e7f8b6a1c2d3e4f5a6", true, ""},
		{"", true, ""},
	} {
		got, ok := wire.CanonicalKey(tt.key, tt.hex32)
		require.Equal(t, tt.want != "", ok, tt.key)
		require.Equal(t, tt.want, got, tt.key)
	}
}
