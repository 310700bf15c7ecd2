package gameserver

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// FuzzDecodePost checks the decoder of a fallback POST body, which the
// front runs on a transport worker for every POST: it never panics, what
// it accepts is within the bounds it promises, and what it accepts
// decodes the same once encoded again.
func FuzzDecodePost(f *testing.F) {
	valid, _ := msgpack.Marshal([]any{1, [][]byte{{0x00, 0x05, 0x90}, {}}})
	extra, _ := msgpack.Marshal([]any{7, [][]byte{[]byte("x")}, "ignored", map[string]int{"a": 1}})
	for _, seed := range [][]byte{
		valid, extra,
		{0xc1}, {0x80}, {0x92, 0x00, 0x90}, {0x92, 0x01, 0x91, 0xa1, 'x'},
		{0x92, 0x01, 0x90, 0x00}, {0x92, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff},
		{0x92, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x90},
		{0x92, 0x01, 0x91, 0xc6, 0xff, 0xff, 0xff, 0xff},
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePost(b)
		if err != nil {
			return
		}
		if p.firstSeq == 0 || p.firstSeq >= 1<<63 || len(p.msgs) > maxPostMessages {
			t.Fatalf("accepted firstSeq %d with %d messages", p.firstSeq, len(p.msgs))
		}
		again, err := msgpack.Marshal([]any{p.firstSeq, p.msgs})
		if err != nil {
			t.Fatal(err)
		}
		q, err := decodePost(again)
		if err != nil || q.firstSeq != p.firstSeq || len(q.msgs) != len(p.msgs) {
			t.Fatalf("round trip: %v, %d/%d messages", err, len(q.msgs), len(p.msgs))
		}
		for i := range p.msgs {
			if !bytes.Equal(p.msgs[i], q.msgs[i]) {
				t.Fatalf("message %d changed in the round trip", i)
			}
		}
	})
}
