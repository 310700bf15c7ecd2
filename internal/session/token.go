package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"sync"
)

// A sessionID is a session's id: 16 random bytes, sent as unpadded
// base64url (22 characters). A session holds it raw, and the hub's index
// is keyed by it, so an id costs no string of its own; ID makes the text.
// The zero id is no session's.
type sessionID [16]byte

func newSessionID() (id sessionID) {
	for id == (sessionID{}) {
		_, _ = rand.Read(id[:])
	}
	return id
}

func (id sessionID) String() string {
	if id == (sessionID{}) {
		return ""
	}
	var text [22]byte
	base64.RawURLEncoding.Encode(text[:], id[:])
	return string(text[:])
}

// parseSessionID reads an id's text; ok is false unless it is exactly
// one, and not the zero id.
func parseSessionID(text string) (id sessionID, ok bool) {
	ok = parseBase64(id[:], text)
	return id, ok && id != sessionID{}
}

// A token is a resume token: 32 bytes, sent as unpadded base64url (43
// characters). A session does not store its own: it is an HMAC-SHA256,
// under a key only this hub knows, of the session's id and the number of
// times the session was resumed here (see Hub.tokenOf). A resume advances
// the count, so each token works once; the id keeps one session's tokens
// from another's. A session moved here from another node keeps the token
// that node gave it, in its cold state, until its first resume here.
type token [32]byte

func (t token) String() string {
	var text [43]byte
	base64.RawURLEncoding.Encode(text[:], t[:])
	return string(text[:])
}

// parseToken reads a token's text; ok is false unless it is exactly one.
func parseToken(text string) (t token, ok bool) {
	return t, parseBase64(t[:], text)
}

// parseBase64 decodes text, unpadded base64url of exactly len(dst) bytes,
// into dst.
func parseBase64(dst []byte, text string) bool {
	if base64.RawURLEncoding.EncodedLen(len(dst)) != len(text) {
		return false
	}
	n, err := base64.RawURLEncoding.Strict().Decode(dst, []byte(text))
	return err == nil && n == len(dst)
}

// tokenMACs makes a hub's resume tokens. Each MAC is keyed once, when
// made, and reset for every token, so a token allocates nothing.
type tokenMACs struct {
	key  [32]byte
	pool sync.Pool // of *tokenMAC
}

type tokenMAC struct {
	mac hash.Hash
	in  [len(sessionID{}) + 4]byte
	sum [sha256.Size]byte
}

func newTokenMACs() *tokenMACs {
	m := &tokenMACs{}
	_, _ = rand.Read(m.key[:])
	m.pool.New = func() any { return &tokenMAC{mac: hmac.New(sha256.New, m.key[:])} }
	return m
}

// token returns the token of session id after resumes resumes.
func (m *tokenMACs) token(id sessionID, resumes uint32) (t token) {
	x := m.pool.Get().(*tokenMAC)
	copy(x.in[:], id[:])
	binary.BigEndian.PutUint32(x.in[len(id):], resumes)
	x.mac.Reset()
	x.mac.Write(x.in[:])
	t = token(x.mac.Sum(x.sum[:0]))
	m.pool.Put(x)
	return t
}
