package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/hubdev/hub/store/storetest"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and localhost
// and its key as PEM files, and returns their paths and a pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hub test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// With HUB_TLS_CERT/HUB_TLS_KEY the hub serves wss itself (SPEC §9).
func TestServeTLSBroadcastsOverWSS(t *testing.T) {
	t.Parallel()
	u := storetest.NewDB(t)
	pool := storetest.Pool(t, u)
	key := newTenant(t, pool, "acme", 5)
	_, err := pool.Exec(context.Background(), `INSERT INTO orders (client, account_id, order_status) VALUES ('acme', 'a1', 'open')`)
	require.NoError(t, err)

	certFile, keyFile, roots := selfSigned(t)
	h := startInProc(t, u, map[string]string{"HUB_TLS_CERT": certFile, "HUB_TLS_KEY": keyFile})
	require.Regexp(t, `^https://127\.0\.0\.1:\d+$`, h.url, "the banner names the https address")
	tlsCfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	client := tlsClient(tlsCfg)
	t.Cleanup(client.CloseIdleConnections)
	waitStatus(t, client, h.url+"/readyz", 200, 30*time.Second)

	// A client that does not trust the certificate is refused by TLS.
	_, _, err = (&websocket.Dialer{HandshakeTimeout: 5 * time.Second}).Dial(h.wsURL(), nil)
	var unknownAuthority x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknownAuthority, "the hub presents the configured certificate")

	d := &websocket.Dialer{TLSClientConfig: tlsCfg, HandshakeTimeout: 5 * time.Second}
	c := dialA(t, d, h.wsURL())
	require.Regexp(t, `^wss://`, h.wsURL())
	// Resume after the INSERT: a hub that starts while a transaction of
	// another database of the cluster is open starts before it (SPEC §2.3).
	inserted := logOrder(t, pool, "orders", "acme")
	require.Len(t, inserted, 1)
	c.subscribe(key, []string{"orders"}, inserted[0])
	_, err = pool.Exec(context.Background(), `UPDATE orders SET order_status = 'matched' WHERE client = 'acme'`)
	require.NoError(t, err)

	got := c.broadcasts(1, 10*time.Second)[0]
	require.Equal(t, "orders", got.Channel)
	require.Equal(t, "UPDATE", got.Event)
	require.Equal(t, logOrder(t, pool, "orders", "acme")[1], got.ID, "the UPDATE's position")
	var payload, old map[string]any
	require.NoError(t, json.Unmarshal(got.Payload, &payload))
	require.NoError(t, json.Unmarshal(got.Old, &old))
	require.Equal(t, "matched", payload["orderStatus"])
	require.Equal(t, map[string]any{"orderStatus": "open"}, old)
}
