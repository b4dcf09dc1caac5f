package centrifugo

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSignMatchesTheJWTIOExample(t *testing.T) {
	t.Parallel()
	// The HS256 example token of jwt.io.
	const unsigned = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
	got := sign("your-256-bit-secret", unsigned)
	if want := unsigned + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"; got != want {
		t.Fatalf("sign = %s, want %s", got, want)
	}
}

func TestTokenClaims(t *testing.T) {
	t.Parallel()
	exp := time.Unix(1_900_000_000, 0)
	tok := Token("secret", "hubload-t007", exp)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != jwtHeader {
		t.Fatalf("token %q: want header.claims.signature with the HS256 header", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil || claims.Sub != "hubload-t007" || claims.Exp != exp.Unix() {
		t.Fatalf("claims %s: %+v, %v", raw, claims, err)
	}
	if sign("secret", parts[0]+"."+parts[1]) != tok {
		t.Fatal("signature does not verify")
	}
	if sign("other", parts[0]+"."+parts[1]) == tok {
		t.Fatal("signature verifies with another secret")
	}
}
