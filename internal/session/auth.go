package session

import (
	"errors"
	"fmt"
	"time"

	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// Identity is who a token says the client is.
type Identity struct {
	// UserID is the token's subject; never empty for an authenticated
	// session.
	UserID string
	// Claims are the token's other claims, passed to the room's join
	// callback.
	Claims map[string]any
	// Expires is when the token stops being valid; the session is closed
	// with 4500 then. Zero means never.
	Expires time.Time
}

// Authenticator checks the token a client sends in HELLO (and in RESUME for
// an authenticated session). An error should be a *protocol.Error with code
// 401 whose message says what is wrong; any other error is reported as
// "invalid token".
type Authenticator interface {
	Authenticate(token string) (Identity, error)
}

// HMAC authenticates JWTs signed with HS256 and a shared secret. Tokens
// must carry "sub" and "exp"; the other claims are passed through.
type HMAC struct {
	secret []byte
	leeway time.Duration
	now    func() time.Time
}

// NewHMAC returns an HS256 authenticator. The secret must be at least 32
// bytes (RFC 7518 section 3.2).
func NewHMAC(secret []byte) (*HMAC, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("auth secret is %d bytes: HS256 needs at least 32", len(secret))
	}
	return &HMAC{secret: secret, leeway: 5 * time.Second, now: time.Now}, nil
}

// Errors the HMAC authenticator returns; each names the problem.
var (
	ErrTokenMissing   = protocol.NewError(protocol.CodeUnauthorized, "token required")
	ErrTokenMalformed = protocol.NewError(protocol.CodeUnauthorized, "token malformed")
	ErrTokenExpired   = protocol.NewError(protocol.CodeUnauthorized, "token expired")
	ErrTokenSignature = protocol.NewError(protocol.CodeUnauthorized, "token signature invalid")
	ErrTokenClaims    = protocol.NewError(protocol.CodeUnauthorized, "token must carry sub and exp claims")
	ErrTokenAlg       = protocol.NewError(protocol.CodeUnauthorized, "token must be signed with HS256")
	ErrNoAuth         = protocol.NewError(protocol.CodeUnauthorized, "this server accepts no tokens: no authenticator is configured")
)

// Authenticate implements Authenticator.
func (h *HMAC) Authenticate(token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrTokenMissing
	}
	if t, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{}); err == nil && t.Method.Alg() != "HS256" {
		return Identity{}, ErrTokenAlg
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodHS256 {
			return nil, ErrTokenAlg
		}
		return h.secret, nil
	},
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(h.leeway),
		jwt.WithTimeFunc(h.now),
	)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenMalformed):
		return Identity{}, ErrTokenMalformed
	case errors.Is(err, jwt.ErrTokenExpired):
		return Identity{}, ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return Identity{}, ErrTokenSignature
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return Identity{}, ErrTokenAlg
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, jwt.ErrTokenInvalidClaims):
		return Identity{}, ErrTokenClaims
	default:
		return Identity{}, ErrTokenMalformed
	}
	sub, _ := claims.GetSubject()
	exp, _ := claims.GetExpirationTime()
	if sub == "" || exp == nil {
		return Identity{}, ErrTokenClaims
	}
	rest := make(map[string]any, len(claims))
	for k, v := range claims {
		switch k {
		case "sub", "exp", "iat", "nbf":
		default:
			rest[k] = v
		}
	}
	return Identity{UserID: sub, Claims: rest, Expires: exp.Time}, nil
}
