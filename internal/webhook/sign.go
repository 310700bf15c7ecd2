package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a delivery.
const (
	HeaderEventID   = "X-Gameserver-Event-Id"  // the event's ID: deliveries of one event share it
	HeaderEvent     = "X-Gameserver-Event"     // the event's type, e.g. "room.created"
	HeaderTimestamp = "X-Gameserver-Timestamp" // Unix seconds when this attempt was signed
	HeaderSignature = "X-Gameserver-Signature" // "v1=" and the hex HMAC-SHA256 of timestamp + "." + body
	HeaderAttempt   = "X-Gameserver-Attempt"   // 1 for the first attempt, 2 for the first retry...
)

// DefaultTolerance is how far a delivery's timestamp may be from the
// receiver's clock for [Verify] to accept it.
const DefaultTolerance = 5 * time.Minute

// Errors of [Verify].
var (
	ErrNoSignature  = errors.New("webhook: missing timestamp or signature header")
	ErrBadTimestamp = errors.New("webhook: timestamp outside the tolerance")
	ErrBadSignature = errors.New("webhook: signature does not match")
)

// Sign returns the signature header value for a body sent at timestamp
// (Unix seconds, as a decimal string): "v1=" and the hex HMAC-SHA256 of
// timestamp + "." + body under secret.
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a delivery as a receiver would: the timestamp must be
// within tolerance of now (zero means [DefaultTolerance]), and one of the
// comma-separated v1 signatures must match body under secret. body must be
// the raw request body, byte for byte.
func Verify(secret []byte, h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	ts, sig := h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if ts == "" || sig == "" {
		return ErrNoSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrBadTimestamp
	}
	want := []byte(Sign(secret, ts, body))
	for _, s := range strings.Split(sig, ",") {
		if hmac.Equal([]byte(strings.TrimSpace(s)), want) {
			return nil
		}
	}
	return ErrBadSignature
}
