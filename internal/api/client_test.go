package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// startServed serves an API over a real listener and returns a Client of
// it with the test key.
func startServed(t *testing.T) (*served, *Client) {
	t.Helper()
	s := newServed(t, Config{})
	hs := httptest.NewServer(s.mux)
	t.Cleanup(hs.Close)
	return s, &Client{Base: hs.URL, Key: testKey}
}

// Every Backend method through a Client reaches the served backend with
// the same request and brings its answer back.
func TestClientRoundTrip(t *testing.T) {
	s, c := startServed(t)
	ctx := context.Background()

	rooms, err := c.Rooms(ctx, Filter{Kind: "chat", Node: "n1"})
	if err != nil || len(rooms) != 1 || rooms[0].ID != "r1" || rooms[0].Players != 2 || rooms[0].Metadata["<b>"] != "x" {
		t.Fatalf("rooms: %+v, %v", rooms, err)
	}
	// What reached the backend was written on the server's goroutines.
	seen := func(read func(fb *fakeBackend)) {
		s.fb.mu.Lock()
		defer s.fb.mu.Unlock()
		read(s.fb)
	}
	seen(func(fb *fakeBackend) {
		if fb.filter != (Filter{Kind: "chat", Node: "n1"}) {
			t.Errorf("filter reached the backend as %+v", fb.filter)
		}
	})

	d, err := c.Room(ctx, "r1")
	if err != nil || d.ID != "r1" || d.TickRate != 20 {
		t.Fatalf("room: %+v, %v", d, err)
	}

	opts, _ := msgpack.Marshal(map[string]any{"map": "small", "size": 4})
	cr, err := c.Create(ctx, CreateRequest{Kind: "arena", Options: opts, Reserve: []string{"u1", "u2"}})
	if err != nil || cr.Room.ID != "new1" || cr.Join.SeatDeadline == nil || !reflect.DeepEqual(cr.Join.Users, []string{"u1", "u2"}) {
		t.Fatalf("create: %+v, %v", cr, err)
	}
	seen(func(fb *fakeBackend) {
		var got map[string]any
		if err := msgpack.Unmarshal(fb.create.Options, &got); err != nil || got["map"] != "small" || got["size"] != int8(4) {
			t.Errorf("options reached the backend as %v (%v)", got, err)
		}
	})

	if err := c.Dispose(ctx, "r1", "season over"); err != nil {
		t.Fatalf("dispose: %v", err)
	}
	seen(func(fb *fakeBackend) {
		if fb.dispose != [2]string{"r1", "season over"} {
			t.Errorf("dispose reached the backend as %v", fb.dispose)
		}
	})
	kick := KickRequest{RoomID: "r1", PlayerID: "p/1", Code: 4001, Message: "bye"}
	if err := c.Kick(ctx, kick); err != nil {
		t.Fatalf("kick: %v", err)
	}
	seen(func(fb *fakeBackend) {
		if fb.kick != kick {
			t.Errorf("kick reached the backend as %+v", fb.kick)
		}
	})
	body := []byte{0x92, 0xc4, 0x02, 0x00, 0xff, 0xd4, 0x01, 0x02} // bin and ext: no JSON form
	for _, player := range []string{"", "p1"} {
		if err := c.Send(ctx, SendRequest{RoomID: "r1", PlayerID: player, Type: 0x1101, Body: body}); err != nil {
			t.Fatalf("send to %q: %v", player, err)
		}
		seen(func(fb *fakeBackend) {
			if sr := fb.send; sr.RoomID != "r1" || sr.PlayerID != player || sr.Type != 0x1101 || string(sr.Body) != string(body) {
				t.Errorf("send reached the backend as %+v", sr)
			}
		})
	}

	s.fb.setOverview(Overview{Time: time.Unix(1_700_000_000, 0).UTC(), Nodes: []Node{{Name: "n1", Status: "ready", Rooms: 3}}, RoomsTotal: 3})
	ov, err := c.Overview(ctx)
	if err != nil || len(ov.Nodes) != 1 || ov.Nodes[0].Name != "n1" || ov.Nodes[0].Rooms != 3 || ov.RoomsTotal != 3 || !ov.Time.Equal(time.Unix(1_700_000_000, 0)) {
		t.Fatalf("overview: %+v, %v", ov, err)
	}
}

// The server's refusals come back as *Error with its status, message and
// game code; a wrong key is a 401 like any other.
func TestClientErrors(t *testing.T) {
	s, c := startServed(t)
	ctx := context.Background()
	var e *Error
	if _, err := c.Room(ctx, "nope"); !errors.As(err, &e) || e.Status != http.StatusNotFound || e.Message != "no such room" {
		t.Fatalf("unknown room: %v", err)
	}
	s.fb.mu.Lock()
	s.fb.err = &Error{Status: http.StatusUnprocessableEntity, Message: "refused", GameCode: 1042}
	s.fb.mu.Unlock()
	if err := c.Dispose(ctx, "r1", ""); !errors.As(err, &e) || e.Status != 422 || e.GameCode != 1042 || e.Message != "refused" {
		t.Fatalf("refusal: %v", err)
	}
	s.fb.mu.Lock()
	s.fb.err = nil
	s.fb.mu.Unlock()
	bad := *c
	bad.Key = "not-the-key-0123456789"
	if _, err := bad.Rooms(ctx, Filter{}); !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
		t.Fatalf("wrong key: %v", err)
	}
	// A room ID that is not a path segment is escaped, not routed elsewhere.
	if _, err := c.Room(ctx, "../rooms"); !errors.As(err, &e) || e.Status != http.StatusNotFound {
		t.Fatalf("odd id: %v", err)
	}
}

// A server that cannot be reached, or that answers something other than
// this API, is a 502; a context that ends is the context's error.
func TestClientUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var e *Error
	c := &Client{Base: "http://" + addr, Key: testKey}
	if _, err := c.Rooms(context.Background(), Filter{}); !errors.As(err, &e) || e.Status != http.StatusBadGateway {
		t.Fatalf("closed port: %v", err)
	}

	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/rooms":
			_, _ = w.Write([]byte("<html>hello</html>"))
		case "/api/v1/overview":
			time.Sleep(2 * time.Second)
		default:
			http.Error(w, "teapot", http.StatusTeapot)
		}
	}))
	defer other.Close()
	c = &Client{Base: other.URL, Key: testKey}
	if _, err := c.Rooms(context.Background(), Filter{}); !errors.As(err, &e) || e.Status != http.StatusBadGateway {
		t.Fatalf("HTML answer: %v", err)
	}
	if err := c.Dispose(context.Background(), "r1", ""); !errors.As(err, &e) || e.Status != http.StatusBadGateway {
		t.Fatalf("418 in plain text: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Overview(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow server: %v", err)
	}
}
