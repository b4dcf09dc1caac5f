package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFallbackName(t *testing.T) {
	t.Parallel()
	tests := []struct{ project, want string }{
		{"/work/main", "hub-work-main"},
		{"/root/hub", "hub-root-hub"},
		{"/root/my projects/hüb", "hub-root-my-projects-h-b"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, fallbackName(tt.project))
	}

	// A long path keeps its tail and gains a hash of the whole, so the
	// socket path fits the Unix limit and different projects differ.
	long := "/root/" + strings.Repeat("very-long-directory-name/", 8) + "hub"
	got := fallbackName(long)
	require.True(t, strings.HasPrefix(got, "hub-"), got)
	require.Contains(t, got, "directory-name-hub-")
	require.Less(t, len(filepath.Join("/var/tmp", got, ".s.PGSQL.5432")), 100)
	require.NotEqual(t, got, fallbackName(long+"2"))
}
