package protocol

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// The shared test vectors live in testdata/vectors.json, a JSON list of
//
//	{"name": ..., "type": <message type as a number>,
//	 "hex": <the whole message, prefix included>,
//	 "fields": {<field name>: <decoded value>, ...}}
//
// Field names are those of docs/protocol.md. In fields, 64-bit integers
// are decimal strings (JavaScript numbers cannot hold them exactly), raw
// msgpack values are hex strings, and "str|nil" fields that are empty
// (encoded as nil) are null. STATE vectors whose body is an arena state
// also carry "arena": the decoded players.
//
// Regenerate the file and the fuzz seed corpus after changing the samples
// or the encoders with
//
//	go test ./internal/protocol/ -run TestVectors -update
var update = flag.Bool("update", false, "rewrite testdata/vectors.json and testdata/fuzz/FuzzDecode from the samples")

const vectorsPath = "testdata/vectors.json"

type vector struct {
	Name   string          `json:"name"`
	Type   uint16          `json:"type"`
	Hex    string          `json:"hex"`
	Fields json.RawMessage `json:"fields"`
}

// object is a JSON object that keeps its keys in wire order.
type object []member

type member struct {
	key   string
	value any
}

func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		v, err := json.Marshal(m.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func u64s(v uint64) string { return strconv.FormatUint(v, 10) }

func optJSON(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func rawJSON(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return hex.EncodeToString(b)
}

// fieldsOf returns a message's fields as the vectors spell them.
func fieldsOf(m Message) (object, error) {
	switch m := m.(type) {
	case *Hello:
		return object{{"version", m.Version}, {"token", optJSON(m.Token)}, {"client", optJSON(m.Client)}}, nil
	case *Welcome:
		return object{{"version", m.Version}, {"sessionID", m.SessionID}, {"node", m.Node},
			{"pingIntervalMs", m.PingIntervalMs}, {"pingTimeoutMs", m.PingTimeoutMs},
			{"maxMessage", m.MaxMessage}, {"resumeToken", optJSON(m.ResumeToken)}}, nil
	case *Ping:
		return object{{"nonce", m.Nonce}, {"rttUs", m.RTTMicros}, {"ack", u64s(m.Ack)}}, nil
	case *Pong:
		return object{{"nonce", m.Nonce}, {"ack", u64s(m.Ack)}}, nil
	case *ErrorMsg:
		return object{{"code", m.Code}, {"message", m.Message}, {"ref", m.Ref}, {"reqID", m.ReqID}}, nil
	case *Kick:
		return object{{"code", m.Code}, {"reason", m.Reason}}, nil
	case *Move:
		return object{{"url", m.URL}, {"resumeToken", m.ResumeToken}, {"delayMs", m.DelayMs}}, nil
	case *Resume:
		return object{{"sessionID", m.SessionID}, {"resumeToken", m.ResumeToken},
			{"lastSeq", u64s(m.LastSeq)}, {"token", optJSON(m.Token)}}, nil
	case *Resumed:
		return object{{"sessionID", m.SessionID}, {"fromSeq", u64s(m.FromSeq)}, {"clientSeq", u64s(m.ClientSeq)}, {"resumeToken", optJSON(m.ResumeToken)}}, nil
	case *Join:
		return object{{"reqID", m.ReqID}, {"mode", m.Mode}, {"kind", m.Kind}, {"roomID", m.RoomID},
			{"options", rawJSON(m.Options)}}, nil
	case *Joined:
		return object{{"reqID", m.ReqID}, {"roomID", m.RoomID}, {"kind", m.Kind},
			{"playerID", m.PlayerID}, {"tickRate", m.TickRate}}, nil
	case *Leave:
		return object{{"reqID", m.ReqID}}, nil
	case *Left:
		return object{{"roomID", m.RoomID}, {"reason", m.Reason}, {"code", m.Code}}, nil
	case *List:
		return object{{"reqID", m.ReqID}, {"kind", optJSON(m.Kind)}}, nil
	case *Rooms:
		rooms := make([]object, len(m.Rooms))
		for i, r := range m.Rooms {
			rooms[i] = object{{"roomID", r.RoomID}, {"kind", r.Kind}, {"players", r.Players},
				{"maxPlayers", r.MaxPlayers}, {"metadata", rawJSON(r.Metadata)}}
		}
		return object{{"reqID", m.ReqID}, {"rooms", rooms}}, nil
	case *Presence:
		return object{{"roomID", m.RoomID}, {"event", m.Event}, {"playerID", m.PlayerID}}, nil
	case *State:
		return object{{"tick", u64s(m.Tick)}, {"serverTimeNs", strconv.FormatInt(m.ServerTimeNs, 10)},
			{"body", rawJSON(m.Body)}}, nil
	case *ArenaInput:
		return object{{"seq", m.Seq}, {"dx", m.DX}, {"dy", m.DY}}, nil
	}
	return nil, fmt.Errorf("no fields for %T", m)
}

// arenaJSON returns the players of an arena state as the vectors spell
// them.
func arenaJSON(s *ArenaState) []object {
	players := make([]object, len(s.Players))
	for i, p := range s.Players {
		players[i] = object{{"id", string(p.ID)}, {"x", p.X}, {"y", p.Y}, {"lastSeq", p.LastSeq}, {"received", p.Received}}
	}
	return players
}

// vectorFields returns the fields of a vector, with "arena" added when
// arena is set.
func vectorFields(m Message, arena bool) (object, error) {
	fields, err := fieldsOf(m)
	if err != nil {
		return nil, err
	}
	if arena {
		var as ArenaState
		if err := as.Decode(m.(*State).Body); err != nil {
			return nil, err
		}
		fields = append(fields, member{"arena", arenaJSON(&as)})
	}
	return fields, nil
}

// generateVectors renders the vectors file and the fuzz seed corpus from
// the canonical samples.
func generateVectors() (vectorsJSON []byte, corpus map[string][]byte, err error) {
	var vs []vector
	corpus = make(map[string][]byte)
	for _, s := range canonicalSamples() {
		fields, err := vectorFields(s.msg, s.arena)
		if err != nil {
			return nil, nil, err
		}
		fj, err := json.Marshal(fields)
		if err != nil {
			return nil, nil, err
		}
		enc := s.msg.Append(nil)
		vs = append(vs, vector{Name: s.name, Type: uint16(s.msg.Type()), Hex: hex.EncodeToString(enc), Fields: fj})
		corpus[s.name] = []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", enc))
	}
	out, err := json.MarshalIndent(vs, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	return append(out, '\n'), corpus, nil
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (generate it with go test -run TestVectors -update)", err)
	}
	var vs []vector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatalf("%s: %v", vectorsPath, err)
	}
	return vs
}

// jsonValue parses JSON into generic values for comparison.
func jsonValue(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("parsing %s: %v", b, err)
	}
	return v
}

func TestVectors(t *testing.T) {
	want, corpus, err := generateVectors()
	if err != nil {
		t.Fatal(err)
	}
	corpusDir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if *update {
		if err := os.WriteFile(vectorsPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(corpusDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range corpus {
			if err := os.WriteFile(filepath.Join(corpusDir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The file decodes to its fields and re-encodes to its bytes.
	vs := loadVectors(t)
	covered := map[MsgType]bool{}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			raw, err := hex.DecodeString(v.Hex)
			if err != nil {
				t.Fatal(err)
			}
			typ, body, err := Split(raw)
			if err != nil {
				t.Fatal(err)
			}
			if uint16(typ) != v.Type {
				t.Fatalf("prefix type %#04x, vector says %#04x", uint16(typ), v.Type)
			}
			covered[typ] = true
			m, err := DecodeAny(typ, body)
			if err != nil {
				t.Fatal(err)
			}
			wantFields := jsonValue(t, v.Fields)
			_, arena := wantFields.(map[string]any)["arena"]
			fields, err := vectorFields(m, arena)
			if err != nil {
				t.Fatal(err)
			}
			fj, err := json.Marshal(fields)
			if err != nil {
				t.Fatal(err)
			}
			if got := jsonValue(t, fj); !reflect.DeepEqual(got, wantFields) {
				t.Fatalf("decoded fields\n%s\nwant\n%s", fj, v.Fields)
			}
			if re := hex.EncodeToString(m.Append(nil)); re != v.Hex {
				t.Fatalf("re-encoded\n%s\nwant\n%s", re, v.Hex)
			}
		})
	}
	for typ := range typeNames {
		if !covered[typ] {
			t.Errorf("no vector for %v", typ)
		}
	}
	if !covered[TypeArenaInput] {
		t.Errorf("no vector for the arena input")
	}

	// The committed files match the samples.
	got, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run go test ./internal/protocol/ -run TestVectors -update", vectorsPath)
	}
	for name, data := range corpus {
		got, err := os.ReadFile(filepath.Join(corpusDir, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("fuzz seed %s is missing or stale: run go test ./internal/protocol/ -run TestVectors -update", name)
		}
	}
}

// TestDocsQuoteVectors checks that docs/protocol.md quotes every vector's
// bytes (whitespace aside), so the examples there cannot go stale.
func TestDocsQuoteVectors(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "protocol.md"))
	if err != nil {
		t.Fatal(err)
	}
	compact := bytes.Join(bytes.Fields(doc), nil)
	for _, v := range loadVectors(t) {
		if !bytes.Contains(compact, []byte(v.Hex)) {
			t.Errorf("docs/protocol.md does not quote vector %s (%s)", v.Name, v.Hex)
		}
	}
}
