package protocol

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary messages to the decoders. Seeds are the
// shared vectors and testdata/fuzz/FuzzDecode. Decoding must never panic
// and must fail only with *Error; whatever decodes must re-encode to bytes
// that decode to the same message and re-encode identically. The two
// halves of the input are also read value by value with a Reader.
func FuzzDecode(f *testing.F) {
	for _, v := range loadVectors(f) {
		raw, err := hex.DecodeString(v.Hex)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte{0x00, 0x20, 0x93, 0x01, 0x02, 0x92, 0x94, 0xa1, 'a', 0x01, 0x02, 0x03, 0xc0})
	f.Add(append([]byte{0x00, 0x10, 0x95, 0x01, 0x00, 0xa0, 0xa0}, nested(40)...))
	f.Add([]byte{0x00, 0x15, 0x92, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data)
		half := len(data) / 2
		exerciseReader(t, data[:half])
		exerciseReader(t, data[half:])
	})
}

// checkErr fails unless err is an *Error with a decoding code.
func checkErr(t *testing.T, err error) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is %T, not *Error", err, err)
	}
	switch pe.Code {
	case CodeBadRequest, CodeTooLarge, CodeUnknownType:
	default:
		t.Fatalf("unexpected code %v in %v", pe.Code, err)
	}
}

func checkDecode(t *testing.T, data []byte) {
	typ, body, err := Split(data)
	if err != nil {
		checkErr(t, err)
		return
	}
	m, err := DecodeAny(typ, body)
	if err != nil {
		checkErr(t, err)
		return
	}
	enc := m.Append(nil)
	typ2, body2, err := Split(enc)
	if err != nil || typ2 != typ {
		t.Fatalf("re-encoded %v as %v (%v)", typ, typ2, err)
	}
	m2, err := DecodeAny(typ2, body2)
	if err != nil {
		t.Fatalf("re-encoding of %s does not decode: %v\n%s", short(data), err, short(enc))
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("round trip changed the message:\n%+v\n%+v", m, m2)
	}
	if enc2 := m2.Append(nil); !bytes.Equal(enc, enc2) {
		t.Fatalf("encoding not stable:\n%s\n%s", short(enc), short(enc2))
	}
	if st, ok := m.(*State); ok {
		var as ArenaState
		if err := as.Decode(st.Body); err != nil {
			checkErr(t, err)
			return
		}
		b := as.Append(nil)
		var as2 ArenaState
		if err := as2.Decode(b); err != nil {
			t.Fatalf("re-encoded arena state does not decode: %v", err)
		}
		if !samePlayers(as.Players, as2.Players) || !bytes.Equal(as2.Append(nil), b) {
			t.Fatalf("arena round trip changed the state:\n%+v\n%+v", as.Players, as2.Players)
		}
	}
}

// samePlayers compares arena players as the wire does: a nil ID is
// encoded as the empty string, so nil and empty IDs are the same.
func samePlayers(a, b []ArenaPlayer) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		p, q := a[i], b[i]
		if !bytes.Equal(p.ID, q.ID) || p.X != q.X || p.Y != q.Y || p.LastSeq != q.LastSeq || p.Received != q.Received {
			return false
		}
	}
	return true
}

// exerciseReader reads data value by value with the typed read methods,
// falling back to Skip, and checks the Reader's invariants.
func exerciseReader(t *testing.T, data []byte) {
	r := NewReader(data)
	// ReadRaw and Skip agree.
	if raw, err := r.ReadRaw(); err == nil {
		s := NewReader(data)
		if s.Skip() != nil || s.Offset() != len(raw) || !bytes.Equal(raw, data[:len(raw)]) {
			t.Fatalf("ReadRaw and Skip disagree on % x", data)
		}
	} else {
		checkErr(t, err)
		if r.Offset() != 0 {
			t.Fatalf("failed ReadRaw moved the reader")
		}
	}
	r.Reset(data)
	for r.Len() > 0 {
		start := r.Offset()
		var err error
		switch r.Peek() {
		case KindNil:
			err = r.ReadNil()
		case KindBool:
			_, err = r.ReadBool()
		case KindInt:
			if data[start] >= mpNegFixIntMin || (data[start] >= mpInt8 && data[start] <= mpInt64) {
				_, err = r.ReadInt(-1<<63, 1<<63-1)
			} else {
				_, err = r.ReadUint(1<<64 - 1)
			}
		case KindFloat:
			_, err = r.ReadFloat()
		case KindString:
			_, err = r.ReadStringBytes(MaxTokenLen)
		case KindBinary:
			_, err = r.ReadBinBytes(MaxTokenLen)
		case KindArray:
			_, err = r.ReadArrayLen()
		case KindMap:
			_, err = r.ReadMapLen()
		default:
			err = r.Skip()
		}
		if err != nil {
			checkErr(t, err)
			if r.Offset() != start {
				t.Fatalf("failed read moved the reader from %d to %d", start, r.Offset())
			}
			if err := r.Skip(); err != nil {
				checkErr(t, err)
				return
			}
		}
		if r.Offset() <= start || r.Offset() > len(data) {
			t.Fatalf("reader at %d after %d", r.Offset(), start)
		}
	}
}
