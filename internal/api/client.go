package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/vmihailenco/msgpack/v5"
)

// Client calls the API of a server over HTTP. It implements Backend, so
// one server's API can answer from another's: a cluster node does, for
// the rooms and figures of the other nodes.
type Client struct {
	// Base is the URL the API's paths are appended to, without the
	// trailing slash: "http://10.0.0.7:8080" for /api/v1/rooms there.
	Base string
	// Key is sent as the Bearer token.
	Key string
	// HTTP makes the requests; nil means http.DefaultClient. Each call is
	// bounded by its context.
	HTTP *http.Client
}

var _ Backend = (*Client)(nil)

// maxAnswer bounds an answer the Client reads.
const maxAnswer = 64 << 20

// do sends a request and decodes a success answer (want) into out. Any
// other answer comes back as an *Error with the server's status and
// message; a server that cannot be reached, or answers something that is
// not this API's JSON, is a 502.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any, want int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := c.Base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return Errorf(http.StatusBadGateway, "unreachable: %v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil || len(data) > maxAnswer {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return Errorf(http.StatusBadGateway, "%s: the answer could not be read", c.Base)
	}
	if resp.StatusCode == want {
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return Errorf(http.StatusBadGateway, "%s answered %d with a body that is not the API's: %v", c.Base, resp.StatusCode, err)
		}
		return nil
	}
	var e errorBody
	if json.Unmarshal(data, &e) != nil || e.Error == "" {
		return Errorf(http.StatusBadGateway, "%s answered %d", c.Base, resp.StatusCode)
	}
	return &Error{Status: resp.StatusCode, Message: e.Error, GameCode: e.GameCode}
}

func roomPath(id string) string { return "/api/v1/rooms/" + url.PathEscape(id) }

// Rooms implements Backend.
func (c *Client) Rooms(ctx context.Context, f Filter) ([]Room, error) {
	q := url.Values{}
	if f.Kind != "" {
		q.Set("kind", f.Kind)
	}
	if f.Node != "" {
		q.Set("node", f.Node)
	}
	var out struct {
		Rooms []Room `json:"rooms"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/rooms", q, nil, &out, http.StatusOK)
	return out.Rooms, err
}

// Room implements Backend.
func (c *Client) Room(ctx context.Context, id string) (RoomDetail, error) {
	var out RoomDetail
	err := c.do(ctx, http.MethodGet, roomPath(id), nil, nil, &out, http.StatusOK)
	return out, err
}

// Create implements Backend. The options travel as JSON, as a caller of
// the API sends them, and the server encodes them to msgpack as it does
// any create's: options that came from JSON arrive as they left (binary
// values, which JSON cannot hold, would arrive as base64 strings).
func (c *Client) Create(ctx context.Context, req CreateRequest) (Created, error) {
	in := map[string]any{"kind": req.Kind}
	if len(req.Options) > 0 {
		var opts map[string]any
		if err := msgpack.Unmarshal(req.Options, &opts); err != nil {
			return Created{}, Errorf(http.StatusBadRequest, "options: want a map with string keys")
		}
		in["options"] = opts
	}
	if len(req.Reserve) > 0 {
		in["reserve"] = req.Reserve
	}
	var out Created
	err := c.do(ctx, http.MethodPost, "/api/v1/rooms", nil, in, &out, http.StatusCreated)
	return out, err
}

// Dispose implements Backend.
func (c *Client) Dispose(ctx context.Context, id, reason string) error {
	return c.do(ctx, http.MethodDelete, roomPath(id), url.Values{"reason": {reason}}, nil, nil, http.StatusAccepted)
}

// Kick implements Backend.
func (c *Client) Kick(ctx context.Context, req KickRequest) error {
	in := map[string]any{"code": req.Code}
	if req.Message != "" {
		in["message"] = req.Message
	}
	return c.do(ctx, http.MethodPost, roomPath(req.RoomID)+"/players/"+url.PathEscape(req.PlayerID)+"/kick", nil, in, nil, http.StatusNoContent)
}

// Send implements Backend. The body travels as base64, byte for byte.
func (c *Client) Send(ctx context.Context, req SendRequest) error {
	path := roomPath(req.RoomID) + "/messages"
	if req.PlayerID != "" {
		path = roomPath(req.RoomID) + "/players/" + url.PathEscape(req.PlayerID) + "/messages"
	}
	in := map[string]any{"type": strconv.Itoa(int(req.Type)), "bodyBase64": base64.StdEncoding.EncodeToString(req.Body)}
	return c.do(ctx, http.MethodPost, path, nil, in, nil, http.StatusNoContent)
}

// Overview implements Backend.
func (c *Client) Overview(ctx context.Context) (Overview, error) {
	var out Overview
	err := c.do(ctx, http.MethodGet, "/api/v1/overview", nil, nil, &out, http.StatusOK)
	return out, err
}
