package api

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

//go:embed monitor
var monitorFS embed.FS

// The monitor page is a static shell: it holds no data, asks for the API
// key, keeps it in the tab's sessionStorage and reads /monitor/events with
// it as a Bearer token.
const monitorCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// pollEvery is how often an event stream looks for a new overview; each
// new one is sent once.
const pollEvery = 250 * time.Millisecond

func (a *API) monitorPage(w http.ResponseWriter, r *http.Request, _ params) {
	a.serveAsset(w, r, "monitor/monitor.html", "text/html; charset=utf-8")
}

func (a *API) monitorAsset(w http.ResponseWriter, r *http.Request, _ params) {
	name := path.Base(r.URL.Path)
	ct := "text/javascript; charset=utf-8"
	if path.Ext(name) == ".css" {
		ct = "text/css; charset=utf-8"
	}
	a.serveAsset(w, r, "monitor/"+name, ct)
}

func (a *API) serveAsset(w http.ResponseWriter, r *http.Request, name, contentType string) {
	b, err := monitorFS.ReadFile(name)
	if err != nil {
		writeError(w, Errorf(http.StatusNotFound, "no such file"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Security-Policy", monitorCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// overviewCache keeps the last overview's JSON, so viewers share one
// encoding per sample. A sample is known by its time and its nodes'
// statuses (which a backend may report live, ahead of its samples).
type overviewCache struct {
	mu   sync.Mutex
	key  string
	json []byte
}

func cacheKey(o Overview) string {
	var b strings.Builder
	b.WriteString(o.Time.Format(time.RFC3339Nano))
	for _, n := range o.Nodes {
		b.WriteString("|" + n.Status)
	}
	return b.String()
}

func (c *overviewCache) encode(o Overview) []byte {
	key := cacheKey(o)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.json != nil && c.key == key && !o.Time.IsZero() {
		return c.json
	}
	b, err := json.Marshal(o)
	if err != nil {
		return nil
	}
	c.key, c.json = key, b
	return b
}

// monitorEvents streams overviews as Server-Sent Events: one "snapshot"
// event per new sample (about one a second), until the client leaves or
// Close is called.
func (a *API) monitorEvents(w http.ResponseWriter, r *http.Request, _ params) {
	select {
	case a.streams <- struct{}{}:
		defer func() { <-a.streams }()
	default:
		writeError(w, Errorf(http.StatusServiceUnavailable, "too many monitor streams open"))
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write([]byte("retry: 2000\n\n")); err != nil {
		return
	}
	_ = rc.Flush()
	var last time.Time
	send := func() bool {
		ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
		o, err := a.cfg.Backend.Overview(ctx)
		cancel()
		if err != nil {
			a.log.Debug("monitor: no overview", zap.Error(err))
			return true
		}
		if !o.Time.IsZero() && o.Time.Equal(last) {
			return true
		}
		last = o.Time
		b := a.cache.encode(o)
		if b == nil {
			return true
		}
		var buf bytes.Buffer
		buf.WriteString("event: snapshot\ndata: ")
		buf.Write(b)
		buf.WriteString("\n\n")
		_ = rc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		if rc.Flush() != nil {
			return false
		}
		_ = rc.SetWriteDeadline(time.Time{})
		return true
	}
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for send() {
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-a.closing:
			last = time.Time{}
			send() // the last word: the node is draining
			return
		}
	}
}
