package centrifugo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The version compared with, pinned: figures of another version are not
// comparable with earlier ones.
const (
	Module  = "github.com/centrifugal/centrifugo/v5"
	Version = "v5.4.9"
)

// Build returns Centrifugo's binary in cacheDir, building it there from
// the module's source on first use (about a minute). It downloads the one
// version it names: `go install module@version` would also ask the proxy
// for the module's version list, which a proxy may refuse.
func Build(ctx context.Context, cacheDir string, log io.Writer) (string, error) {
	bin := filepath.Join(cacheDir, "centrifugo-"+Version)
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	src, err := download(ctx, cacheDir)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(log, "building Centrifugo %s into %s\n", Version, bin)
	// A partial binary must never be taken for a built one.
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	build := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags=-X "+Module+"/internal/build.Version="+strings.TrimPrefix(Version, "v"), "-o", tmp, ".")
	build.Dir, build.Env = src, goEnv()
	build.Stdout, build.Stderr = log, log
	if err := build.Run(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("build Centrifugo %s: %w", Version, err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return bin, nil
}

// download fetches the module's source into the module cache and returns
// its directory. It runs outside any module so that no go.mod or go.sum
// changes.
func download(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", Module+"@"+Version)
	var stderr bytes.Buffer
	cmd.Dir, cmd.Env, cmd.Stderr = dir, goEnv(), &stderr
	out, err := cmd.Output()
	var m struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &m); jerr == nil && m.Error != "" {
		return "", fmt.Errorf("download %s@%s: %s", Module, Version, m.Error)
	}
	if err != nil {
		return "", fmt.Errorf("download %s@%s: %w\n%s", Module, Version, err, stderr.Bytes())
	}
	if m.Dir == "" {
		return "", fmt.Errorf("download %s@%s: no source directory in %q", Module, Version, out)
	}
	return m.Dir, nil
}

// goEnv is the environment of the go commands: Centrifugo's own go.mod
// and go.sum decide, whatever workspace or flags the caller has set.
func goEnv() []string {
	return append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
}
