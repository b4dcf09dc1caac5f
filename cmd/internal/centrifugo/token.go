package centrifugo

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"
)

// jwtHeader is the encoded header of every token: HS256, which Centrifugo
// checks with token_hmac_secret_key.
var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// Token returns a connection token for user sub that expires at exp, as
// an application's backend would hand it to its clients.
func Token(secret string, sub string, exp time.Time) string {
	claims, _ := json.Marshal(struct {
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}{sub, exp.Unix()})
	return sign(secret, jwtHeader+"."+base64.RawURLEncoding.EncodeToString(claims))
}

// sign appends the HS256 signature of the encoded header and claims.
func sign(secret string, unsigned string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(unsigned))
	return unsigned + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
