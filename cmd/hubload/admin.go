package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// admin calls the hub's admin API (SPEC §8).
type admin struct {
	url   string
	token string
	http  *http.Client
}

func newAdmin(url, token string) *admin {
	return &admin{url: url, token: token, http: &http.Client{Timeout: 30 * time.Second}}
}

// apiKey is a key created for the run.
type apiKey struct {
	ID  int64  `json:"id"`
	Key string `json:"apiKey"`
}

// maxKeyConnections is the admin API's largest maxConnections.
const maxKeyConnections = 10000

// clientCreate creates client name; one that exists already is fine.
func (a *admin) clientCreate(ctx context.Context, name string) error {
	status, body, err := a.do(ctx, http.MethodPost, "/admin/clients", map[string]any{"client": name})
	if err != nil {
		return err
	}
	if status != http.StatusCreated && status != http.StatusConflict {
		return fmt.Errorf("POST /admin/clients %s: %d %s", name, status, body)
	}
	return nil
}

// keyCreate creates a key of client name allowing maxConns connections.
func (a *admin) keyCreate(ctx context.Context, name string, maxConns int) (apiKey, error) {
	status, body, err := a.do(ctx, http.MethodPost, "/admin/clients/"+name+"/keys",
		map[string]any{"label": "hubload", "maxConnections": maxConns})
	if err != nil {
		return apiKey{}, err
	}
	if status != http.StatusCreated {
		return apiKey{}, fmt.Errorf("POST /admin/clients/%s/keys: %d %s", name, status, body)
	}
	var k apiKey
	if err := json.Unmarshal(body, &k); err != nil {
		return apiKey{}, fmt.Errorf("POST /admin/clients/%s/keys: %w", name, err)
	}
	return k, nil
}

// keyRevoke revokes key id.
func (a *admin) keyRevoke(ctx context.Context, id int64) error {
	status, body, err := a.do(ctx, http.MethodDelete, "/admin/keys/"+strconv.FormatInt(id, 10), nil)
	if err != nil {
		return err
	}
	if status != http.StatusNoContent {
		return fmt.Errorf("DELETE /admin/keys/%d: %d %s", id, status, body)
	}
	return nil
}

func (a *admin) do(ctx context.Context, method, path string, in any) (int, []byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.url+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, bytes.TrimSpace(out), err
}
